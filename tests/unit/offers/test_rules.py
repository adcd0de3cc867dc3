"""The offer rules as a specification: eligibility, segments, holdout, expected value, rewards."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prevenance.offers import rules

NOW = datetime(2026, 1, 15, tzinfo=UTC)


def offer(**overrides: object) -> rules.OfferSpec:
    base = rules.OfferSpec(
        id="books",
        partner_merchant="Librairie",
        partner_category="books",
        reward=rules.parse_reward("bonus_points", {"points": 100}),
        eligibility=rules.Eligibility(),
        cap_per_member=1,
        budget_points=None,
        unit_cost_eur=Decimal("1"),
        margin_rate=Decimal("0.05"),
        expected_spend_eur=Decimal("100"),
        holdout_share=Decimal("0.10"),
        decision_days=30,
        valid_from=datetime(2026, 1, 1, tzinfo=UTC),
        valid_until=datetime(2026, 2, 1, tzinfo=UTC),
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def facts(**overrides: object) -> rules.TransactionFacts:
    base = rules.TransactionFacts(
        member_ref="M1",
        product="gold",
        tier="premium",
        country="FR",
        segment="active",
        merchant="Librairie",
        category="books",
        amount_eur=Decimal("42"),
        points_earned=42,
        occurred_at=NOW,
    )
    return replace(base, **overrides)  # type: ignore[arg-type]


def test_an_offer_without_restrictions_admits_everyone_while_valid() -> None:
    assert rules.is_eligible(offer(), facts(), NOW)
    assert rules.ineligibility(offer(), facts(), datetime(2026, 2, 1, tzinfo=UTC)) == "dates"
    assert rules.ineligibility(offer(status="paused"), facts(), NOW) == "status"


@pytest.mark.parametrize(
    ("eligibility", "fact", "reason"),
    [
        ({"products": ["gold"]}, {"product": "classic"}, "product"),
        ({"tiers": ["premium"]}, {"tier": "standard"}, "tier"),
        ({"countries": ["FR"]}, {"country": "GB"}, "country"),
        ({"segments": ["active"]}, {"segment": "lapsing"}, "segment"),
        ({"categories": ["books"]}, {"category": "travel"}, "category"),
        ({"min_spend_eur": "40"}, {"amount_eur": Decimal("39.99")}, "min_spend"),
    ],
)
def test_each_rule_refuses_what_it_names_and_admits_the_rest(
    eligibility: dict[str, object], fact: dict[str, object], reason: str
) -> None:
    spec = offer(eligibility=rules.parse_eligibility(eligibility))
    assert rules.ineligibility(spec, facts(**fact), NOW) == reason
    assert rules.is_eligible(spec, facts(), NOW)


def test_country_and_product_compare_case_insensitively() -> None:
    spec = offer(eligibility=rules.parse_eligibility({"countries": ["fr"], "products": ["GOLD"]}))
    assert rules.is_eligible(spec, facts(country="FR", product="gold"), NOW)


def test_definitions_with_unknown_keys_or_values_are_refused_naming_the_field() -> None:
    with pytest.raises(rules.RuleViolation) as unknown:
        rules.parse_eligibility({"country": ["FR"]})
    assert unknown.value.field == "eligibility.country"
    with pytest.raises(rules.RuleViolation) as segment:
        rules.parse_eligibility({"segments": ["vip"]})
    assert segment.value.field == "eligibility.segments"
    with pytest.raises(rules.RuleViolation) as points:
        rules.parse_reward("bonus_points", {"points": 0})
    assert points.value.field == "reward.points"
    with pytest.raises(rules.RuleViolation) as kind:
        rules.parse_reward("cashback", {})
    assert kind.value.field == "reward_kind"


def test_segments() -> None:
    assert rules.segment_of(recency_days=None, history_days=None) == "new"
    assert rules.segment_of(recency_days=3, history_days=20) == "new"
    assert rules.segment_of(recency_days=3, history_days=200) == "active"
    assert rules.segment_of(recency_days=60, history_days=200) == "lapsing"


def test_holdout_is_deterministic_and_holds_back_the_configured_share() -> None:
    refs = [f"member-{i}" for i in range(20_000)]
    arms = [rules.arm_of(ref, "spring", Decimal("0.10")) for ref in refs]
    assert arms == [rules.arm_of(ref, "spring", Decimal("0.10")) for ref in refs]
    share = arms.count("control") / len(arms)
    # Binomial standard error at n=20 000 is 0.0021: 0.10 ± 0.01 is nearly five of them.
    assert 0.09 < share < 0.11
    other = [rules.arm_of(ref, "autumn", Decimal("0.10")) for ref in refs]
    assert other != arms  # another campaign draws another control group
    assert all(rules.arm_of(r, "x", Decimal("0")) == "treatment" for r in refs[:200])


@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30))
def test_holdout_bucket_is_uniform_in_the_unit_interval(member: str, campaign: str) -> None:
    bucket = rules.holdout_bucket(member, campaign)
    assert 0 <= bucket < 1
    assert bucket == rules.holdout_bucket(member, campaign)


@given(st.floats(0, 1), st.floats(0, 1))
def test_expected_value_grows_with_propensity_when_the_offer_pays(p: float, q: float) -> None:
    spec = offer(margin_rate=Decimal("0.05"), unit_cost_eur=Decimal("1"))  # 5 € margin, 1 € cost
    low, high = sorted((p, q))
    assert rules.expected_value(low, spec) <= rules.expected_value(high, spec)
    assert rules.expected_value(high, spec) == pytest.approx(high * 4)


def test_best_offer_picks_the_highest_value_and_breaks_ties_by_id() -> None:
    a, b, c = offer(id="a"), offer(id="b"), offer(id="c")
    assert rules.best_offer([(a, 1.0), (b, 3.0), (c, 2.0)]) == (b, 3.0)
    assert rules.best_offer([(c, 2.0), (a, 2.0)]) == (a, 2.0)
    assert rules.best_offer([]) is None


def test_rewards_need_the_partner_or_the_category() -> None:
    bonus = offer()
    assert rules.reward_points(bonus, facts()) == 100
    assert rules.reward_points(bonus, facts(merchant="  librairie ")) == 100
    assert rules.reward_points(bonus, facts(merchant="Autre")) is None
    floor = offer(reward=rules.parse_reward("bonus_points", {"points": 5, "min_spend_eur": "50"}))
    assert rules.reward_points(floor, facts()) is None
    triple = offer(
        reward=rules.parse_reward(
            "category_multiplier", {"category": "Travel", "multiplier": "3", "max_points": 50}
        )
    )
    assert rules.reward_points(triple, facts(category="travel", points_earned=10)) == 20
    assert rules.reward_points(triple, facts(category="travel", points_earned=100)) == 50
    assert rules.reward_points(triple, facts(category="books", points_earned=100)) is None


@given(st.integers(0, 10**6), st.decimals(min_value=1, max_value=20, places=2))
def test_a_multiplier_never_pays_more_than_its_cap(earned: int, multiplier: Decimal) -> None:
    if multiplier == 1:
        return
    spec = offer(
        reward=rules.parse_reward(
            "category_multiplier", {"category": "travel", "multiplier": str(multiplier), "max_points": 500}
        )
    )
    points = rules.reward_points(spec, facts(category="travel", points_earned=earned))
    assert points is None or 0 < points <= 500


def test_the_prior_model_scores_the_base_rate_for_everyone() -> None:
    prior = rules.prior_model(("a", "b"), base_rate=0.2)
    assert prior.score([0.0, 0.0]) == pytest.approx(0.2)
    assert prior.score([5.0, -3.0]) == pytest.approx(0.2)
