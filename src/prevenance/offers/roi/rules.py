"""Return on a campaign, measured against its hash-assigned control group: pure statistics, no I/O.

Each member of a campaign is anchored at its first decision (``t0``: the offer made, or for the
control group the moment it *would* have been made). Spend and transactions are summed over a window
before and a window after ``t0``; the difference in differences (treated minus control, of each
member's after minus before) estimates what the offer added. Intervals are Welch's (unequal variances,
Student t with Welch–Satterthwaite degrees of freedom) or, on request, a seeded percentile bootstrap;
the attrition difference, a difference of two proportions that is often rare, uses Newcombe's hybrid
Wilson interval. Each figure states its minimum detectable effect at 80% power, and the campaign a
verdict: "inconclusive" when its interval is wider than the effect the campaign was sized for. The cost
is the points rewarded at what a point really costs (the programme's liability). The method is
written out in ``docs/offers-methods.md#roi``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt

from prevenance.common.rules import FieldError
from prevenance.common.stats import wilson_bounds, z_for

LEVEL = 0.95
POWER = 0.80
Z_LEVEL = NormalDist().inv_cdf(0.5 + LEVEL / 2)
Z_POWER = NormalDist().inv_cdf(POWER)
MDE_FACTOR = Z_LEVEL + Z_POWER
"""(z_0.975 + z_0.80) = 2.80: an effect this many standard errors large is found 80% of the time."""
VERDICTS = ("inconclusive", "uplift", "no_uplift", "harm")
DEFAULT_BEFORE_DAYS = 90
DEFAULT_AFTER_DAYS = 90
DEFAULT_MIN_ARM = 30
DEFAULT_REPLICATES = 2000
CI_METHODS = ("welch", "bootstrap")
METHOD_ANCHOR = "docs/offers-methods.md#roi"

FloatArray = npt.NDArray[np.float64]


class ArmTooSmall(FieldError):
    """An arm has fewer members than the analysis needs to say anything honest."""

    def __init__(self, arm: str, n: int, minimum: int, *, among: str = "") -> None:
        super().__init__(
            f"the {arm} group has {n} member(s){among}; at least {minimum} are needed for an interval", arm
        )
        self.arm = arm
        self.n = n
        self.minimum = minimum


@dataclass(frozen=True)
class MemberWindows:
    """One member's behaviour around its anchor: totals over the before and after windows."""

    arm: str
    country: str
    spend_before: float
    spend_after: float
    transactions_before: int
    transactions_after: int
    rewarded: int = 0
    reward_points: int = 0


@dataclass(frozen=True)
class Difference:
    """An estimated difference of means with its interval and the sizes behind it."""

    estimate: float
    ci_low: float
    ci_high: float
    n_treatment: int
    n_control: int

    def as_dict(self, key: str = "did") -> dict[str, Any]:
        return {
            key: self.estimate,
            "ci_low": self.ci_low,
            "ci_high": self.ci_high,
            "n_treatment": self.n_treatment,
            "n_control": self.n_control,
        }


def t_quantile(p: float, df: float) -> float:
    """Quantile of Student's t, by the Cornish–Fisher expansion around the normal (Abramowitz &
    Stegun 26.7.5): within 0.001 of the exact value for df ≥ 5, without needing SciPy."""
    z = NormalDist().inv_cdf(p)
    if math.isinf(df):
        return z
    if df <= 0:
        raise ValueError("degrees of freedom must be positive")
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return float(z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4)


def welch_difference(treated: FloatArray, control: FloatArray, *, level: float = LEVEL) -> Difference:
    """Mean(treated) − mean(control) with Welch's interval: no assumption that the arms vary alike
    (the control group is ten times smaller and offers change the spread of spend)."""
    n_t, n_c = len(treated), len(control)
    if n_t < 2 or n_c < 2:
        raise ValueError("each arm needs at least two members")
    estimate = float(treated.mean() - control.mean())
    v_t = float(treated.var(ddof=1)) / n_t
    v_c = float(control.var(ddof=1)) / n_c
    se = math.sqrt(v_t + v_c)
    if se == 0.0:
        return Difference(estimate, estimate, estimate, n_t, n_c)
    spread = v_t**2 / (n_t - 1) + v_c**2 / (n_c - 1)
    # Welch–Satterthwaite degrees of freedom; a spread that underflows (tiny variances) means the
    # pooled degrees of freedom are the honest answer.
    df = (v_t + v_c) ** 2 / spread if spread > 0.0 else float(n_t + n_c - 2)
    half = t_quantile(0.5 + level / 2, max(df, 1.0)) * se
    return Difference(estimate, estimate - half, estimate + half, n_t, n_c)


def wilson_interval(events: int, n: int, *, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval of a proportion (never zero-width, stays inside [0, 1])."""
    if n <= 0:
        return 0.0, 1.0
    return wilson_bounds(events, n, z=z_for(level))


def newcombe_difference(
    events_t: int, n_t: int, events_c: int, n_c: int, *, level: float = LEVEL
) -> Difference:
    """p_T − p_C with Newcombe's hybrid score interval (his method 10): each arm's Wilson interval,
    combined by the square-root rule. Unlike the Welch (Wald) interval it keeps its coverage with
    rare events and small arms, and is never zero-width when an arm has no event."""
    if n_t < 1 or n_c < 1:
        raise ValueError("each arm needs at least one member")
    p_t, p_c = events_t / n_t, events_c / n_c
    l_t, u_t = wilson_interval(events_t, n_t, level=level)
    l_c, u_c = wilson_interval(events_c, n_c, level=level)
    estimate = p_t - p_c
    low = estimate - math.sqrt((p_t - l_t) ** 2 + (u_c - p_c) ** 2)
    high = estimate + math.sqrt((u_t - p_t) ** 2 + (p_c - l_c) ** 2)
    return Difference(estimate, low, high, n_t, n_c)


def mde_of_interval(ci_low: float, ci_high: float) -> float:
    """Minimum detectable effect at 80% power (two-sided 5%) for the standard error behind a 95%
    interval: (z_0.975 + z_0.80) × half-width / z_0.975."""
    return MDE_FACTOR * (ci_high - ci_low) / (2 * Z_LEVEL)


def mde_of_proportions(events: int, n_t: int, n_c: int) -> float:
    """Minimum detectable difference of two proportions at 80% power for these arm sizes, around
    the pooled rate (the null's standard error); at least one event assumed, so it is never zero."""
    p = max(events, 1) / (n_t + n_c)
    return MDE_FACTOR * math.sqrt(p * (1 - p) * (1 / n_t + 1 / n_c))


def verdict(ci_low: float, ci_high: float, sized_effect: float | None, mde: float) -> dict[str, Any]:
    """What the campaign's spend interval allows one to say.

    ``inconclusive`` when the interval is wider than the effect the campaign was sized for (it could
    not tell that effect from none); otherwise ``uplift`` (the interval lies above zero), ``harm``
    (below zero) or ``no_uplift`` (it holds zero and is narrow enough to rule out the sized effect).
    """
    width = ci_high - ci_low
    if sized_effect is None or sized_effect <= 0:
        label = "uplift" if ci_low > 0 else "harm" if ci_high < 0 else "inconclusive"
        reason = "no sized effect known: judged on the interval alone"
    elif width > sized_effect:
        label = "inconclusive"
        reason = (
            f"the interval ({width:.2f}) is wider than the effect the campaign was sized for "
            f"({sized_effect:.2f}); {mde:.2f} would be needed to be found 80% of the time"
        )
    elif ci_low > 0:
        label, reason = "uplift", "the interval lies above zero"
    elif ci_high < 0:
        label, reason = "harm", "the interval lies below zero"
    else:
        label, reason = "no_uplift", "the interval holds zero and rules out the sized effect"
    return {
        "label": label,
        "reason": reason,
        "interval_width": width,
        "sized_effect": sized_effect,
        "mde": mde,
        "ratio": None if not sized_effect or sized_effect <= 0 else width / sized_effect,
    }


def bootstrap_difference(
    treated: FloatArray,
    control: FloatArray,
    *,
    seed: int,
    replicates: int = DEFAULT_REPLICATES,
    level: float = LEVEL,
) -> Difference:
    """Mean(treated) − mean(control) with a percentile bootstrap interval (each arm resampled on
    its own, so the arm sizes stay fixed as in the design); the seed makes it reproducible."""
    n_t, n_c = len(treated), len(control)
    if n_t < 2 or n_c < 2:
        raise ValueError("each arm needs at least two members")
    rng = np.random.default_rng(seed)
    means_t = np.empty(replicates)
    means_c = np.empty(replicates)
    # In blocks, so 100k members × 2000 replicates never hold a 200M-element index array.
    block = max(1, 2_000_000 // max(n_t, n_c))
    for start in range(0, replicates, block):
        stop = min(replicates, start + block)
        size = stop - start
        means_t[start:stop] = treated[rng.integers(0, n_t, size=(size, n_t))].mean(axis=1)
        means_c[start:stop] = control[rng.integers(0, n_c, size=(size, n_c))].mean(axis=1)
    diffs = means_t - means_c
    alpha = (1 - level) / 2
    low, high = np.quantile(diffs, [alpha, 1 - alpha])
    return Difference(float(treated.mean() - control.mean()), float(low), float(high), n_t, n_c)


def _difference(
    treated: FloatArray, control: FloatArray, *, ci: str, seed: int, replicates: int
) -> Difference:
    if ci == "bootstrap":
        return bootstrap_difference(treated, control, seed=seed, replicates=replicates)
    return welch_difference(treated, control)


@dataclass(frozen=True)
class _Arm:
    """One arm's members as columns (spend before/after, transactions before/after, rewards)."""

    spend_before: FloatArray
    spend_after: FloatArray
    tx_before: FloatArray
    tx_after: FloatArray
    rewarded: FloatArray

    @classmethod
    def of(cls, rows: Sequence[MemberWindows]) -> _Arm:
        table = np.array(
            [
                (r.spend_before, r.spend_after, r.transactions_before, r.transactions_after, r.rewarded)
                for r in rows
            ],
            dtype=np.float64,
        ).reshape(-1, 5)
        return cls(*(np.ascontiguousarray(table[:, i]) for i in range(5)))

    @property
    def n(self) -> int:
        return len(self.spend_before)

    def summary(self) -> dict[str, Any]:
        def mean(values: FloatArray) -> float | None:
            return float(values.mean()) if len(values) else None

        active = self.tx_before > 0
        return {
            "n": self.n,
            "spend_before_mean": mean(self.spend_before),
            "spend_after_mean": mean(self.spend_after),
            "transactions_before_mean": mean(self.tx_before),
            "transactions_after_mean": mean(self.tx_after),
            "active_before": int(active.sum()),
            "attrited": int((active & (self.tx_after == 0)).sum()),
            "rewarded": int(self.rewarded.sum()),
        }


def analyse(
    members: Sequence[MemberWindows],
    *,
    before_days: int = DEFAULT_BEFORE_DAYS,
    after_days: int = DEFAULT_AFTER_DAYS,
    unit_cost_eur: Decimal,
    margin_rate: Decimal,
    min_arm: int = DEFAULT_MIN_ARM,
    ci: str = "welch",
    seed: int = 0,
    replicates: int = DEFAULT_REPLICATES,
    eur_per_point: float | None = None,
    sized_effect_eur: float | None = None,
    sized_basis_text: str = "",
) -> dict[str, Any]:
    """Difference in differences on spend, transactions and attrition, and the campaign's ROI.

    ``eur_per_point``: what a rewarded point costs (the programme's liability); without it the cost
    is rewards x ``unit_cost_eur``. ``sized_effect_eur``: the spend effect per treated member the
    campaign was sized for (the verdict is "inconclusive" when the interval is wider); without it,
    the break-even effect.

    Raises ``ArmTooSmall`` when an arm has fewer than ``min_arm`` members: an interval from a handful
    of people would only look precise. When only the members active before ``t0`` (those at risk of
    attrition) are too few, attrition alone is refused, with the reason, and the rest stands.
    """
    if ci not in CI_METHODS:
        raise FieldError(f"ci must be one of {', '.join(CI_METHODS)}", "ci")
    if before_days < 1 or after_days < 1:
        raise FieldError(
            "windows must be at least one day", "before_days" if before_days < 1 else "after_days"
        )
    min_arm = max(min_arm, 2)
    treated = _Arm.of([m for m in members if m.arm == "treatment"])
    control = _Arm.of([m for m in members if m.arm == "control"])
    for name, arm in (("treatment", treated), ("control", control)):
        if arm.n < min_arm:
            raise ArmTooSmall(name, arm.n, min_arm)
    # The before window is rescaled to the after window's length, so unequal windows still compare
    # like with like: the per-member difference is "after" minus "before, as long as after".
    scale = after_days / before_days
    spend = _difference(
        treated.spend_after - scale * treated.spend_before,
        control.spend_after - scale * control.spend_before,
        ci=ci,
        seed=seed,
        replicates=replicates,
    )
    transactions = _difference(
        treated.tx_after - scale * treated.tx_before,
        control.tx_after - scale * control.tx_before,
        ci=ci,
        seed=seed + 1,
        replicates=replicates,
    )
    # Attrition: among members active before t0, the share with no transaction after. Its "before"
    # is zero by construction, so the DiD is the difference of the two arms' attrition rates.
    at_risk_t = (treated.tx_after[treated.tx_before > 0] == 0).astype(np.float64)
    at_risk_c = (control.tx_after[control.tx_before > 0] == 0).astype(np.float64)
    attrition: dict[str, Any]
    short = [(n, len(a)) for n, a in (("treatment", at_risk_t), ("control", at_risk_c)) if len(a) < min_arm]
    if short:  # spend and transactions still stand; only attrition has too few members at risk
        name, n = short[0]
        attrition = {
            "did": None,
            "ci_low": None,
            "ci_high": None,
            "n_treatment": len(at_risk_t),
            "n_control": len(at_risk_c),
            "refused": str(ArmTooSmall(name, n, min_arm, among=" active before t0")),
        }
    else:
        events_t, events_c = int(at_risk_t.sum()), int(at_risk_c.sum())
        attrition = newcombe_difference(events_t, len(at_risk_t), events_c, len(at_risk_c)).as_dict()
        attrition["ci_method"] = "newcombe"
        attrition["mde"] = mde_of_proportions(events_t + events_c, len(at_risk_t), len(at_risk_c))

    rewarded = int(treated.rewarded.sum())
    points = int(sum(m.reward_points for m in members if m.arm == "treatment"))
    if eur_per_point is not None:
        # Rewards paid in points cost what a point costs the programme; a reward recorded without
        # points (none today) would keep the offer's unit cost.
        unpriced = sum(1 for m in members if m.arm == "treatment" and m.rewarded and not m.reward_points)
        cost = (Decimal(str(eur_per_point)) * points + Decimal(unpriced) * unit_cost_eur).quantize(
            Decimal("0.01")
        )
    else:
        cost = Decimal(rewarded) * unit_cost_eur
    n_t = treated.n
    margin = float(margin_rate)
    spend_block = spend.as_dict()
    spend_block["mde"] = mde_of_interval(spend.ci_low, spend.ci_high)
    transactions_block = transactions.as_dict()
    transactions_block["mde"] = mde_of_interval(transactions.ci_low, transactions.ci_high)
    sized: float | None
    if sized_effect_eur is None and cost > 0 and margin > 0:
        sized, sized_basis = float(cost) / (n_t * margin), "break-even: the spend effect that pays the cost"
    else:
        sized, sized_basis = sized_effect_eur, sized_basis_text
    # Incremental margin is linear in the spend DiD; cost is known (rewards actually posted), so
    # the ROI interval is the spend interval mapped through the same line (the delta method is exact).
    margin_of = lambda did: did * n_t * margin  # noqa: E731
    incremental = {
        "value": margin_of(spend.estimate),
        "ci_low": margin_of(spend.ci_low),
        "ci_high": margin_of(spend.ci_high),
    }
    if cost > 0:
        c = float(cost)
        roi: dict[str, Any] = {
            "value": (incremental["value"] - c) / c,
            "ci_low": (incremental["ci_low"] - c) / c,
            "ci_high": (incremental["ci_high"] - c) / c,
        }
    else:
        roi = {"value": None, "ci_low": None, "ci_high": None, "reason": "no reward posted yet: cost is zero"}
    return {
        "window": {"before_days": before_days, "after_days": after_days},
        "treatment": treated.summary(),
        "control": control.summary(),
        "spend": spend_block,
        "transactions": transactions_block,
        "attrition": attrition,
        "rewarded": rewarded,
        "cost_eur": str(cost.quantize(Decimal("0.01"))),
        "incremental_margin_eur": incremental,
        "roi": roi,
        "ci_method": ci,
        "level": LEVEL,
        "power": POWER,
        "verdict": {
            **verdict(spend.ci_low, spend.ci_high, sized, spend_block["mde"]),
            "sized_effect_basis": sized_basis,
        },
        "liability": {
            "points": points,
            "eur_per_point": eur_per_point,
            "cost_eur": str(cost.quantize(Decimal("0.01"))),
            "basis": "points rewarded x cost of a point"
            if eur_per_point is not None
            else "rewards x unit_cost_eur",
        },
        "method": METHOD_ANCHOR,
    }


def programme_effect(
    members: Sequence[MemberWindows],
    *,
    window_days: int,
    margin_rate: Decimal,
    cost_eur: Decimal,
    min_arm: int = DEFAULT_MIN_ARM,
) -> dict[str, Any]:
    """The incremental value of the whole offers programme: members outside the programme-wide
    holdout (arm ``exposed``, every offer could reach them) against the holdout (arm ``holdout``,
    no marketing offer at all), over the same window since the holdout started and the window of
    the same length before it. Spend and transactions by Welch's difference in differences,
    attrition by Newcombe's interval; the value is the spend effect x exposed members x margin,
    net of the cost of the points the programme's offers rewarded over the window."""
    exposed = _Arm.of([m for m in members if m.arm == "exposed"])
    holdout = _Arm.of([m for m in members if m.arm == "holdout"])
    for name, arm in (("exposed", exposed), ("holdout", holdout)):
        if arm.n < max(min_arm, 2):
            raise ArmTooSmall(name, arm.n, max(min_arm, 2))
    spend = welch_difference(
        exposed.spend_after - exposed.spend_before, holdout.spend_after - holdout.spend_before
    )
    transactions = welch_difference(
        exposed.tx_after - exposed.tx_before, holdout.tx_after - holdout.tx_before
    )
    risk_e = exposed.tx_after[exposed.tx_before > 0] == 0
    risk_h = holdout.tx_after[holdout.tx_before > 0] == 0
    attrition: dict[str, Any]
    if len(risk_e) and len(risk_h):
        attrition = newcombe_difference(
            int(risk_e.sum()), len(risk_e), int(risk_h.sum()), len(risk_h)
        ).as_dict()
        attrition["mde"] = mde_of_proportions(int(risk_e.sum() + risk_h.sum()), len(risk_e), len(risk_h))
        attrition["ci_method"] = "newcombe"
    else:
        attrition = {"did": None, "ci_low": None, "ci_high": None, "refused": "no member active before"}
    margin = float(margin_rate) * exposed.n
    value = {
        "value": spend.estimate * margin - float(cost_eur),
        "ci_low": spend.ci_low * margin - float(cost_eur),
        "ci_high": spend.ci_high * margin - float(cost_eur),
    }
    return {
        "window_days": window_days,
        "exposed": exposed.summary(),
        "holdout": holdout.summary(),
        "spend": {**spend.as_dict(), "mde": mde_of_interval(spend.ci_low, spend.ci_high)},
        "transactions": transactions.as_dict(),
        "attrition": attrition,
        "incremental_margin_eur": {
            "value": spend.estimate * margin,
            "ci_low": spend.ci_low * margin,
            "ci_high": spend.ci_high * margin,
        },
        "cost_eur": str(cost_eur.quantize(Decimal("0.01"))),
        "net_value_eur": value,
        "verdict": verdict(spend.ci_low, spend.ci_high, None, mde_of_interval(spend.ci_low, spend.ci_high)),
        "level": LEVEL,
        "method": METHOD_ANCHOR.replace("#roi", "#programme-holdout"),
    }
