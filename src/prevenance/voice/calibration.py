"""Culture-aware country comparison and market barometers (method in ``docs/methods.md#calibration``).

A happy British customer gives 9 where a satisfied French one gives 7. To compare countries we map
each country's 0-10 scale onto the reference country's by equipercentile linking, estimated on
comparable interactions (cells of the same reason x channel x product, coarsened to reason x channel
and then reason where a cell is too thin, weighted alike in both countries), then score every answer
of the country on the reference scale. A configurable per-country offset table is the fallback when a
country has too few comparable answers; its top and bottom answers are open-ended. Intervals come from
a bootstrap of the whole table of answers (every step redone). A country with fewer than
``MIN_ANSWERS`` answers is flagged ``too_few`` and gets no calibrated figure. Pure numpy/Polars, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import polars as pl

from prevenance.voice import linking, stats
from prevenance.voice.barometers import compare_with_barometers as compare_with_barometers
from prevenance.voice.linking import latent_normal as latent_normal
from prevenance.voice.linking import linking_matrix as linking_matrix
from prevenance.voice.linking import offset_matrix as offset_matrix
from prevenance.voice.linking import offset_value as offset_value

SCALE = 11  # recommend 0..10
PROMOTER = np.array([k >= 9 for k in range(SCALE)], dtype=np.float64)
DETRACTOR = np.array([k <= 6 for k in range(SCALE)], dtype=np.float64)
DEFAULT_STRATA = ("reason", "channel", "product")
MIN_ANSWERS = 30
"""Below this many answers a country is ``too_few``: no calibrated figure is shown (its raw score, with
its own wide interval, still is)."""
MIN_COMPARABLE = 200
WEIGHT_COLUMN = "answers"
"""An optional column of the answers frame: how many identical answers the row stands for (so the
database can hand over counts instead of rows)."""

METHOD_REFERENCE = "reference country: calibrated = raw"
METHOD_ESTIMATED = (
    "equipercentile linking on comparable interactions (reason x channel x product, thin cells coarsened), "
    "whole-table bootstrap 95%"
)
METHOD_FALLBACK = (
    "fallback offset table, open-ended top and bottom answers (too few comparable answers), bootstrap 95%"
)
METHOD_NONE = "not calibrated: too few comparable answers and no fallback offset"
METHOD_TOO_FEW = f"too few answers to calibrate (fewer than {MIN_ANSWERS})"
# A stable code per method sentence, for readers that say it in another language.
METHOD_CODES = {
    METHOD_REFERENCE: "reference",
    METHOD_ESTIMATED: "estimated",
    METHOD_FALLBACK: "fallback",
    METHOD_NONE: "none",
    METHOD_TOO_FEW: "too_few",
}

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def _calibrated_value(histogram: FloatArray, matrix: FloatArray, points: FloatArray) -> float:
    """Mean of the per-score points after linking: RTF uses +100/0/-100, excellence 100 for the top box."""
    total = histogram.sum()
    if total <= 0:
        return math.nan
    return float(histogram @ (matrix @ points) / total)


def _pooled(country_rows: FloatArray, reference_rows: FloatArray) -> tuple[FloatArray, FloatArray]:
    """Both countries' distributions over the same cells with the same weights (the harmonic n)."""
    n_c = country_rows.sum(axis=-1)
    n_r = reference_rows.sum(axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where((n_c > 0) & (n_r > 0), n_c * n_r / (n_c + n_r), 0.0)
        pmf_c = np.where(n_c[..., None] > 0, country_rows / n_c[..., None], 0.0)
        pmf_r = np.where(n_r[..., None] > 0, reference_rows / n_r[..., None], 0.0)
    return (weight[..., None] * pmf_c).sum(axis=-2), (weight[..., None] * pmf_r).sum(axis=-2)


def comparable_cells(
    n_country: FloatArray, n_reference: FloatArray, levels: Sequence[IntArray], min_stratum: int
) -> IntArray:
    """The comparable cell of each fine stratum, or -1: a fine stratum with ``min_stratum`` answers in
    both countries is a cell of its own; the others are pooled with their siblings at the next coarser
    level (``levels[i][s]`` is stratum s's group at level i, finest first) and the pool becomes a cell
    when it reaches ``min_stratum`` on both sides; what no level can pool is left out of the linking.
    Leading axes of the counts are batches (one row per bootstrap copy)."""
    n_c = np.atleast_2d(n_country)
    n_r = np.atleast_2d(n_reference)
    batch = n_c.shape[0]
    cell = np.full(n_c.shape, -1, dtype=np.int64)
    base = 0
    offsets = np.arange(batch)[:, None]
    for groups in levels:
        free = cell < 0
        size = int(groups.max()) + 1 if groups.size else 0
        index = (offsets * size + groups[None, :])[free]
        nc = np.bincount(index, weights=n_c[free], minlength=batch * size).reshape(batch, size)
        nr = np.bincount(index, weights=n_r[free], minlength=batch * size).reshape(batch, size)
        ok = (nc >= min_stratum) & (nr >= min_stratum)
        take = free & np.take_along_axis(ok, np.broadcast_to(groups, n_c.shape), axis=1)
        cell = np.where(take, base + groups[None, :], cell)
        base += size
    return cell.reshape(np.shape(n_country)) if np.ndim(n_country) == 1 else cell


def _cells_total(levels: Sequence[IntArray]) -> int:
    return sum(int(g.max()) + 1 if g.size else 0 for g in levels)


def _linked_values(
    rows_c: FloatArray, rows_r: FloatArray, levels: Sequence[IntArray], min_stratum: int, points: FloatArray
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Calibrated value of a country for each copy (leading axis) of its and the reference's
    (stratum x score) tables, the comparable n and the two pooled distributions of each copy."""
    batch, _, size = rows_c.shape
    cell = comparable_cells(rows_c.sum(axis=2), rows_r.sum(axis=2), levels, min_stratum)
    cells = _cells_total(levels)
    kept = cell >= 0
    index = ((np.arange(batch)[:, None] * cells + cell)[:, :, None] * size + np.arange(size))[kept]

    def per_cell(rows: FloatArray) -> FloatArray:
        flat = np.bincount(index.ravel(), weights=rows[kept].ravel(), minlength=batch * cells * size)
        return np.asarray(flat.reshape(batch, cells, size), dtype=np.float64)

    pmf_c, pmf_r = _pooled(per_cell(rows_c), per_cell(rows_r))
    per_score = linking_matrix(pmf_c, pmf_r) @ points
    histogram = rows_c.sum(axis=1)
    total = histogram.sum(axis=1)
    comparable = (rows_c.sum(axis=2) * kept).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        values = np.where((total > 0) & (comparable > 0), (histogram * per_score).sum(axis=1) / total, np.nan)
    return values, comparable, pmf_c, pmf_r


def _resample(rows: FloatArray, replicates: int, rng: np.random.Generator) -> FloatArray:
    """``replicates`` bootstrap copies of a country's whole (stratum x score) table, stacked: its n
    answers redrawn at once, so the strata sizes, and with them which cells are comparable, vary as
    they would in another quarter."""
    n = int(np.rint(rows.sum()))
    flat = rows.ravel() / rows.sum() if n > 0 else np.full(rows.size, 1.0 / rows.size)
    drawn = rng.multinomial(n, flat, size=replicates)
    return np.asarray(drawn.reshape((replicates, *rows.shape)), dtype=np.float64)


@dataclass(frozen=True)
class _Scale:
    """A rating scale to calibrate: its column, lowest score, size, points per score and raw score."""

    column: str
    low: int
    size: int
    points: FloatArray
    raw: Callable[[FloatArray], stats.Score]
    bounds: tuple[float, float]


RTF_SCALE = _Scale(
    "recommend",
    0,
    SCALE,
    100.0 * (PROMOTER - DETRACTOR),
    lambda h: stats.rtf_score(int(h[9:].sum()), int(h[:7].sum()), int(h.sum())),
    (-100.0, 100.0),
)
EXCELLENCE_SCALE = _Scale(
    "interaction",
    1,
    5,
    np.array([0.0, 0.0, 0.0, 0.0, 100.0]),
    lambda h: stats.excellence_score(int(h[4]), int(h.sum())),
    (0.0, 100.0),
)


def _histograms(
    answers: pl.DataFrame, strata: Sequence[str], scale: _Scale
) -> tuple[list[str], FloatArray, list[IntArray]]:
    """counts[country, stratum, score] of the answers on one scale, and each fine stratum's group at
    every coarsening level (all strata, then dropping the last one, down to the first alone)."""
    rated = answers.filter(pl.col(scale.column).is_not_null() & pl.col("country").is_not_null())
    keys = list(strata)
    weight = pl.col(WEIGHT_COLUMN).sum() if WEIGHT_COLUMN in rated.columns else pl.len()
    grouped = rated.group_by(["country", *keys, scale.column]).agg(weight.alias("count"))
    countries = sorted(grouped["country"].unique().to_list())
    strata_rows = grouped.select(keys).unique().sort(keys, nulls_last=True).rows() if keys else [()]
    country_index = {c: i for i, c in enumerate(countries)}
    stratum_index = {row: i for i, row in enumerate(strata_rows)}
    counts = np.zeros((len(countries), len(strata_rows), scale.size), dtype=np.float64)
    for row in grouped.iter_rows(named=True):
        stratum = tuple(row[k] for k in keys)
        counts[country_index[row["country"]], stratum_index[stratum], int(row[scale.column]) - scale.low] += (
            row["count"]
        )
    levels: list[IntArray] = []
    for depth in range(len(keys), 0, -1):
        prefixes: dict[tuple[Any, ...], int] = {}
        levels.append(
            np.array([prefixes.setdefault(row[:depth], len(prefixes)) for row in strata_rows], dtype=np.int64)
        )
    if not levels:
        levels.append(np.zeros(len(strata_rows), dtype=np.int64))
    return countries, counts, levels


def _floor(value: float, histogram: FloatArray, per_score: FloatArray, scale: _Scale) -> float:
    """Smallest honest half-width: the sampling error of the country's calibrated answers after one
    pseudo-answer at each end of the scale (the "adjusted" idea of the raw intervals), so that a
    country whose answers are all alike never gets an interval that claims certainty."""
    low, high = scale.bounds
    values = np.concatenate((per_score, [low, high]))
    weights = np.concatenate((histogram, [1.0, 1.0]))
    n = weights.sum()
    mean = float(values @ weights / n)
    variance = float(((values - mean) ** 2) @ weights / n)
    return stats.Z95 * math.sqrt(variance / n)


def _interval(
    value: float, draws: FloatArray, n: int, method: str, floor: float, bounds: tuple[float, float]
) -> stats.Score:
    """The widest of: the percentile interval of the bootstrap draws, the normal interval of their
    spread (with the n/(n-1) correction a bootstrap of n answers omits) and ``floor`` on each side of
    the estimate; clipped to the scale and always holding the estimate."""
    if math.isnan(value):
        return stats.Score(None, n, None, None, method)
    finite = draws[np.isfinite(draws)]
    low, high = (float(x) for x in np.percentile(finite, [2.5, 97.5])) if finite.size else (value, value)
    spread = float(finite.std(ddof=1)) * math.sqrt(n / max(n - 1, 1)) if finite.size > 1 else 0.0
    half = max(floor, stats.Z95 * spread)
    low, high = min(low, value - half), max(high, value + half)
    return stats.Score(value, n, max(bounds[0], low), min(bounds[1], high), method)


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
    min_answers: int = MIN_ANSWERS,
) -> dict[str, dict[str, Any]]:
    """Raw and calibrated score of every country on one scale (the steps of docs/methods.md#calibration)."""
    countries, counts, levels = _histograms(answers, strata, scale)
    ref_i = countries.index(reference) if reference in countries else None
    grades = np.arange(scale.size, dtype=np.float64)
    boot_ref = None
    results: dict[str, dict[str, Any]] = {}
    for i, country in enumerate(countries):
        rows = counts[i]
        histogram = rows.sum(axis=0)
        n = int(histogram.sum())
        raw = scale.raw(histogram)
        comparable_n = 0
        if ref_i is not None and i != ref_i:
            cell = comparable_cells(rows.sum(axis=1), counts[ref_i].sum(axis=1), levels, min_stratum)
            comparable_n = int(rows[cell >= 0].sum())
        offset: float | None
        if n < min_answers:
            method, calibrated, offset = (
                METHOD_TOO_FEW,
                stats.Score(None, n, None, None, METHOD_TOO_FEW),
                None,
            )
        elif ref_i == i:
            method, calibrated, offset = METHOD_REFERENCE, raw, 0.0
        elif ref_i is not None and comparable_n >= min_comparable:
            method = METHOD_ESTIMATED
            values, _, pmf_cs, pmf_rs = _linked_values(
                rows[None], counts[ref_i][None], levels, min_stratum, scale.points
            )
            value, pmf_c, pmf_r = float(values[0]), pmf_cs[0], pmf_rs[0]
            offset = float((pmf_c / pmf_c.sum()) @ grades - (pmf_r / pmf_r.sum()) @ grades)
            if boot_ref is None:
                boot_ref = _resample(counts[ref_i], replicates, rng)
            boot_rows = _resample(rows, replicates, rng)
            draws = np.concatenate(
                [
                    _linked_values(
                        boot_rows[k : k + 100], boot_ref[k : k + 100], levels, min_stratum, scale.points
                    )[0]
                    for k in range(0, replicates, 100)
                ]
            )
            per_score = linking_matrix(pmf_c, pmf_r) @ scale.points
            calibrated = _interval(
                value, draws, n, method, _floor(value, histogram, per_score, scale), scale.bounds
            )
        elif country in fallback:
            method, offset = METHOD_FALLBACK, fallback[country]
            value, per_score = offset_value(histogram, offset, scale)
            boot_hist = _resample(histogram, replicates, rng)
            draws = linking.offset_values(boot_hist, offset, scale)
            calibrated = _interval(
                value, draws, n, method, _floor(value, histogram, per_score, scale), scale.bounds
            )
        else:
            method, calibrated, offset = METHOD_NONE, raw, None
        results[country] = {
            "n": n,
            "raw": raw.as_dict(),
            "calibrated": calibrated.as_dict(),
            "method": method,
            "method_code": METHOD_CODES[method],
            "too_few": n < min_answers,
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
    min_comparable: int = MIN_COMPARABLE,
    min_answers: int = MIN_ANSWERS,
    replicates: int = 1000,
    seed: int = 20260701,
    excellence_fallback: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Per country: raw and calibrated RTF (Score dicts), side by side, sorted by country.

    ``fallback`` maps a country to its cultural offset in recommend-scale points (+1.5: its customers
    answer 1.5 higher than the reference's for the same experience), used when the country has fewer
    than ``min_comparable`` answers in comparable cells (cells with ``min_stratum`` answers on both
    sides). The excellence rate is calibrated the same way on the five-point scale (extra keys
    ``excellence_raw``, ``excellence_calibrated``, ``excellence_method``; its offsets, in five-point
    scale steps, are ``excellence_fallback``). A country with fewer than ``min_answers`` answers is
    ``too_few``: its calibrated value and interval are null. The bootstrap is seeded: same answers,
    same interval. ``answers`` may carry an ``answers`` column of counts (one row per distinct answer).
    """
    common: dict[str, Any] = {
        "strata": strata,
        "min_stratum": min_stratum,
        "min_comparable": min_comparable,
        "replicates": replicates,
        "min_answers": min_answers,
    }
    rtf = _calibrate(
        answers,
        RTF_SCALE,
        reference,
        {k.upper(): float(v) for k, v in (fallback or {}).items()},
        rng=np.random.default_rng(seed),
        **common,
    )
    excellence = (
        _calibrate(
            answers,
            EXCELLENCE_SCALE,
            reference,
            {k.upper(): float(v) for k, v in (excellence_fallback or {}).items()},
            rng=np.random.default_rng(seed + 1),
            **common,
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
            "calibrated": stats.Score(None, 0, None, None, METHOD_TOO_FEW).as_dict(),
            "method": METHOD_TOO_FEW,
            "method_code": "too_few",
            "too_few": True,
            "offset": None,
            "comparable_n": 0,
        }
        other = excellence.get(country)
        entry["excellence_raw"] = other["raw"] if other else empty
        entry["excellence_calibrated"] = other["calibrated"] if other else empty
        entry["excellence_method"] = other["method"] if other else METHOD_NONE
        entry["excellence_method_code"] = other["method_code"] if other else "none"
        entry["excellence_too_few"] = other["too_few"] if other else True
        entry["min_answers"] = min_answers
        results.append(entry)
    return results
