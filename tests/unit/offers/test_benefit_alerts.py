"""The benefit-usage alert: a significant, material drop raises it; stable usage does not."""

from __future__ import annotations

import numpy as np
import pytest

from prevenance.views.benefit_usage import (
    AlertPolicy,
    Count,
    alert_messages,
    assess,
    drop_test,
    months_before,
)


def test_a_planted_drop_raises_an_alert() -> None:
    # 30% of 1,000 entitled members used it each of the 3 months before; 22% this month.
    result = assess(Count(220, 1000), [Count(300, 1000)] * 3, AlertPolicy())
    assert result["alert"] is True
    assert result["change"] == pytest.approx(-0.08)
    assert result["p_value"] < 1e-4 and result["z"] < -4
    assert result["rate"]["ci_low"] < 0.22 < result["rate"]["ci_high"]
    assert result["baseline"] == {
        "users": 900,
        "entitled": 3000,
        "value": 0.3,
        "ci_low": pytest.approx(0.2838, abs=1e-3),
        "ci_high": pytest.approx(0.3168, abs=1e-3),
    }
    assert [t["rate"] for t in result["trend"]] == [0.3, 0.3, 0.3]


def test_stable_usage_and_a_rise_raise_nothing() -> None:
    assert assess(Count(296, 1000), [Count(300, 1000)] * 3, AlertPolicy())["alert"] is False
    rise = assess(Count(400, 1000), [Count(300, 1000)] * 3, AlertPolicy())
    assert rise["alert"] is False and rise["p_value"] > 0.99


def test_a_significant_but_immaterial_drop_is_not_alerted() -> None:
    # 200,000 members: a 1-point drop is significant, but below the 2-point minimum.
    big = assess(Count(58_000, 200_000), [Count(60_000, 200_000)] * 3, AlertPolicy())
    assert big["p_value"] < 0.01 and big["alert"] is False
    assert assess(Count(58_000, 200_000), [Count(60_000, 200_000)] * 3, AlertPolicy(min_drop=0.005))["alert"]


def test_a_small_group_is_reported_but_not_alerted() -> None:
    result = assess(Count(0, 20), [Count(15, 20)] * 3, AlertPolicy())
    assert result["p_value"] < 0.01 and result["alert"] is False
    assert assess(Count(0, 20), [Count(15, 20)] * 3, AlertPolicy(min_entitled=10))["alert"] is True


def test_the_drop_test_matches_a_hand_computation() -> None:
    # p_now = 0.2 (n 500), p_base = 0.25 (n 1500), pooled 0.2375.
    test = drop_test(Count(100, 500), Count(375, 1500))
    se = (0.2375 * 0.7625 * (1 / 500 + 1 / 1500)) ** 0.5
    assert test.z == pytest.approx(-0.05 / se)
    assert test.z == pytest.approx(-2.2753, abs=1e-3) and test.p_value == pytest.approx(0.01144, abs=1e-4)
    assert drop_test(Count(0, 0), Count(3, 10)) == drop_test(Count(1, 10), Count(0, 0))
    assert drop_test(Count(0, 0), Count(3, 10)).p_value is None
    assert drop_test(Count(0, 10), Count(0, 30)).p_value == 0.5


def test_under_stable_usage_false_alarms_stay_below_alpha() -> None:
    rng = np.random.default_rng(17)
    policy = AlertPolicy(alpha=0.01, min_drop=0.0, min_entitled=1)
    alarms = 0
    runs = 2000
    for _ in range(runs):
        now = Count(int(rng.binomial(400, 0.3)), 400)
        previous = [Count(int(rng.binomial(400, 0.3)), 400) for _ in range(3)]
        alarms += assess(now, previous, policy)["alert"]
    assert alarms / runs <= 0.02, alarms


def test_months_before_and_bilingual_messages() -> None:
    assert months_before("2026-02", 3) == ["2026-01", "2025-12", "2025-11"]
    row = {
        "label_fr": "Accès aux salons d'aéroport",
        "label_en": "Airport lounge access",
        "product": "platinum",
        "country": "FR",
        "month": "2026-03",
        **assess(Count(220, 1000), [Count(300, 1000)] * 3, AlertPolicy()),
    }
    messages = alert_messages(row)
    assert messages["message_fr"].startswith(
        "Accès aux salons d'aéroport (platinum / FR) : taux d'usage 22.0 %"
    )
    assert "against 30.0% over the previous 3 months" in messages["message_en"]
