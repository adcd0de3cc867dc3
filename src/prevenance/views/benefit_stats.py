"""The statistics of benefit usage monitoring, pure functions tested without a database: a
month's usage rate with its Wilson 95% interval, the pooled baseline of the months before, the
one-sided two-proportion test of a drop and when it raises an alert. The method is in
``docs/offers-methods.md#benefit-usage``."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

from prevenance.common.periods import previous_month
from prevenance.desk.rules import wilson

BASELINE_MONTHS = 3
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_DROP = 0.02
DEFAULT_MIN_ENTITLED = 30
METHOD_ANCHOR = "docs/offers-methods.md#benefit-usage"


@dataclass(frozen=True)
class Count:
    """Members who used a benefit in a month, out of those entitled to it."""

    users: int
    entitled: int


@dataclass(frozen=True)
class DropTest:
    """One-sided two-proportion z-test of "this month's rate is below the baseline's"."""

    z: float | None
    p_value: float | None


@dataclass(frozen=True)
class AlertPolicy:
    """When a drop is worth a person's attention: significant at ``alpha`` (one-sided), at least
    ``min_drop`` in absolute rate, on at least ``min_entitled`` entitled members this month."""

    alpha: float = DEFAULT_ALPHA
    min_drop: float = DEFAULT_MIN_DROP
    min_entitled: int = DEFAULT_MIN_ENTITLED


def drop_test(now: Count, baseline: Count) -> DropTest:
    """z = (p_now − p_base) / √(p(1−p)(1/n_now + 1/n_base)) with the pooled p; p-value = Φ(z)."""
    if now.entitled == 0 or baseline.entitled == 0:
        return DropTest(None, None)
    p_now = now.users / now.entitled
    p_base = baseline.users / baseline.entitled
    pooled = (now.users + baseline.users) / (now.entitled + baseline.entitled)
    variance = pooled * (1 - pooled) * (1 / now.entitled + 1 / baseline.entitled)
    if variance == 0:  # everyone or no one, in both: no evidence of any change
        return DropTest(0.0, 0.5)
    z = (p_now - p_base) / math.sqrt(variance)
    return DropTest(z, NormalDist().cdf(z))


def assess(now: Count, previous: Sequence[Count], policy: AlertPolicy) -> dict[str, Any]:
    """This month's rate with its interval, each previous month's, the pooled baseline, the test
    and whether it raises an alert. ``previous`` runs from the most recent month backwards."""
    rate = wilson(now.users, now.entitled)
    baseline = Count(sum(c.users for c in previous), sum(c.entitled for c in previous))
    base_rate = wilson(baseline.users, baseline.entitled)
    test = drop_test(now, baseline)
    change = rate.value - base_rate.value if rate.value is not None and base_rate.value is not None else None
    alert = (
        test.p_value is not None
        and change is not None
        and test.p_value < policy.alpha
        and -change >= policy.min_drop
        and now.entitled >= policy.min_entitled
    )
    return {
        "entitled": now.entitled,
        "users": now.users,
        "rate": {"value": rate.value, "n": rate.n, "ci_low": rate.ci_low, "ci_high": rate.ci_high},
        "trend": [
            {"users": c.users, "entitled": c.entitled, "rate": c.users / c.entitled if c.entitled else None}
            for c in previous
        ],
        "baseline": {
            "users": baseline.users,
            "entitled": baseline.entitled,
            "value": base_rate.value,
            "ci_low": base_rate.ci_low,
            "ci_high": base_rate.ci_high,
        },
        "change": change,
        "z": test.z,
        "p_value": test.p_value,
        "alert": alert,
    }


def months_before(month: str, count: int) -> list[str]:
    """The ``count`` months before ``month``, most recent first."""
    months = []
    for _ in range(count):
        month = previous_month(month)
        months.append(month)
    return months


def alert_messages(row: dict[str, Any]) -> dict[str, str]:
    """What a person reads, in French and in English."""
    scope_fr = " / ".join(x for x in (row.get("product"), row.get("country")) if x) or "tous"
    scope_en = " / ".join(x for x in (row.get("product"), row.get("country")) if x) or "all"
    now, base = row["rate"]["value"] * 100, row["baseline"]["value"] * 100
    return {
        "message_fr": (
            f"{row['label_fr']} ({scope_fr}) : taux d'usage {now:.1f} % en {row['month']}, contre "
            f"{base:.1f} % sur les {BASELINE_MONTHS} mois précédents (p = {row['p_value']:.2g})."
        ),
        "message_en": (
            f"{row['label_en']} ({scope_en}): usage rate {now:.1f}% in {row['month']}, against "
            f"{base:.1f}% over the previous {BASELINE_MONTHS} months (p = {row['p_value']:.2g})."
        ),
    }
