"""Honest scores: every figure carries its n and a 95% interval (methods in ``docs/methods.md``).

Pure functions on sequences and numpy arrays, no I/O. The per-answer functions (``rtf``,
``excellence``) and the vectorised count functions (``rtf_from_counts``, ``excellence_from_counts``)
compute the same thing: the scorecards call the vectorised ones on per-agent counts, so 5,000 agents
cost one numpy pass, not 5,000 Python calls.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

Z95 = 1.959963984540054
"""The 97.5% quantile of the standard normal: a two-sided 95% interval."""

RTF_PSEUDO = 1.0
"""Pseudo-answers added to each of promoters, passives and detractors before the RTF interval is
computed (an "adjusted Wald" interval for the trinomial; see docs/methods.md#rtf for the coverage)."""

RTF_METHOD = "rtf: adjusted Wald for a trinomial mean (+1 answer per category), 95%"
EXCELLENCE_METHOD = "excellence: Wilson score interval, 95%"

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Score:
    """A score with its number of answers and its 95% interval; ``value`` is None when n is 0."""

    value: float | None
    n: int
    ci_low: float | None
    ci_high: float | None
    method: str

    def as_dict(self) -> dict[str, Any]:
        """Plain dict, ready for JSON, CSV or a template."""
        return asdict(self)


def _clean(values: Iterable[Any], low: int, high: int) -> npt.NDArray[np.int64]:
    """Drop missing answers (None, NaN) and refuse out-of-scale ones: a 12 out of 10 is a bug upstream."""
    kept = [int(v) for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    array = np.asarray(kept, dtype=np.int64)
    if array.size and (array.min() < low or array.max() > high):
        raise ValueError(f"scores must lie in {low}..{high}")
    return array


def normal_cdf(x: float) -> float:
    """Standard normal distribution function (no scipy needed)."""
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def rtf_from_counts(
    promoters: npt.ArrayLike, detractors: npt.ArrayLike, n: npt.ArrayLike
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """RTF in points and its 95% interval, element-wise; NaN where n is 0.

    The point estimate is the raw one, (P - D) / n. The interval is centred on the estimate after
    adding ``RTF_PSEUDO`` answers to each category, with the trinomial variance p + d - (p - d)^2 of
    one answer scored +1/0/-1; it is clipped to [-100, 100] and widened if needed to hold the raw value.
    """
    p_count = np.asarray(promoters, dtype=np.float64)
    d_count = np.asarray(detractors, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.where(total > 0, (p_count - d_count) / total, np.nan)
        adjusted = total + 3.0 * RTF_PSEUDO
        p_adj = (p_count + RTF_PSEUDO) / adjusted
        d_adj = (d_count + RTF_PSEUDO) / adjusted
        centre = p_adj - d_adj
        half = Z95 * np.sqrt(np.maximum(p_adj + d_adj - centre**2, 0.0) / adjusted)
    low = np.clip(centre - half, -1.0, 1.0)
    high = np.clip(centre + half, -1.0, 1.0)
    low = np.where(total > 0, np.minimum(low, value), np.nan)
    high = np.where(total > 0, np.maximum(high, value), np.nan)
    return value * 100.0, low * 100.0, high * 100.0


def excellence_from_counts(top: npt.ArrayLike, n: npt.ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Top-box share in percent with its Wilson 95% interval, element-wise; NaN where n is 0."""
    k = np.asarray(top, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, k / total, np.nan)
        z2 = Z95 * Z95
        denominator = 1.0 + z2 / total
        centre = (share + z2 / (2.0 * total)) / denominator
        half = Z95 * np.sqrt(share * (1.0 - share) / total + z2 / (4.0 * total * total)) / denominator
    # Wilson always holds the share; the min/max only absorbs rounding at 0% and 100%.
    low = np.where(total > 0, np.minimum(np.clip(centre - half, 0.0, 1.0), share), np.nan)
    high = np.where(total > 0, np.maximum(np.clip(centre + half, 0.0, 1.0), share), np.nan)
    return share * 100.0, low * 100.0, high * 100.0


def _none_if_nan(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def rtf_score(promoters: int, detractors: int, n: int) -> Score:
    """The RTF ``Score`` from counts (what ``rtf`` computes from the answers)."""
    value, low, high = rtf_from_counts([promoters], [detractors], [n])
    return Score(_none_if_nan(value[0]), int(n), _none_if_nan(low[0]), _none_if_nan(high[0]), RTF_METHOD)


def excellence_score(top: int, n: int) -> Score:
    """The excellence ``Score`` from counts (what ``excellence`` computes from the answers)."""
    value, low, high = excellence_from_counts([top], [n])
    return Score(
        _none_if_nan(value[0]), int(n), _none_if_nan(low[0]), _none_if_nan(high[0]), EXCELLENCE_METHOD
    )


def rtf(recommend_scores: Iterable[Any]) -> Score:
    """Recommend-to-a-friend: % of 9-10 minus % of 0-6, in points, with n and a 95% interval."""
    scores = _clean(recommend_scores, 0, 10)
    return rtf_score(int((scores >= 9).sum()), int((scores <= 6).sum()), int(scores.size))


def excellence(interaction_scores: Iterable[Any]) -> Score:
    """Excellence rate: % of "excellent" (5 of 5, top box only), with n and a Wilson 95% interval."""
    scores = _clean(interaction_scores, 1, 5)
    return excellence_score(int((scores == 5).sum()), int(scores.size))
