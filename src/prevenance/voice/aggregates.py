"""Sufficient statistics of the survey answers, counted by the database.

Every voice figure (scores, scorecards, shrinkage, calibration, the quarterly report) depends on the
answers only through counts: per group, how many answers, promoters, detractors, interaction answers
and top boxes; per (country, stratum, score), how many answers. So the database groups and counts,
and Python receives a few thousand rows whatever the number of answers. Each function returns the
frame the pure ``analytics``/``calibration``/``report`` code already reads, with the same values as
if it had been computed from every row (the integration tests compare both ways, on SQLite and
PostgreSQL). Ordering is left to Polars: a database's collation must not decide who comes first.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import polars as pl
from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from prevenance.voice.tables import Answer

COUNT_COLUMNS = ("n_rtf", "promoters", "detractors", "n_excellence", "top_box", "answers")
"""The sufficient statistics of a group, as ``analytics.sufficient_statistics`` names them."""
WEIGHT = "answers"
"""Column of a counted answers frame: how many identical answers the row stands for."""
_COLUMNS = {
    "agent": Answer.agent,
    "team": Answer.team,
    "channel": Answer.channel,
    "reason": Answer.reason,
    "country": Answer.country,
    "product": Answer.product,
    "month": Answer.month,
}


def _column(name: str) -> Any:
    try:
        return _COLUMNS[name]
    except KeyError:
        raise ValueError(f"unknown answer column {name!r}") from None


def _sums() -> list[ColumnElement[Any]]:
    """The sufficient statistics of a group in one pass (nulls count for no score)."""
    recommend, interaction = Answer.recommend, Answer.interaction
    return [
        func.count(recommend).label("n_rtf"),
        func.sum(case((recommend >= 9, 1), else_=0)).label("promoters"),
        func.sum(case((recommend <= 6, 1), else_=0)).label("detractors"),
        func.count(interaction).label("n_excellence"),
        func.sum(case((interaction == 5, 1), else_=0)).label("top_box"),
        func.count().label("answers"),
    ]


def _in_months(months: Iterable[str]) -> ColumnElement[bool]:
    wanted = sorted(set(months))
    return Answer.month == wanted[0] if len(wanted) == 1 else Answer.month.in_(wanted)


def _counts_schema(keys: Sequence[str]) -> dict[str, Any]:
    return {**{key: pl.String for key in keys}, **{name: pl.Int64 for name in COUNT_COLUMNS}}


def dimension_counts(session: Session, *, by: str, months: Sequence[str]) -> pl.DataFrame:
    """Per value of ``by`` in the months: the six sufficient statistics (``COUNT_COLUMNS``)."""
    if not months:
        return pl.DataFrame(schema=_counts_schema([by]))
    key = _column(by)
    rows = session.execute(select(key.label(by), *_sums()).where(_in_months(months)).group_by(key)).all()
    return pl.DataFrame([tuple(row) for row in rows], schema=_counts_schema([by]), orient="row")


def agent_counts(session: Session, *, months: Sequence[str]) -> pl.DataFrame:
    """Per agent: the team of the agent's latest answer, the country most of its answers come from
    (ties: alphabetical) and the six sufficient statistics; what ``analytics`` derives from rows.

    Counted by (agent, team, country) with each group's latest answer time; when two teams share an
    agent's latest time, the answer with the smallest id decides, as the row-by-row rule does."""
    schema = {"agent": pl.String, "team": pl.String, "country": pl.String} | {
        name: pl.Int64 for name in COUNT_COLUMNS
    }
    if not months:
        return pl.DataFrame(schema=schema)
    where = _in_months(months)
    rows = session.execute(
        select(Answer.agent, Answer.team, Answer.country, *_sums(), func.max(Answer.answered_at))
        .where(where)
        .group_by(Answer.agent, Answer.team, Answer.country)
    ).all()
    totals: dict[str, list[int]] = {}
    latest: dict[str, dict[str, Any]] = {}
    countries: dict[str, dict[str, int]] = {}
    for agent, team, country, *counts, last_at in rows:
        total = totals.setdefault(agent, [0] * len(COUNT_COLUMNS))
        for i, value in enumerate(counts):
            total[i] += int(value or 0)
        teams = latest.setdefault(agent, {})
        if team not in teams or last_at > teams[team]:
            teams[team] = last_at
        per_country = countries.setdefault(agent, {})
        per_country[country] = per_country.get(country, 0) + int(counts[-1])
    records = []
    for agent, total in totals.items():
        last = max(latest[agent].values())
        tied = sorted(team for team, at in latest[agent].items() if at == last)
        team = tied[0]
        if len(tied) > 1:
            team = session.scalar(
                select(Answer.team)
                .where(where, Answer.agent == agent, Answer.answered_at == last)
                .order_by(Answer.id)
                .limit(1)
            )
        most = max(countries[agent].values())
        country = min(c for c, k in countries[agent].items() if k == most)
        records.append((agent, team, country, *total))
    return pl.DataFrame(records, schema=schema, orient="row")


def stratum_counts(session: Session, *, months: Sequence[str], strata: Sequence[str]) -> pl.DataFrame:
    """Answers counted by (country, strata…, recommend, interaction): the table the calibration and
    its whole-table bootstrap read (``calibration.WEIGHT_COLUMN`` holds the count)."""
    keys = ["country", *strata]
    schema = {key: pl.String for key in keys} | {
        "recommend": pl.Int8,
        "interaction": pl.Int8,
        WEIGHT: pl.Int64,
    }
    if not months:
        return pl.DataFrame(schema=schema)
    columns = [_column(key) for key in keys] + [Answer.recommend, Answer.interaction]
    rows = session.execute(select(*columns, func.count()).where(_in_months(months)).group_by(*columns)).all()
    return pl.DataFrame([tuple(row) for row in rows], schema=schema, orient="row")


def country_month_counts(session: Session, *, months: Sequence[str]) -> pl.DataFrame:
    """Answers counted by (country, month, recommend, interaction): the quarterly report's trends,
    headline and barometer comparison read nothing else."""
    return stratum_counts(session, months=months, strata=["month"])


def total_answers(frame: pl.DataFrame) -> int:
    """How many answers a counted frame stands for."""
    return int(frame[WEIGHT].sum()) if frame.height else 0
