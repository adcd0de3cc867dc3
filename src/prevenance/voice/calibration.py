"""Culture-aware country comparison and market barometers (method in ``docs/methods.md#calibration``).

A happy British customer gives 9 where a satisfied French one gives 7. To compare countries we map
each country's 0-10 scale onto the reference country's by equipercentile linking, estimated on
comparable interactions (same reason x channel x product strata, weighted alike in both countries),
then score every answer of the country on the reference scale. A configurable per-country offset
table is the fallback when a country has too few comparable answers. Pure numpy/Polars, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from prevenance.voice import stats

SCALE = 11  # recommend 0..10
PROMOTER = np.array([k >= 9 for k in range(SCALE)], dtype=np.float64)
DETRACTOR = np.array([k <= 6 for k in range(SCALE)], dtype=np.float64)
DEFAULT_STRATA = ("reason", "channel", "product")

METHOD_REFERENCE = "reference country: calibrated = raw"
METHOD_ESTIMATED = (
    "equipercentile linking on comparable interactions (reason x channel x product), bootstrap 95%"
)
METHOD_FALLBACK = "fallback offset table (too few comparable answers), bootstrap 95%"
METHOD_NONE = "not calibrated: too few comparable answers and no fallback offset"
# A stable code per method sentence, for readers that say it in another language.
METHOD_CODES = {
    METHOD_REFERENCE: "reference",
    METHOD_ESTIMATED: "estimated",
    METHOD_FALLBACK: "fallback",
    METHOD_NONE: "none",
}

FloatArray = npt.NDArray[np.float64]


def _edges(pmf: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Each score's percentile interval [F(k-1), F(k)] of a 0..10 distribution."""
    upper = np.cumsum(pmf)
    upper = upper / upper[-1] if upper[-1] > 0 else upper
    lower = np.concatenate(([0.0], upper[:-1]))
    return lower, upper


def linking_matrix(country_pmf: FloatArray, reference_pmf: FloatArray) -> FloatArray:
    """M[k, j]: the share of a country's answer k that lands on reference score j (rows sum to 1).

    The scale is made continuous (each score spread evenly over its percentile interval) and a
    country's percentile interval of score k is cut by the reference's intervals: equipercentile
    linking without rounding, so a country's 10 may become part 9 and part 10 of the reference.
    """
    c_low, c_high = _edges(country_pmf)
    r_low, r_high = _edges(reference_pmf)
    overlap = np.clip(
        np.minimum(c_high[:, None], r_high[None, :]) - np.maximum(c_low[:, None], r_low[None, :]), 0.0, None
    )
    width = (c_high - c_low)[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        matrix = np.where(width > 0, overlap / width, 0.0)
    # A score the comparable answers never used: send it to the reference score at its percentile.
    for k in np.flatnonzero(width[:, 0] <= 0):
        j = int(np.searchsorted(r_high, c_low[k], side="left"))
        matrix[k, min(j, matrix.shape[1] - 1)] = 1.0
    return np.asarray(matrix, dtype=np.float64)


def offset_matrix(offset: float, size: int = SCALE) -> FloatArray:
    """M[k, j] for a fixed cultural offset: the country's k is the reference's k - offset (spread over a unit)."""
    k = np.arange(size, dtype=np.float64)
    low = k[:, None] - 0.5 - offset
    high = k[:, None] + 0.5 - offset
    ref_low = np.where(k == 0, -np.inf, k - 0.5)[None, :]
    ref_high = np.where(k == size - 1, np.inf, k + 0.5)[None, :]
    return np.asarray(
        np.clip(np.minimum(high, ref_high) - np.maximum(low, ref_low), 0.0, None), dtype=np.float64
    )


def _calibrated_value(histogram: FloatArray, matrix: FloatArray, points: FloatArray) -> float:
    """Mean of the per-score points after linking: RTF uses +100/0/-100, excellence 100 for the top box."""
    total = histogram.sum()
    if total <= 0:
        return math.nan
    return float(histogram @ (matrix @ points) / total)


def _pooled(country_rows: FloatArray, reference_rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Both countries' distributions over the same strata with the same weights (the harmonic n)."""
    n_c = country_rows.sum(axis=-1)
    n_r = reference_rows.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where((n_c > 0) & (n_r > 0), n_c * n_r / (n_c + n_r), 0.0)
        pmf_c = np.where(n_c[..., None] > 0, country_rows / n_c[..., None], 0.0)
        pmf_r = np.where(n_r[..., None] > 0, reference_rows / n_r[..., None], 0.0)
    return (weight[..., None] * pmf_c).sum(axis=-2), (weight[..., None] * pmf_r).sum(axis=-2)


def _resample(rows: FloatArray, replicates: int, rng: np.random.Generator) -> FloatArray:
    """Parametric bootstrap of count rows: each row redrawn multinomially from its own distribution."""
    n = rows.sum(axis=-1)
    safe = np.where(n[:, None] > 0, rows / np.where(n[:, None] > 0, n[:, None], 1.0), 1.0 / rows.shape[-1])
    drawn = rng.multinomial(n.astype(np.int64), safe, size=(replicates, rows.shape[0]))
    return np.asarray(drawn, dtype=np.float64)


@dataclass(frozen=True)
class _Scale:
    """A rating scale to calibrate: its column, lowest score, size, points per score and raw score."""

    column: str
    low: int
    size: int
    points: FloatArray
    raw: Callable[[FloatArray], stats.Score]


RTF_SCALE = _Scale(
    "recommend",
    0,
    SCALE,
    100.0 * (PROMOTER - DETRACTOR),
    lambda h: stats.rtf_score(int(h[9:].sum()), int(h[:7].sum()), int(h.sum())),
)
EXCELLENCE_SCALE = _Scale(
    "interaction",
    1,
    5,
    np.array([0.0, 0.0, 0.0, 0.0, 100.0]),
    lambda h: stats.excellence_score(int(h[4]), int(h.sum())),
)


def _histograms(answers: pl.DataFrame, strata: Sequence[str], scale: _Scale) -> tuple[list[str], FloatArray]:
    """counts[country, stratum, score] of the answers on one scale."""
    rated = answers.filter(pl.col(scale.column).is_not_null() & pl.col("country").is_not_null())
    keys = list(strata)
    grouped = rated.group_by(["country", *keys, scale.column]).len()
    countries = sorted(grouped["country"].unique().to_list())
    strata_rows = grouped.select(keys).unique().sort(keys, nulls_last=True).rows() if keys else [()]
    country_index = {c: i for i, c in enumerate(countries)}
    stratum_index = {row: i for i, row in enumerate(strata_rows)}
    counts = np.zeros((len(countries), len(strata_rows), scale.size), dtype=np.float64)
    for row in grouped.iter_rows(named=True):
        stratum = tuple(row[k] for k in keys)
        counts[country_index[row["country"]], stratum_index[stratum], int(row[scale.column]) - scale.low] += (
            row["len"]
        )
    return countries, counts


def _calibrate(
    answers: pl.DataFrame,
    scale: _Scale,
    reference: str,
    fallback: dict[str, float],
    strata: Sequence[str],
    min_stratum: int,
    min_comparable: int,
    replicates: int,
    rng: np.random.Generator,
) -> dict[str, dict[str, Any]]:
    """Raw and calibrated score of every country on one scale (the steps of docs/methods.md#calibration)."""
    countries, counts = _histograms(answers, strata, scale)
    ref_i = countries.index(reference) if reference in countries else None
    grades = np.arange(scale.size, dtype=np.float64)
    results: dict[str, dict[str, Any]] = {}
    for i, country in enumerate(countries):
        rows = counts[i]
        histogram = rows.sum(axis=0)
        n = int(histogram.sum())
        raw = scale.raw(histogram)
        comparable = np.zeros(rows.shape[0], dtype=bool)
        if ref_i is not None and i != ref_i:
            comparable = (rows.sum(axis=1) >= min_stratum) & (counts[ref_i].sum(axis=1) >= min_stratum)
        comparable_n = int(rows[comparable].sum())
        offset: float | None
        if ref_i == i:
            method, calibrated, offset = METHOD_REFERENCE, raw, 0.0
        elif ref_i is not None and comparable_n >= min_comparable:
            method = METHOD_ESTIMATED
            pmf_c, pmf_r = _pooled(rows[comparable], counts[ref_i][comparable])
            value = _calibrated_value(histogram, linking_matrix(pmf_c, pmf_r), scale.points)
            offset = float((pmf_c / pmf_c.sum()) @ grades - (pmf_r / pmf_r.sum()) @ grades)
            boot_rows = _resample(rows, replicates, rng)
            boot_ref = _resample(counts[ref_i][comparable], replicates, rng)
            draws = np.empty(replicates)
            for b in range(replicates):
                bc, br = _pooled(boot_rows[b][comparable], boot_ref[b])
                draws[b] = _calibrated_value(boot_rows[b].sum(axis=0), linking_matrix(bc, br), scale.points)
            calibrated = _bootstrap_score(value, draws, n, method)
        elif country in fallback:
            method, offset = METHOD_FALLBACK, fallback[country]
            matrix = offset_matrix(offset, scale.size)
            value = _calibrated_value(histogram, matrix, scale.points)
            boot_hist = _resample(histogram[None, :], replicates, rng)[:, 0, :]
            draws = np.array([_calibrated_value(h, matrix, scale.points) for h in boot_hist])
            calibrated = _bootstrap_score(value, draws, n, method)
        else:
            method, calibrated, offset = METHOD_NONE, raw, None
        results[country] = {
            "n": n,
            "raw": raw.as_dict(),
            "calibrated": calibrated.as_dict(),
            "method": method,
            "offset": None if offset is None else round(offset, 3),
            "comparable_n": comparable_n,
        }
    return results


def country_scores(
    answers: pl.DataFrame,
    reference: str = "FR",
    fallback: dict[str, float] | None = None,
    *,
    strata: Sequence[str] = DEFAULT_STRATA,
    min_stratum: int = 5,
    min_comparable: int = 200,
    replicates: int = 400,
    seed: int = 20260701,
    excellence_fallback: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Per country: raw and calibrated RTF (Score dicts), side by side, sorted by country.

    ``fallback`` maps a country to its cultural offset in recommend-scale points (+1.5: its customers
    answer 1.5 higher than the reference's for the same experience), used when the country has fewer
    than ``min_comparable`` answers in strata where both it and the reference have ``min_stratum``.
    The excellence rate is calibrated the same way on the five-point scale (extra keys
    ``excellence_raw``, ``excellence_calibrated``, ``excellence_method``; its offsets, in five-point
    scale steps, are ``excellence_fallback``). The bootstrap is seeded: same answers, same interval.
    """
    rtf = _calibrate(
        answers,
        RTF_SCALE,
        reference,
        {k.upper(): float(v) for k, v in (fallback or {}).items()},
        strata,
        min_stratum,
        min_comparable,
        replicates,
        np.random.default_rng(seed),
    )
    excellence = (
        _calibrate(
            answers,
            EXCELLENCE_SCALE,
            reference,
            {k.upper(): float(v) for k, v in (excellence_fallback or {}).items()},
            strata,
            min_stratum,
            min_comparable,
            replicates,
            np.random.default_rng(seed + 1),
        )
        if EXCELLENCE_SCALE.column in answers.columns
        else {}
    )
    empty = stats.excellence_score(0, 0).as_dict()
    results: list[dict[str, Any]] = []
    for country in sorted(set(rtf) | set(excellence)):
        entry: dict[str, Any] = {"country": country}
        entry |= rtf.get(country) or {
            "n": 0,
            "raw": stats.rtf_score(0, 0, 0).as_dict(),
            "calibrated": stats.rtf_score(0, 0, 0).as_dict(),
            "method": METHOD_NONE,
            "offset": None,
            "comparable_n": 0,
        }
        other = excellence.get(country)
        entry["excellence_raw"] = other["raw"] if other else empty
        entry["excellence_calibrated"] = other["calibrated"] if other else empty
        entry["excellence_method"] = other["method"] if other else METHOD_NONE
        results.append(entry)
    return results


def _bootstrap_score(value: float, draws: FloatArray, n: int, method: str) -> stats.Score:
    """Percentile interval of the bootstrap draws, widened if needed to hold the point estimate."""
    if math.isnan(value):
        return stats.Score(None, n, None, None, method)
    finite = draws[np.isfinite(draws)]
    low, high = np.percentile(finite, [2.5, 97.5]) if finite.size else (value, value)
    return stats.Score(value, n, float(min(low, value)), float(max(high, value)), method)


def _our_figure(item: dict[str, Any], metric: str) -> tuple[float | None, int, float | None]:
    """(value, n, standard error) of one of our rows for a metric; accepts country_scores rows or flat rows."""
    if metric == "top_box":
        metric = "excellence"
    if metric in ("rtf", "nps") and isinstance(item.get("raw"), dict):
        score = item["raw"]
    elif isinstance(item.get(metric), dict):
        score = item[metric]
    elif item.get("metric", "rtf") == metric or (metric == "nps" and item.get("metric", "rtf") == "rtf"):
        score = item
    else:
        return None, 0, None
    value = score.get("value")
    low, high = score.get("ci_low"), score.get("ci_high")
    se = (high - low) / (2 * stats.Z95) if low is not None and high is not None else None
    return value, int(score.get("n") or 0), se


def _barometer_se(metric: str, value: float, n: int) -> float:
    """Sampling error of a published figure: binomial for a percentage, the largest trinomial variance for an RTF.

    A barometer gives its RTF without the promoter/passive split; 1 - RTF^2 is the variance when
    nobody is passive, the worst case, so the interval is conservative.
    """
    if metric in ("rtf", "nps"):
        share = max(-1.0, min(1.0, value / 100.0))
        return 100.0 * math.sqrt(max(1.0 - share * share, 1e-12) / n)
    share = max(0.0, min(1.0, value / 100.0))
    return 100.0 * math.sqrt(max(share * (1.0 - share), 1e-12) / n)


def compare_with_barometers(ours: list[dict[str, Any]], barometers: pl.DataFrame) -> list[dict[str, Any]]:
    """Each barometer figure beside ours for the same country (and quarter when both say), ours minus theirs with a 95% CI.

    ``ours``: rows of ``country_scores`` (their raw RTF is compared: a barometer surveys the same
    culture) or flat rows ``{country, quarter?, metric?, value, n, ci_low, ci_high}`` or rows holding
    Score dicts under the metric's name (e.g. ``"excellence"``). A barometer without n is compared
    without interval and flagged ``n unknown``.
    """
    rows: list[dict[str, Any]] = []
    for bar in barometers.sort(["country", "quarter", "source", "metric"]).iter_rows(named=True):
        country = str(bar["country"]).upper()
        metric = str(bar["metric"]).lower()
        candidates = [o for o in ours if str(o.get("country") or o.get("key") or "").upper() == country]
        same_quarter = [o for o in candidates if o.get("quarter") == bar["quarter"]]
        if same_quarter:
            candidates = same_quarter
        elif any(o.get("quarter") is not None for o in candidates):
            candidates = [o for o in candidates if o.get("quarter") is None]
        ours_value, ours_n, ours_se = None, 0, None
        for item in candidates:
            ours_value, ours_n, ours_se = _our_figure(item, metric)
            if ours_value is not None:
                break
        bar_n = bar.get("n")
        bar_n = (
            int(bar_n) if bar_n is not None and not (isinstance(bar_n, float) and math.isnan(bar_n)) else None
        )
        row: dict[str, Any] = {
            "source": bar["source"],
            "country": country,
            "quarter": bar["quarter"],
            "metric": metric,
            "barometer": None if bar["value"] is None else float(bar["value"]),
            "barometer_n": bar_n,
            "ours": ours_value,
            "ours_n": ours_n,
            "difference": None,
            "ci_low": None,
            "ci_high": None,
            "significant": None,
            "flag": None,
        }
        if row["barometer"] is None:
            row["flag"] = "no barometer value"
        elif ours_value is None:
            row["flag"] = "no comparable figure of ours"
        else:
            row["difference"] = ours_value - float(bar["value"])
            if bar_n is None or bar_n <= 0:
                row["flag"] = "n unknown"
            elif ours_se is not None:
                se = math.sqrt(ours_se**2 + _barometer_se(metric, float(bar["value"]), bar_n) ** 2)
                row["ci_low"] = row["difference"] - stats.Z95 * se
                row["ci_high"] = row["difference"] + stats.Z95 * se
                row["significant"] = row["ci_low"] > 0 or row["ci_high"] < 0
        rows.append(row)
    return rows
