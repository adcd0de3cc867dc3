"""Scores by dimension and the monthly agent scorecards, computed from an answers frame.

Pure Polars + numpy, no database: the voice service loads the answers and calls these. Everything is
derived from per-group sufficient statistics (answers, promoters, detractors, top boxes) computed in
one group-by, so 10 million answers cost one pass and the statistics run on a few thousand rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import polars as pl

from prevenance.voice import shrinkage, stats

ANSWER_SCHEMA: dict[str, Any] = {
    "answer_id": pl.String,
    "contact_id": pl.String,
    "member_id": pl.Int64,
    "agent": pl.String,
    "team": pl.String,
    "channel": pl.String,
    "reason": pl.String,
    "product": pl.String,
    "country": pl.String,
    "month": pl.String,
    "answered_at": pl.Datetime("us", "UTC"),
    "recommend": pl.Int8,
    "interaction": pl.Int8,
    "language": pl.String,
}
"""Columns of the answers frame the service hands to the analytics (one row per survey answer)."""

DIMENSIONS = ("agent", "team", "channel", "reason", "country", "product", "month")

SCORECARD_COLUMNS = (
    "agent",
    "team",
    "n",
    "rtf",
    "rtf_ci_low",
    "rtf_ci_high",
    "rtf_shrunk",
    "rtf_shrunk_ci_low",
    "rtf_shrunk_ci_high",
    "p_above_target",
    "excellence",
    "excellence_ci_low",
    "excellence_ci_high",
    "fcr_rate",
    "fcr_n",
    "target_met",
    "payout_band",
    "excellence_shrunk",
    "excellence_shrunk_ci_low",
    "excellence_shrunk_ci_high",
    "evidence",
)
"""The published scorecard's columns. New columns are appended, never renamed: integrators read them."""

INSUFFICIENT = "insufficient-data"
NO_BAND = "none"
EVIDENCE_SUFFICIENT = "sufficient"
EVIDENCE_INCONCLUSIVE = "inconclusive"
EVIDENCE_VALUES = (EVIDENCE_SUFFICIENT, EVIDENCE_INCONCLUSIVE, INSUFFICIENT)
"""Whether an agent's month is enough to pay on: ``sufficient`` (enough answers, and the posterior
says with at least ``grid.evidence_probability`` (0.9) whether the agent is above or below the target),
``inconclusive`` (enough answers, but it could be either side), ``insufficient-data`` (too few answers)."""
DEFAULT_EVIDENCE_PROBABILITY = 0.9


def empty_answers() -> pl.DataFrame:
    """An answers frame with no rows and the right types."""
    return pl.DataFrame(schema=ANSWER_SCHEMA)


WEIGHT_COLUMN = "answers"
"""An optional column of the answers frame: how many identical answers the row stands for (the
database hands over counts, see ``voice.aggregates``)."""


def sufficient_statistics(answers: pl.DataFrame, keys: Sequence[str]) -> pl.DataFrame:
    """Per group: answers with a recommend score, promoters, detractors, interaction answers, top boxes.

    A frame with a ``WEIGHT_COLUMN`` is a frame of counts: each row counts that many times."""
    recommend = pl.col("recommend")
    interaction = pl.col("interaction")
    if WEIGHT_COLUMN in answers.columns:
        weight = pl.col(WEIGHT_COLUMN)
        return answers.group_by(list(keys)).agg(
            weight.filter(recommend.is_not_null()).sum().alias("n_rtf"),
            weight.filter(recommend >= 9).sum().alias("promoters"),
            weight.filter(recommend <= 6).sum().alias("detractors"),
            weight.filter(interaction.is_not_null()).sum().alias("n_excellence"),
            weight.filter(interaction == 5).sum().alias("top_box"),
            weight.sum().alias("answers"),
        )
    return answers.group_by(list(keys)).agg(
        recommend.is_not_null().sum().alias("n_rtf"),
        (recommend >= 9).sum().alias("promoters"),
        (recommend <= 6).sum().alias("detractors"),
        interaction.is_not_null().sum().alias("n_excellence"),
        (interaction == 5).sum().alias("top_box"),
        pl.len().alias("answers"),
    )


def _f(x: float) -> float | None:
    return None if math.isnan(x) else float(x)


def _score_dicts(
    value: np.ndarray, low: np.ndarray, high: np.ndarray, n: np.ndarray, method: str
) -> list[dict[str, Any]]:
    return [
        stats.Score(_f(v), int(k), _f(lo), _f(hi), method).as_dict()
        for v, lo, hi, k in zip(value.tolist(), low.tolist(), high.tolist(), n.tolist(), strict=True)
    ]


def _agent_counts(answers: pl.DataFrame) -> pl.DataFrame:
    recommend = pl.col("recommend")
    interaction = pl.col("interaction")
    return answers.group_by("agent").agg(
        pl.col("team").get(pl.col("answered_at").arg_max()).alias("team"),
        # The agent's country: the one most of its answers come from (ties: alphabetical), so that a
        # small team borrows the between-agent spread of its own country's teams.
        pl.col("country").drop_nulls().mode().sort().first().alias("country"),
        recommend.is_not_null().sum().alias("n_rtf"),
        (recommend >= 9).sum().alias("promoters"),
        (recommend <= 6).sum().alias("detractors"),
        interaction.is_not_null().sum().alias("n_excellence"),
        (interaction == 5).sum().alias("top_box"),
        pl.len().alias("answers"),
    )


def scores_by(answers: pl.DataFrame, by: str, target_rtf: float | None = None) -> list[dict[str, Any]]:
    """RTF and excellence, each with n and 95% CI, per value of ``by``; agents also get the shrunk RTF.

    Sorted by key. For ``by="agent"`` each row adds ``team``, ``rtf_shrunk`` (a Score dict, the
    empirical Bayes estimate toward the team) and ``p_above_target`` (None without a target).
    """
    if by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}; expected one of {', '.join(DIMENSIONS)}")
    counts = _agent_counts(answers) if by == "agent" else sufficient_statistics(answers, [by])
    return scores_from_counts(counts, by, target_rtf)


def scores_from_counts(
    counts: pl.DataFrame, by: str, target_rtf: float | None = None
) -> list[dict[str, Any]]:
    """``scores_by`` from the per-group sufficient statistics (for agents also ``team`` and ``country``),
    however they were counted: by Polars from rows, or by the database."""
    if by not in DIMENSIONS:
        raise ValueError(f"unknown dimension {by!r}; expected one of {', '.join(DIMENSIONS)}")
    counts = counts.sort(by)
    keys = counts[by].to_list()
    n_rtf = counts["n_rtf"].to_numpy()
    n_exc = counts["n_excellence"].to_numpy()
    rtf = _score_dicts(
        *stats.rtf_from_counts(counts["promoters"].to_numpy(), counts["detractors"].to_numpy(), n_rtf),
        n_rtf,
        stats.RTF_METHOD,
    )
    exc = _score_dicts(
        *stats.excellence_from_counts(counts["top_box"].to_numpy(), n_exc), n_exc, stats.EXCELLENCE_METHOD
    )
    rows: list[dict[str, Any]] = [
        {"key": key, "n": int(n), "rtf": r, "excellence": e}
        for key, n, r, e in zip(keys, counts["answers"].to_list(), rtf, exc, strict=True)
    ]
    if by == "agent" and rows:
        teams_array = counts["team"].fill_null("").to_numpy()
        countries = counts["country"].fill_null("").to_numpy()
        shrunk = shrinkage.shrink_rtf(
            counts["promoters"].to_numpy(),
            counts["detractors"].to_numpy(),
            n_rtf,
            teams=teams_array,
            target=target_rtf,
            countries=countries,
        )
        shrunk_exc = shrinkage.shrink_excellence(
            counts["top_box"].to_numpy(), n_exc, teams=teams_array, countries=countries
        )
        shrunk_dicts = _score_dicts(
            shrunk.value, shrunk.ci_low, shrunk.ci_high, n_rtf, shrinkage.SHRINK_METHOD
        )
        exc_dicts = _score_dicts(
            shrunk_exc.value, shrunk_exc.ci_low, shrunk_exc.ci_high, n_exc, shrinkage.EXCELLENCE_SHRINK_METHOD
        )
        teams = counts["team"].to_list()
        for i, row in enumerate(rows):
            row["team"] = teams[i]
            row["rtf_shrunk"] = shrunk_dicts[i]
            row["p_above_target"] = None if shrunk.p_above_target is None else float(shrunk.p_above_target[i])
            row["excellence_shrunk"] = exc_dicts[i]
    return rows


def _bands(
    grid: dict[str, Any],
    shrunk: np.ndarray,
    fcr_rate: np.ndarray,
    excellence: np.ndarray,
    p_above: np.ndarray,
    shrunk_excellence: np.ndarray,
) -> np.ndarray:
    """First band whose every stated minimum is met, in the grid's order (a missing FCR fails an FCR minimum).

    ``min_excellence`` reads the raw excellence rate, ``min_shrunk_excellence`` the rate shrunk toward
    the team (what the shipped grid uses: a small month's lucky top boxes do not pay)."""
    size = shrunk.size
    result = np.full(size, NO_BAND, dtype=object)
    unassigned = np.ones(size, dtype=bool)
    checks = {
        "min_shrunk_rtf": shrunk,
        "min_fcr": fcr_rate,
        "min_excellence": excellence,
        "min_shrunk_excellence": shrunk_excellence,
        "min_p_above_target": p_above,
    }
    for band in grid.get("bands", []):
        ok = np.ones(size, dtype=bool)
        for key, values in checks.items():
            if band.get(key) is not None:
                with np.errstate(invalid="ignore"):
                    ok &= np.nan_to_num(values, nan=-np.inf) >= float(band[key])
        chosen = ok & unassigned
        result[chosen] = str(band["name"])
        unassigned &= ~chosen
    return result


def evidence(
    n: np.ndarray, p_above: np.ndarray, min_answers: int, probability: float = DEFAULT_EVIDENCE_PROBABILITY
) -> np.ndarray:
    """Per agent, whether the month is enough to pay on (one of ``EVIDENCE_VALUES``).

    ``sufficient`` needs ``min_answers`` answers and a posterior that puts the agent on one side of the
    target with at least ``probability`` (P(above) >= p or <= 1 - p); without a target, the answers
    alone decide. A NaN probability (no target) counts as decided.
    """
    size = n.size
    result = np.full(size, EVIDENCE_INCONCLUSIVE, dtype=object)
    with np.errstate(invalid="ignore"):
        decided = np.isnan(p_above) | (p_above >= probability) | (p_above <= 1.0 - probability)
    result[decided] = EVIDENCE_SUFFICIENT
    result[n < min_answers] = INSUFFICIENT
    return result


def agent_scorecards(
    answers: pl.DataFrame, fcr: pl.DataFrame | None, grid: dict[str, Any], *, month: str | None = None
) -> pl.DataFrame:
    """The monthly scorecard, one row per agent, with the payout band of the configured grid.

    ``answers`` holds the month to score (or pass ``month`` to filter here). ``target_met`` compares
    the shrunk RTF with ``grid["target_rtf"]``; agents below ``grid["min_answers"]`` answers get the
    band ``insufficient-data`` and never meet the target, so nobody is paid or penalised on noise.
    ``evidence`` says whether the month is enough to pay on (see ``evidence``); the excellence rate is
    shrunk toward the team like the RTF (``excellence_shrunk``) and a band may require it.
    """
    if month is not None:
        answers = answers.filter(pl.col("month") == month)
    return scorecards_from_counts(_agent_counts(answers), fcr, grid)


def scorecards_from_counts(
    counts: pl.DataFrame, fcr: pl.DataFrame | None, grid: dict[str, Any]
) -> pl.DataFrame:
    """``agent_scorecards`` from the per-agent sufficient statistics (``agent``, ``team``, ``country``
    and the counts), however they were counted."""
    target = grid.get("target_rtf")
    target_value = float(target) if target is not None else None
    min_answers = int(grid.get("min_answers", 0))
    counts = counts.sort("agent")
    promoters = counts["promoters"].to_numpy()
    detractors = counts["detractors"].to_numpy()
    n_rtf = counts["n_rtf"].to_numpy()
    rtf, rtf_low, rtf_high = stats.rtf_from_counts(promoters, detractors, n_rtf)
    exc, exc_low, exc_high = stats.excellence_from_counts(
        counts["top_box"].to_numpy(), counts["n_excellence"].to_numpy()
    )
    teams = counts["team"].fill_null("").to_numpy()
    countries = counts["country"].fill_null("").to_numpy()
    shrunk = shrinkage.shrink_rtf(
        promoters, detractors, n_rtf, teams=teams, target=target_value, countries=countries
    )
    n_exc = counts["n_excellence"].to_numpy()
    shrunk_exc = shrinkage.shrink_excellence(
        counts["top_box"].to_numpy(), n_exc, teams=teams, countries=countries
    )
    agents = counts["agent"]
    if fcr is not None and fcr.height:
        fcr_agent = fcr.group_by("agent").agg(
            pl.col("fcr_resolved").sum().alias("fcr_resolved"), pl.col("fcr_n").sum().alias("fcr_n")
        )
        joined = pl.DataFrame({"agent": agents}).join(
            fcr_agent, on="agent", how="left", maintain_order="left"
        )
        fcr_n = joined["fcr_n"].fill_null(0).to_numpy().astype(np.int64)
        resolved = joined["fcr_resolved"].fill_null(0).to_numpy().astype(np.float64)
    else:
        fcr_n = np.zeros(counts.height, dtype=np.int64)
        resolved = np.zeros(counts.height, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        fcr_rate = np.where(fcr_n > 0, resolved / fcr_n, np.nan)
    p_above = shrunk.p_above_target if shrunk.p_above_target is not None else np.full(counts.height, np.nan)
    enough = n_rtf >= min_answers
    if target_value is None:
        target_met = np.zeros(counts.height, dtype=bool)
    else:
        target_met = enough & (shrunk.value >= target_value)
    bands = _bands(grid, shrunk.value, fcr_rate, exc, p_above, shrunk_exc.value)
    bands[~enough] = INSUFFICIENT
    probability = float(grid.get("evidence_probability", DEFAULT_EVIDENCE_PROBABILITY))
    enough_evidence = evidence(n_rtf, p_above, min_answers, probability)
    frame = pl.DataFrame(
        {
            "agent": agents,
            "team": counts["team"],
            "n": pl.Series(n_rtf, dtype=pl.Int64),
            "rtf": rtf,
            "rtf_ci_low": rtf_low,
            "rtf_ci_high": rtf_high,
            "rtf_shrunk": shrunk.value,
            "rtf_shrunk_ci_low": shrunk.ci_low,
            "rtf_shrunk_ci_high": shrunk.ci_high,
            "p_above_target": p_above,
            "excellence": exc,
            "excellence_ci_low": exc_low,
            "excellence_ci_high": exc_high,
            "fcr_rate": fcr_rate,
            "fcr_n": pl.Series(fcr_n, dtype=pl.Int64),
            "target_met": pl.Series(target_met, dtype=pl.Boolean),
            "payout_band": pl.Series(bands.tolist(), dtype=pl.String),
            "excellence_shrunk": shrunk_exc.value,
            "excellence_shrunk_ci_low": shrunk_exc.ci_low,
            "excellence_shrunk_ci_high": shrunk_exc.ci_high,
            "evidence": pl.Series(enough_evidence.tolist(), dtype=pl.String),
        }
    )
    # NaN means "no value": make it a null so CSV/XLSX show an empty cell, not "NaN".
    return frame.with_columns(pl.col(pl.Float64).fill_nan(None)).select(SCORECARD_COLUMNS)
