"""ROI against the control group, on synthetic campaigns with a known truth (no database)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from prevenance.offers.roi import rules as roi
from prevenance.offers.roi.rules import ArmTooSmall, MemberWindows


def campaign(
    seed: int,
    *,
    n_treatment: int = 400,
    n_control: int = 100,
    uplift: float = 0.0,
    extra_visits: float = 0.0,
    churn_treatment: float = 0.15,
    churn_control: float = 0.15,
    rewarded_share: float = 0.3,
    country: str = "FR",
) -> list[MemberWindows]:
    """Members whose spend has a lognormal level of their own, a common seasonal drift after t0
    (+3% for everyone), and for the treated a planted multiplicative uplift."""
    rng = np.random.default_rng(seed)
    rows: list[MemberWindows] = []
    for arm, n in (("treatment", n_treatment), ("control", n_control)):
        level = rng.lognormal(mean=6.0, sigma=0.6, size=n)  # ~ 480 EUR a quarter, skewed
        visits = rng.poisson(6.0, size=n) + 1
        before = level * rng.lognormal(0.0, 0.25, size=n)
        lift = 1.0 + uplift if arm == "treatment" else 1.0
        after = level * 1.03 * lift * rng.lognormal(0.0, 0.25, size=n)
        visits_after = rng.poisson(6.0 + (extra_visits if arm == "treatment" else 0.0), size=n) + 1
        churn = churn_treatment if arm == "treatment" else churn_control
        gone = rng.random(n) < churn
        for i in range(n):
            rows.append(
                MemberWindows(
                    arm=arm,
                    country=country,
                    spend_before=float(before[i]),
                    spend_after=0.0 if gone[i] else float(after[i]),
                    transactions_before=int(visits[i]),
                    transactions_after=0 if gone[i] else int(visits_after[i]),
                    rewarded=int(arm == "treatment" and rng.random() < rewarded_share),
                )
            )
    return rows


def analyse(members: list[MemberWindows], **kwargs: object) -> dict[str, object]:
    params: dict[str, object] = {"unit_cost_eur": Decimal("5.00"), "margin_rate": Decimal("0.20")}
    params.update(kwargs)
    return roi.analyse(members, **params)  # type: ignore[arg-type]


def test_a_planted_spend_uplift_is_recovered_inside_its_interval() -> None:
    members = campaign(11, n_treatment=3000, n_control=600, uplift=0.08)
    treated_level = np.mean([m.spend_after for m in members if m.arm == "treatment"]) / 1.08
    report = analyse(members)
    spend = report["spend"]
    assert isinstance(spend, dict)
    # The truth: 8% of the treated members' counterfactual "after" spend.
    truth = 0.08 * treated_level
    assert spend["ci_low"] <= truth <= spend["ci_high"]
    assert spend["ci_low"] > 0, "an 8% uplift on 3,000 treated members must be detected"
    assert spend["n_treatment"] == 3000 and spend["n_control"] == 600


def test_planted_extra_visits_and_lower_churn_are_found_in_their_intervals() -> None:
    members = campaign(
        5, n_treatment=3000, n_control=800, extra_visits=1.5, churn_treatment=0.10, churn_control=0.20
    )
    report = analyse(members)
    tx, attrition = report["transactions"], report["attrition"]
    assert isinstance(tx, dict) and isinstance(attrition, dict)
    # Truth: after t0 the treated make 1.5 more visits and fewer of them lapse (visits are 1 + Poisson(6)).
    truth = (1 - 0.10) * (7 + 1.5) - (1 - 0.20) * 7
    assert tx["ci_low"] <= truth <= tx["ci_high"] and tx["ci_low"] > 0
    assert attrition["ci_low"] <= -0.10 <= attrition["ci_high"] and attrition["ci_high"] < 0


def test_a_null_campaign_interval_covers_zero_about_95_percent_of_the_time() -> None:
    covered = 0
    replications = 500
    for seed in range(replications):
        report = analyse(campaign(1000 + seed, n_treatment=200, n_control=60))
        spend = report["spend"]
        assert isinstance(spend, dict)
        covered += spend["ci_low"] <= 0.0 <= spend["ci_high"]
    assert 0.92 <= covered / replications <= 0.98, covered


def test_the_bootstrap_interval_is_reproducible_and_agrees_with_welch() -> None:
    members = campaign(3, uplift=0.08)
    first = analyse(members, ci="bootstrap", seed=42, replicates=1000)
    again = analyse(members, ci="bootstrap", seed=42, replicates=1000)
    welch = analyse(members)
    assert first["spend"] == again["spend"]
    b, w = first["spend"], welch["spend"]
    assert isinstance(b, dict) and isinstance(w, dict)
    assert b["did"] == pytest.approx(w["did"])
    width_b, width_w = b["ci_high"] - b["ci_low"], w["ci_high"] - w["ci_low"]
    assert 0.8 < width_b / width_w < 1.25
    assert first["ci_method"] == "bootstrap"


def test_roi_is_margin_net_of_the_cost_of_rewards_posted() -> None:
    members = campaign(7, uplift=0.08, rewarded_share=0.5)
    report = analyse(members, unit_cost_eur=Decimal("4.00"), margin_rate=Decimal("0.25"))
    rewarded = sum(m.rewarded for m in members)
    assert report["rewarded"] == rewarded and report["cost_eur"] == f"{rewarded * 4}.00"
    spend, margin, value = report["spend"], report["incremental_margin_eur"], report["roi"]
    assert isinstance(spend, dict) and isinstance(margin, dict) and isinstance(value, dict)
    assert margin["value"] == pytest.approx(spend["did"] * 400 * 0.25)
    assert value["value"] == pytest.approx((margin["value"] - rewarded * 4) / (rewarded * 4))
    assert value["ci_low"] < value["value"] < value["ci_high"]
    assert value["ci_low"] == pytest.approx((margin["ci_low"] - rewarded * 4) / (rewarded * 4))


def test_without_any_reward_posted_the_roi_is_not_a_number_but_said_so() -> None:
    report = analyse(campaign(2, rewarded_share=0.0))
    value = report["roi"]
    assert isinstance(value, dict)
    assert value["value"] is None and "cost is zero" in value["reason"]


def test_unequal_windows_compare_like_with_like() -> None:
    """A member spending at a steady rate shows no change even when the windows differ."""
    steady = [
        MemberWindows("treatment" if i < 40 else "control", "FR", 90.0 + i, (90.0 + i) / 3, 9, 3)
        for i in range(80)
    ]
    report = analyse(steady, before_days=90, after_days=30, min_arm=10)
    spend = report["spend"]
    assert isinstance(spend, dict)
    assert spend["ci_low"] <= 0.0 <= spend["ci_high"]
    assert report["window"] == {"before_days": 90, "after_days": 30}


def test_an_arm_too_small_is_refused_naming_it() -> None:
    members = campaign(1, n_treatment=100, n_control=12)
    with pytest.raises(ArmTooSmall) as refused:
        analyse(members, min_arm=30)
    assert refused.value.field == "control" and refused.value.n == 12
    assert analyse(members, min_arm=10)["control"]["n"] == 12  # type: ignore[index]


def test_an_unknown_interval_method_is_refused() -> None:
    with pytest.raises(roi.FieldError) as refused:
        analyse(campaign(1), ci="magic")
    assert refused.value.field == "ci"


@pytest.mark.parametrize(("df", "exact"), [(5, 2.5706), (10, 2.2281), (30, 2.0423), (120, 1.9799)])
def test_t_quantiles_match_the_tables(df: float, exact: float) -> None:
    assert roi.t_quantile(0.975, df) == pytest.approx(exact, abs=1e-3)


def test_welch_with_no_spread_has_a_point_interval() -> None:
    diff = roi.welch_difference(np.full(5, 3.0), np.full(4, 1.0))
    assert (diff.estimate, diff.ci_low, diff.ci_high) == (2.0, 2.0, 2.0)


def test_attrition_alone_is_refused_when_too_few_were_active_before() -> None:
    members = [
        MemberWindows("treatment" if i < 40 else "control", "FR", 0.0, 10.0 + i % 3, 0 if i >= 5 else 1, 1)
        for i in range(80)
    ]
    report = analyse(members, min_arm=10)
    attrition = report["attrition"]
    assert isinstance(attrition, dict)
    assert attrition["did"] is None and attrition["n_treatment"] == 5 and attrition["n_control"] == 0
    assert "treatment group has 5 member(s) active before t0" in attrition["refused"]
    assert report["spend"]["n_treatment"] == 40  # type: ignore[index]


_windows = st.tuples(
    st.floats(0, 5_000, allow_nan=False),
    st.floats(0, 5_000, allow_nan=False),
    st.integers(0, 30),
    st.integers(0, 30),
)


@settings(max_examples=60, deadline=None)
@given(
    treated=st.lists(_windows, min_size=3, max_size=30),
    control=st.lists(_windows, min_size=3, max_size=30),
    shift=st.floats(-500, 500, allow_nan=False),
)
def test_the_did_ignores_what_both_arms_share_and_flips_with_the_arms(
    treated: list[tuple[float, float, int, int]], control: list[tuple[float, float, int, int]], shift: float
) -> None:
    def rows(data: list[tuple[float, float, int, int]], arm: str, extra: float = 0.0) -> list[MemberWindows]:
        return [MemberWindows(arm, "FR", sb, sa + extra, tb, ta) for sb, sa, tb, ta in data]

    base = analyse(rows(treated, "treatment") + rows(control, "control"), min_arm=3)
    shifted = analyse(rows(treated, "treatment", shift) + rows(control, "control", shift), min_arm=3)
    swapped = analyse(rows(treated, "control") + rows(control, "treatment"), min_arm=3)
    spend, moved, flipped = base["spend"], shifted["spend"], swapped["spend"]
    assert isinstance(spend, dict) and isinstance(moved, dict) and isinstance(flipped, dict)
    assert moved["did"] == pytest.approx(spend["did"], abs=1e-6)  # a common shock cancels out
    assert flipped["did"] == pytest.approx(-spend["did"], abs=1e-6)
    assert flipped["ci_low"] == pytest.approx(-spend["ci_high"], abs=1e-6)
    assert spend["ci_low"] <= spend["did"] <= spend["ci_high"]
