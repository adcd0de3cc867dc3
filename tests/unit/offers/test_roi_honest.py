"""Offer ROI read honestly: Newcombe's interval for the attrition difference (coverage with rare events
and 30 controls), the minimum detectable effect and the "inconclusive" verdict, the cost of a point
from the programme's redemption mix, and the programme-wide holdout's effect.

Seeded simulations with every parameter fixed in the file (nothing drawn at collection time)."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pytest

from prevenance.loyalty import rules as loyalty_rules
from prevenance.offers import rules as offer_rules
from prevenance.offers.roi import rules as roi


def test_newcombe_is_never_zero_width_and_matches_the_published_example() -> None:
    # Newcombe (1998), table II, example (a): 56/70 vs 48/80 -> [0.0524, 0.3339].
    d = roi.newcombe_difference(56, 70, 48, 80)
    assert d.estimate == pytest.approx(0.2)
    assert (d.ci_low, d.ci_high) == (pytest.approx(0.0524, abs=5e-4), pytest.approx(0.3339, abs=5e-4))
    none = roi.newcombe_difference(0, 300, 0, 30)
    assert none.estimate == 0 and none.ci_low < -0.05 and none.ci_high > 0.005


# 4,000 simulated campaigns: the binomial SE of a 0.95 coverage is sqrt(0.95 x 0.05 / 4000) = 0.0034,
# so 0.93 is 6 SE below nominal; Welch's interval, measured the same way, falls far below it.
def _coverage(method: str, p_t: float, p_c: float, n_t: int, n_c: int, runs: int, seed: int) -> float:
    rng = np.random.default_rng(seed)
    events_t = rng.binomial(n_t, p_t, runs)
    events_c = rng.binomial(n_c, p_c, runs)
    truth = p_t - p_c
    held = 0
    for e_t, e_c in zip(events_t, events_c, strict=True):
        if method == "newcombe":
            d = roi.newcombe_difference(int(e_t), n_t, int(e_c), n_c)
        else:
            t = np.r_[np.ones(e_t), np.zeros(n_t - e_t)]
            c = np.r_[np.ones(e_c), np.zeros(n_c - e_c)]
            d = roi.welch_difference(t, c)
        held += d.ci_low <= truth <= d.ci_high
    return held / runs


def test_the_attrition_interval_keeps_its_coverage_with_rare_events_and_thirty_controls() -> None:
    newcombe = _coverage("newcombe", 0.03, 0.03, 300, 30, 4000, seed=3)
    welch = _coverage("welch", 0.03, 0.03, 300, 30, 4000, seed=3)
    assert newcombe >= 0.93, newcombe
    assert welch < 0.75, welch  # the Welch interval falls short here (0.57 with these figures)


def test_mde_is_2_8_standard_errors_and_a_wide_interval_is_inconclusive() -> None:
    assert pytest.approx(2.8016, abs=1e-4) == roi.MDE_FACTOR
    assert roi.mde_of_interval(-1.96, 1.96) == pytest.approx(2.8016, abs=2e-3)  # SE of 1
    wide = roi.verdict(-10.0, 30.0, 5.0, roi.mde_of_interval(-10.0, 30.0))
    assert wide["label"] == "inconclusive" and wide["ratio"] == pytest.approx(8.0)
    assert roi.verdict(1.0, 4.0, 5.0, 2.1)["label"] == "uplift"
    assert roi.verdict(-2.0, 2.0, 5.0, 2.8)["label"] == "no_uplift"
    assert roi.verdict(-4.0, -1.0, 5.0, 2.1)["label"] == "harm"


def _members(rng: np.random.Generator, n_t: int, n_c: int, uplift: float) -> list[roi.MemberWindows]:
    rows = []
    for arm, n, extra in (("treatment", n_t, uplift), ("control", n_c, 0.0)):
        before = rng.lognormal(5.0, 0.8, n)
        after = before * rng.lognormal(0.0, 0.3, n) + extra
        for b, a in zip(before, after, strict=True):
            rows.append(roi.MemberWindows(arm, "FR", float(b), float(a), 3, 3, 1, 100))
    return rows


def test_a_campaign_of_a_few_hundred_members_is_called_inconclusive_when_it_cannot_see_its_effect() -> None:
    rng = np.random.default_rng(12)
    report = roi.analyse(
        _members(rng, 300, 30, uplift=8.0),
        unit_cost_eur=Decimal("1"),
        margin_rate=Decimal("0.03"),
        eur_per_point=0.007,
        sized_effect_eur=8.0,
    )
    spend = report["spend"]
    assert spend["mde"] > 8.0 and report["verdict"]["label"] == "inconclusive"
    assert report["verdict"]["ratio"] > 1
    # The cost is the points rewarded at the cost of a point: 300 x 100 points x EUR 0.007.
    assert report["cost_eur"] == "210.00" and report["liability"]["points"] == 30_000


def test_the_cost_of_a_point_follows_the_redemption_mix_and_breakage() -> None:
    lines = [
        loyalty_rules.RedeemedLine("travel", None, 50_000),
        loyalty_rules.RedeemedLine("catalogue", "knives", 20_000, 1),
        loyalty_rules.RedeemedLine("transfer", "skyline", 30_000),
        loyalty_rules.RedeemedLine("ecode", "books", 0),
    ]
    cost = loyalty_rules.point_cost(
        lines,
        liability={
            "breakage": "0.2",
            "catalogue_item_cost_eur": {"knives": "90"},
            "transfer_eur_per_point": {"skyline": "0.006"},
        },
        euro_per_point=Decimal("0.01"),
    )
    # (50,000 x 0.01 + 90 + 30,000 x 0.006) / 100,000 = 0.0077 per redeemed point; x 0.8 issued.
    assert cost["eur_per_redeemed_point"] == pytest.approx(0.0077)
    assert cost["eur_per_point"] == pytest.approx(0.00616)
    assert cost["mix"]["travel"]["share"] == pytest.approx(0.5)
    nothing = loyalty_rules.point_cost([], liability=None, euro_per_point=Decimal("0.01"))
    assert nothing["eur_per_point"] == pytest.approx(0.01 * (1 - 0.12))


def test_the_programme_holdout_is_a_stable_salted_few_percent_independent_of_campaigns() -> None:
    refs = [f"M{i}" for i in range(20_000)]
    held = [r for r in refs if offer_rules.in_programme_holdout(r, "salt-1", Decimal("0.03"))]
    # Binomial SE of the share over 20,000 members: 0.0012; 0.03 +- 0.005 is 4 SE.
    assert abs(len(held) / len(refs) - 0.03) < 0.005
    assert held == [r for r in refs if offer_rules.in_programme_holdout(r, "salt-1", Decimal("0.03"))]
    other = {r for r in refs if offer_rules.in_programme_holdout(r, "salt-2", Decimal("0.03"))}
    assert len(other & set(held)) < 0.1 * len(held)  # a new period draws a new group
    control = {r for r in refs if offer_rules.arm_of(r, "CAMP-1", Decimal("0.10")) == "control"}
    assert abs(len(control & set(held)) / len(held) - 0.10) < 0.05  # independent of a campaign's own hash


def test_the_programme_effect_recovers_a_planted_uplift_with_its_interval() -> None:
    rng = np.random.default_rng(4)
    rows = [
        roi.MemberWindows(
            "exposed" if m.arm == "treatment" else "holdout", m.country, m.spend_before, m.spend_after, 3, 3
        )
        for m in _members(rng, 4000, 400, uplift=15.0)
    ]
    found = roi.programme_effect(rows, window_days=90, margin_rate=Decimal("0.03"), cost_eur=Decimal("100"))
    assert found["spend"]["ci_low"] <= 15.0 <= found["spend"]["ci_high"]
    assert found["exposed"]["n"] == 4000 and found["holdout"]["n"] == 400
    assert found["net_value_eur"]["value"] == pytest.approx(found["spend"]["did"] * 4000 * 0.03 - 100)
