"""The benefits rules read as a specification: catalogue, entitlement, last-touch attribution and
"unused for twelve months"."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prevenance.desk import rules

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WINDOW = timedelta(days=90)


def document() -> dict[str, Any]:
    text = resources.files("prevenance.desk").joinpath("desk_config.json").read_text("utf-8")
    loaded: dict[str, Any] = json.loads(text)
    return loaded


def shipped() -> rules.BenefitPolicy:
    return rules.parse_config(document()).benefits


def told(contact_id: str, at: datetime, agent: str = "alice") -> rules.Explanation:
    return rules.Explanation(contact_id=contact_id, agent=agent, explained_at=at)


def test_premium_cards_get_travel_desk_concierge_and_lounges_and_others_do_not() -> None:
    policy = shipped()
    premium = {"travel_desk", "concierge", "lounge_access"}
    for product in ("platinum", "centurion"):
        assert premium <= {b.code for b in rules.entitled_benefits(policy, product=product)}
    for product in ("green", "gold", "cobrand-airline"):
        assert not premium & {b.code for b in rules.entitled_benefits(policy, product=product)}


def test_every_card_is_entitled_to_emergency_card_replacement_and_labels_are_bilingual() -> None:
    policy = shipped()
    for product in ("green", "gold", "platinum", "centurion", "cobrand-airline"):
        assert "emergency_card_replacement" in {
            b.code for b in rules.entitled_benefits(policy, product=product)
        }
    assert all(b.label_fr and b.label_en for b in policy.catalogue.values())
    assert policy.attribution_window == WINDOW


def test_entitlement_check_names_the_field_for_unknown_and_not_entitled_benefits() -> None:
    policy = shipped()
    assert rules.check_entitled(policy, product="gold", benefit="travel_insurance", field="benefit").code == (
        "travel_insurance"
    )
    with pytest.raises(rules.RuleViolation, match="not entitled") as not_entitled:
        rules.check_entitled(policy, product="gold", benefit="lounge_access", field="benefit")
    assert not_entitled.value.field == "benefit"
    with pytest.raises(rules.RuleViolation, match="unknown benefit") as unknown:
        rules.check_entitled(policy, product="gold", benefit="yacht", field="benefits")
    assert unknown.value.field == "benefits"


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"benefits": []}, "benefits"),
        ({"benefits": {"catalogue": []}}, "benefits.catalogue"),
        ({"benefits": {"catalogue": {"spa": {"fr": "Spa", "products": ["gold"]}}}}, "benefits.catalogue.spa"),
        ({"benefits": {"catalogue": {"spa": {"fr": "Spa", "en": "Spa", "products": []}}}}, "benefits.catalogue.spa.products"),
        ({"benefits": {"catalogue": {"spa": {"fr": "Spa", "en": "Spa", "products": [1]}}}}, "benefits.catalogue.spa.products"),
        ({"benefits": {"catalogue": {}, "attribution_window_days": 0}}, "benefits.attribution_window_days"),
    ],
)  # fmt: skip
def test_a_bad_benefits_section_is_refused_with_its_path(change: dict[str, Any], path: str) -> None:
    with pytest.raises(rules.ConfigError) as error:
        rules.parse_config({**document(), **change})
    assert error.value.field == path


def test_the_attribution_window_is_configurable_and_defaults_to_90_days() -> None:
    assert (
        rules.parse_config({**document(), "benefits": {"catalogue": {}}}).benefits.attribution_window
        == WINDOW
    )
    custom = {**document(), "benefits": {"catalogue": {}, "attribution_window_days": 30}}
    assert rules.parse_config(custom).benefits.attribution_window == timedelta(days=30)


def test_a_usage_is_credited_to_the_latest_explanation_within_the_window() -> None:
    first, second = told("C1", T0, "alice"), told("C2", T0 + timedelta(days=10), "bob")
    used = T0 + timedelta(days=20)
    assert rules.attribute_usage(used, [first, second], window=WINDOW) == second
    assert rules.attribute_usage(T0 + timedelta(days=5), [first, second], window=WINDOW) == first


def test_a_usage_before_the_explanation_or_after_the_window_is_credited_to_nobody() -> None:
    explanation = told("C1", T0)
    assert rules.attribute_usage(T0 - timedelta(minutes=1), [explanation], window=WINDOW) is None
    assert rules.attribute_usage(T0 + WINDOW + timedelta(seconds=1), [explanation], window=WINDOW) is None
    assert rules.attribute_usage(T0 + WINDOW, [explanation], window=WINDOW) == explanation
    assert rules.attribute_usage(T0, [], window=WINDOW) is None


def test_an_explanation_is_pending_until_its_window_closes_without_usage() -> None:
    explanation = told("C1", T0)
    assert rules.explanation_outcome(explanation, credited=True, window=WINDOW, now=T0) is True
    assert rules.explanation_outcome(explanation, credited=False, window=WINDOW, now=T0 + WINDOW / 2) is None
    assert rules.explanation_outcome(explanation, credited=False, window=WINDOW, now=T0 + WINDOW) is False


def test_a_benefit_is_unused_when_not_used_in_the_twelve_months_up_to_now() -> None:
    now = datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
    assert rules.unused_for_12_months(None, now=now) is True
    assert rules.unused_for_12_months(T0, now=now) is True  # exactly a year ago
    assert rules.unused_for_12_months(T0 + timedelta(seconds=1), now=now) is False


def test_twelve_months_before_29_february_is_28_february() -> None:
    leap = datetime(2028, 2, 29, 12, 0, tzinfo=UTC)
    assert rules.twelve_months_before(leap) == datetime(2027, 2, 28, 12, 0, tzinfo=UTC)


moments = st.integers(min_value=0, max_value=200 * 24).map(lambda hours: T0 + timedelta(hours=hours))


@given(used=moments, times=st.lists(moments, max_size=6))
def test_the_credited_explanation_is_in_the_window_and_no_eligible_one_is_later(
    used: datetime, times: list[datetime]
) -> None:
    explanations = [told(f"C{i}", at) for i, at in enumerate(times)]
    winner = rules.attribute_usage(used, explanations, window=WINDOW)
    eligible = [e for e in explanations if e.explained_at <= used <= e.explained_at + WINDOW]
    if winner is None:
        assert eligible == []
    else:
        assert winner in eligible
        assert all(e.explained_at <= winner.explained_at for e in eligible)
