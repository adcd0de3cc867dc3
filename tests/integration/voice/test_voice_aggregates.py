"""The database's counts give exactly the figures the answers row by row give: scores by every
dimension, scorecards (team of the latest answer, the agent's main country, shrinkage, bands), the
country calibration with its bootstrap, and the quarterly report's headline and trends; on SQLite
and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import polars as pl
import pytest
from sqlalchemy import Engine, insert, select

from prevenance.customers import service as customers
from prevenance.db import read_session, unit_of_work
from prevenance.voice import aggregates, analytics, calibration, report, scorecards
from prevenance.voice.basics import current_config
from prevenance.voice.tables import Answer
from tests.conftest import Api
from tests.integration.voice.conftest import add_member

MONTHS = ["2026-01", "2026-02", "2026-03"]
GRID: dict[str, Any] = {
    "target_rtf": 40,
    "min_answers": 10,
    "bands": [
        {"name": "A", "min_shrunk_rtf": 50, "min_fcr": 0.5},
        {"name": "B", "min_shrunk_rtf": 30},
    ],
}
ROW_COLUMNS = (
    Answer.id,
    Answer.contact_id,
    Answer.member_id,
    Answer.agent,
    Answer.team,
    Answer.channel,
    Answer.reason,
    Answer.product,
    Answer.country,
    Answer.month,
    Answer.answered_at,
    Answer.recommend,
    Answer.interaction,
    Answer.language,
)


def _answers(member_id: int, seed: int = 7, size: int = 4000) -> list[dict[str, Any]]:
    """Answers whose agents, teams, countries and strata vary, with missing scores; an agent moved team
    in the month; one agent has two teams at the same latest moment (the smaller id decides)."""
    rng = np.random.default_rng(seed)
    countries = np.array(["FR", "GB", "DE", "IT"])
    start = datetime(2026, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(size):
        agent = int(rng.integers(0, 30))
        country = str(countries[rng.choice(4, p=[0.45, 0.3, 0.24, 0.01])])
        month = int(rng.integers(0, 3))
        at = start + timedelta(days=31 * month + int(rng.integers(0, 27)), seconds=int(rng.integers(0, 900)))
        recommend = int(np.clip(np.rint(7.5 + (country == "GB") + rng.normal(0, 2)), 0, 10))
        interaction = int(np.clip(np.rint(3.8 + rng.normal(0, 1)), 1, 5))
        missing = rng.random()
        rows.append(
            {
                "id": f"csv:r{i:05d}",
                "member_id": member_id,
                "agent": f"agent-{agent:02d}",
                "team": f"team-{agent % 5}" if i % 97 else f"team-{(agent + 1) % 5}",
                "channel": ["phone", "email"][int(rng.integers(0, 2))],
                "reason": ["cards.lost", "rewards.balance", "travel.booking"][int(rng.integers(0, 3))],
                "product": ["gold", "platinum"][int(rng.integers(0, 2))],
                "country": country,
                "month": f"2026-{month + 1:02d}",
                "answered_at": at,
                "recommend": None if missing < 0.05 else recommend,
                "interaction": None if 0.05 <= missing < 0.15 else interaction,
            }
        )
    tie = datetime(2026, 1, 28, 12, tzinfo=UTC)
    for answer_id, team in (("csv:tie-b", "team-z"), ("csv:tie-a", "team-y"), ("csv:tie-0", "team-x")):
        at = tie if team != "team-x" else tie - timedelta(days=1)
        rows.append({**rows[0], "id": answer_id, "agent": "agent-tie", "team": team, "answered_at": at})
    now = datetime(2026, 4, 1, tzinfo=UTC)
    return [
        {
            **row,
            "contact_id": None,
            "invitation_id": None,
            "comment": None,
            "suggestion": None,
            "language": "fr",
            "source": "import",
            "fingerprint": "",
            "created_at": now,
        }
        for row in rows
    ]


@pytest.fixture
def loaded(api: Api, engine: Engine) -> Engine:
    add_member(api, "M1")
    with unit_of_work(engine) as session:
        member = customers.find_member(session, ref="M1")
        assert member is not None
        session.execute(insert(Answer), _answers(member.id))
    return engine


def _rows(engine: Engine, months: list[str]) -> pl.DataFrame:
    """Every answer of the months as a frame, the way the figures used to be fed."""
    with read_session(engine) as session:
        rows = session.execute(select(*ROW_COLUMNS).where(Answer.month.in_(months)).order_by(Answer.id)).all()
    data = {name: [row[i] for row in rows] for i, name in enumerate(analytics.ANSWER_SCHEMA)}
    data["contact_id"] = [value or "" for value in data["contact_id"]]
    return pl.DataFrame(data, schema=analytics.ANSWER_SCHEMA)


@pytest.mark.parametrize("by", analytics.DIMENSIONS)
def test_scores_from_database_counts_equal_scores_from_rows(loaded: Engine, by: str) -> None:
    rows = _rows(loaded, ["2026-01"])
    with read_session(loaded) as session:
        counted = scorecards.scores(session, by=by, month="2026-01")
    expected = analytics.scores_by(rows, by, target_rtf=float(current_config().payout_grid["target_rtf"]))
    assert counted["n"] == rows.height > 1000
    assert counted["items"] == expected


def test_agent_counts_take_the_latest_team_and_the_main_country(loaded: Engine) -> None:
    rows = _rows(loaded, MONTHS)
    with read_session(loaded) as session:
        counts = aggregates.agent_counts(session, months=MONTHS)
    tie = counts.filter(pl.col("agent") == "agent-tie").row(0, named=True)
    assert tie["team"] == "team-y"  # csv:tie-a sorts before csv:tie-b at the same moment
    assert tie["answers"] == 3
    by_rows = analytics.scores_by(rows, "agent")
    assert [r["team"] for r in analytics.scores_from_counts(counts, "agent")] == [r["team"] for r in by_rows]
    assert counts.height == 31


def test_scorecards_from_database_counts_equal_scorecards_from_rows(loaded: Engine) -> None:
    rows = _rows(loaded, ["2026-02"])
    fcr = pl.DataFrame(
        {"agent": ["agent-01", "agent-02"], "fcr_resolved": [8, 2], "fcr_n": [10, 10]},
        schema={"agent": pl.Utf8, "fcr_resolved": pl.Int64, "fcr_n": pl.Int64},
    )
    with read_session(loaded) as session:
        counts = aggregates.agent_counts(session, months=["2026-02"])
    counted = analytics.scorecards_from_counts(counts, fcr, GRID)
    expected = analytics.agent_scorecards(rows, fcr, GRID)
    assert counted.height == expected.height > 20
    assert counted.to_dicts() == expected.to_dicts()
    assert counted["payout_band"].n_unique() > 1


def test_calibration_from_stratum_counts_equals_calibration_from_rows(loaded: Engine) -> None:
    rows = _rows(loaded, MONTHS)
    with read_session(loaded) as session:
        counts = aggregates.stratum_counts(session, months=MONTHS, strata=calibration.DEFAULT_STRATA)
    assert aggregates.total_answers(counts) == rows.height
    assert counts.height < rows.height / 2  # counts, not rows
    settings: dict[str, Any] = {"reference": "FR", "fallback": {"IT": 1.0}, "replicates": 300}
    counted = calibration.country_scores(counts, **settings)
    expected = calibration.country_scores(rows, **settings)
    assert counted == expected
    methods = {item["country"]: item["method_code"] for item in counted}
    assert methods == {"FR": "reference", "GB": "estimated", "DE": "estimated", "IT": "fallback"}


def test_quarterly_report_from_counts_equals_report_from_rows(loaded: Engine) -> None:
    rows = _rows(loaded, MONTHS)
    with read_session(loaded) as session:
        counts = aggregates.country_month_counts(session, months=MONTHS)
        countries = calibration.country_scores(
            aggregates.stratum_counts(session, months=MONTHS, strata=calibration.DEFAULT_STRATA),
            replicates=200,
        )
    barometers = pl.DataFrame(
        {
            "source": ["X"],
            "country": ["GB"],
            "quarter": ["2026Q1"],
            "metric": ["rtf"],
            "value": [30.0],
            "n": [800],
        }
    )
    common = {"quarter": "2026Q1", "language": "en", "countries": countries, "barometers": barometers}
    from_counts = report.build_context({**common, "answers": counts})
    from_rows = report.build_context({**common, "answers": rows})
    assert from_counts["headline"] == from_rows["headline"]
    assert from_counts["headline"]["rtf"].n == int(rows["recommend"].is_not_null().sum())
    for section in ("rtf_trend", "excellence_trend", "barometers"):
        assert from_counts["sections"][section]["rows"] == from_rows["sections"][section]["rows"]
    assert from_counts["sections"]["barometers"]["rows"][0]["ours"] is not None


def test_no_answers_gives_empty_counts(engine: Engine) -> None:
    with read_session(engine) as session:
        assert aggregates.agent_counts(session, months=["2026-01"]).height == 0
        assert aggregates.dimension_counts(session, by="team", months=[]).height == 0
        empty = scorecards.scores(session, by="country", month="2026-01")
    assert empty["n"] == 0
    assert empty["items"] == []


def test_an_unknown_column_is_refused(engine: Engine) -> None:
    with read_session(engine) as session, pytest.raises(ValueError, match="unknown answer column"):
        aggregates.dimension_counts(session, by="comment", months=["2026-01"])
