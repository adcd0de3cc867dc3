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
SHRINK_METHOD = "rtf shrunk: empirical Bayes toward the team (DerSimonian-Laird moments), 95% posterior"

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


def _normal_cdf_array(x: FloatArray) -> FloatArray:
    erf = np.vectorize(math.erf, otypes=[np.float64])
    return np.asarray(0.5 * (1.0 + erf(x / math.sqrt(2.0))), dtype=np.float64)


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


@dataclass(frozen=True)
class Shrunk:
    """Empirical Bayes estimates, one element per agent (points, like the raw RTF)."""

    value: FloatArray
    ci_low: FloatArray
    ci_high: FloatArray
    sd: FloatArray
    p_above_target: FloatArray | None
    prior_mean: FloatArray
    tau2: FloatArray
    """Between-agent variance of the agent's group (proportion scale), after the floor at 0."""
    weight: FloatArray
    """How much of the agent's own score is kept: 0 = all team, 1 = all agent."""


def shrink_rtf(
    promoters: npt.ArrayLike,
    detractors: npt.ArrayLike,
    n: npt.ArrayLike,
    teams: npt.ArrayLike | None = None,
    target: float | None = None,
    *,
    pseudo: float = 2.0,
    min_group: int = 3,
) -> Shrunk:
    """Shrink each agent's RTF toward its team's mean so that agents with few answers are not ranked on noise.

    Normal-normal model on the proportion scale: agent i's raw y_i = (P_i - D_i) / n_i has sampling
    variance s_i^2 = v_i / n_i, where v_i is the agent's trinomial variance computed after ``pseudo``
    answers spread like the team's (so an agent with 1 answer does not get a variance of 0); the true
    agent scores vary around the team mean mu with variance tau^2, estimated by the DerSimonian-Laird
    method of moments and floored at 0. Posterior mean mu + (1 - B_i)(y_i - mu) with B_i =
    s_i^2 / (s_i^2 + tau^2); posterior variance (1 - B_i) s_i^2 + B_i^2 Var(mu) (Morris), so the
    uncertainty of the team mean is not forgotten. Teams with fewer than ``min_group`` agents with
    answers borrow tau^2 from all agents. ``p_above_target`` = P(true RTF > target | data), normal.
    """
    p_count = np.asarray(promoters, dtype=np.float64)
    d_count = np.asarray(detractors, dtype=np.float64)
    total = np.asarray(n, dtype=np.float64)
    size = total.size
    if teams is None:
        codes = np.zeros(size, dtype=np.int64)
    else:
        _, codes = np.unique(np.asarray(teams), return_inverse=True)
        codes = codes.reshape(-1)
    groups = int(codes.max()) + 1 if size else 0

    def by_group(values: FloatArray) -> FloatArray:
        return np.bincount(codes, weights=values, minlength=groups).astype(np.float64)

    has = total > 0
    # The team's answer distribution, used to spread the pseudo-answers.
    team_n = by_group(total)
    all_n = max(float(total.sum()), 1.0)
    global_p = float(p_count.sum()) / all_n
    global_d = float(d_count.sum()) / all_n
    with np.errstate(divide="ignore", invalid="ignore"):
        team_p = np.where(team_n > 0, by_group(p_count) / team_n, global_p)
        team_d = np.where(team_n > 0, by_group(d_count) / team_n, global_d)
        p_adj = (p_count + pseudo * team_p[codes]) / (total + pseudo)
        d_adj = (d_count + pseudo * team_d[codes]) / (total + pseudo)
        per_answer_var = np.maximum(p_adj + d_adj - (p_adj - d_adj) ** 2, 1e-6)
        y = np.where(has, (p_count - d_count) / total, 0.0)
        s2 = np.where(has, per_answer_var / total, np.inf)
        w = np.where(has, 1.0 / s2, 0.0)

    def dersimonian_laird(group_codes: npt.NDArray[np.int64], count: int) -> tuple[FloatArray, FloatArray]:
        sw = np.bincount(group_codes, weights=w, minlength=count)
        sw2 = np.bincount(group_codes, weights=w * w, minlength=count)
        swy = np.bincount(group_codes, weights=w * y, minlength=count)
        with np.errstate(divide="ignore", invalid="ignore"):
            mean_fixed = np.where(sw > 0, swy / sw, 0.0)
            q = np.bincount(group_codes, weights=w * (y - mean_fixed[group_codes]) ** 2, minlength=count)
            k = np.bincount(group_codes, weights=has.astype(np.float64), minlength=count)
            denominator = sw - sw2 / np.where(sw > 0, sw, 1.0)
            tau2 = np.where(denominator > 0, (q - (k - 1.0)) / denominator, 0.0)
        return np.asarray(np.maximum(tau2, 0.0), dtype=np.float64), np.asarray(k, dtype=np.float64)

    tau2_team, agents_with_answers = dersimonian_laird(codes, groups)
    tau2_all, _ = dersimonian_laird(np.zeros(size, dtype=np.int64), 1)
    tau2_group = np.where(agents_with_answers >= min_group, tau2_team, tau2_all[0] if size else 0.0)
    tau2 = tau2_group[codes]

    with np.errstate(divide="ignore", invalid="ignore"):
        w_star = np.where(has, 1.0 / (s2 + tau2), 0.0)
        sw_star = by_group(w_star)
        global_mean = global_p - global_d
        mu_group = np.where(sw_star > 0, by_group(w_star * y) / sw_star, global_mean)
        var_mu_group = np.where(sw_star > 0, 1.0 / sw_star, 1.0)
        mu = mu_group[codes]
        var_mu = var_mu_group[codes]
        keep = np.where(has, tau2 / (s2 + tau2), 0.0)  # 1 - B_i
        keep = np.where(has & (tau2 == 0), 0.0, keep)
        shrink = 1.0 - keep
        post_mean = mu + keep * (y - mu)
        post_var = np.where(has, keep * s2, tau2) + shrink**2 * var_mu
    sd = np.sqrt(np.maximum(post_var, 0.0))
    low = np.clip(post_mean - Z95 * sd, -1.0, 1.0)
    high = np.clip(post_mean + Z95 * sd, -1.0, 1.0)
    above: FloatArray | None = None
    if target is not None:
        with np.errstate(divide="ignore", invalid="ignore"):
            zscores = np.where(sd > 0, (post_mean * 100.0 - target) / (sd * 100.0), 0.0)
        above = _normal_cdf_array(zscores)
        above = np.where(sd > 0, above, (post_mean * 100.0 > target).astype(np.float64))
    return Shrunk(
        value=post_mean * 100.0,
        ci_low=low * 100.0,
        ci_high=high * 100.0,
        sd=sd * 100.0,
        p_above_target=above,
        prior_mean=mu * 100.0,
        tau2=tau2,
        weight=keep,
    )
