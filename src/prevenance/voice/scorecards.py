"""Scores by dimension and the monthly agent scorecards: computed from the sufficient statistics the
database counts (``aggregates``), published as frozen versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy import insert
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import fingerprint, iso_z
from prevenance.common.problems import InvalidInput
from prevenance.desk import service as desk
from prevenance.voice import aggregates, analytics, repository, rules
from prevenance.voice.basics import METHODS, check_month, current_config
from prevenance.voice.errors import NothingToPublish, UnknownScorecard
from prevenance.voice.tables import ScorecardRow, ScorecardVersion


def scores(session: Session, *, by: str, month: str) -> dict[str, Any]:
    """RTF and excellence rate by ``by`` for a month, each with n and a 95% interval."""
    if by not in rules.SCORE_DIMENSIONS:
        raise InvalidInput(f"by must be one of {', '.join(rules.SCORE_DIMENSIONS)}", field="by")
    check_month(month)
    if by == "agent":
        counts = aggregates.agent_counts(session, months=[month])
    else:
        counts = aggregates.dimension_counts(session, by=by, months=[month])
    grid = current_config().payout_grid
    items = analytics.scores_from_counts(counts, by, target_rtf=float(grid["target_rtf"]))
    return {
        "month": month,
        "by": by,
        "n": aggregates.total_answers(counts),
        "items": items,
        "method": f"{METHODS}#scores-by-agent-team-channel-reason-country-product-month",
    }


def scores_over(session: Session, *, by: str, months: list[str]) -> list[dict[str, Any]]:
    """``scores`` items over several months together (a quarter's trend point), without a target."""
    if by not in rules.SCORE_DIMENSIONS:
        raise InvalidInput(f"by must be one of {', '.join(rules.SCORE_DIMENSIONS)}", field="by")
    if by == "agent":
        counts = aggregates.agent_counts(session, months=months)
    else:
        counts = aggregates.dimension_counts(session, by=by, months=months)
    return analytics.scores_from_counts(counts, by)


def _fcr_frame(session: Session, *, month: str, now: datetime) -> pl.DataFrame:
    report = desk.fcr_report(session, by="agent", month=month, now=now)
    return pl.DataFrame(
        {
            "agent": [row["key"] for row in report["rows"]],
            "fcr_resolved": [int(row["successes"]) for row in report["rows"]],
            "fcr_n": [int(row["n"]) for row in report["rows"]],
        },
        schema={"agent": pl.Utf8, "fcr_resolved": pl.Int64, "fcr_n": pl.Int64},
    )


def _plain(value: Any) -> Any:
    """JSON-ready cell: floats rounded (so a fingerprint does not move on the last bit), NaN as null."""
    if isinstance(value, float):
        return None if value != value else round(value, 6)
    return value


def compute_scorecard(session: Session, *, month: str, now: datetime) -> list[dict[str, Any]]:
    """The month's scorecard per agent (not stored): ``analytics.agent_scorecards`` with the desk's FCR."""
    check_month(month)
    counts = aggregates.agent_counts(session, months=[month])
    frame = analytics.scorecards_from_counts(
        counts, _fcr_frame(session, month=month, now=now), current_config().payout_grid
    )
    rows = [{key: _plain(value) for key, value in row.items()} for row in frame.sort("agent").to_dicts()]
    return rows


def _version_body(version: ScorecardVersion, rows: list[ScorecardRow] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "month": version.month,
        "version": version.version,
        "published_by": version.published_by,
        "reason": version.reason,
        "published_at": iso_z(version.published_at),
        "fingerprint": version.fingerprint,
        "agents": version.agents,
        "grid": version.grid,
        "method": f"{METHODS}#monthly-scorecard-and-payout-bands",
    }
    if rows is not None:
        body["rows"] = [row.data for row in rows]
    return body


def publish_scorecard(
    session: Session, *, month: str, by: str, reason: str, now: datetime, key: str | None = None
) -> Outcome:
    """Freeze the month's scorecard as a new version, unless the latest version has the same content
    (then that version is answered again: publishing is idempotent on month and content). With an
    explicit key, the first outcome of that key is replayed."""
    if not by.strip() or not reason.strip():
        raise InvalidInput("who publishes and why are both required", field="reason" if by.strip() else "by")
    if key is not None:
        return run_idempotent(
            session,
            scope="scorecard_publish",
            key=f"{month}/{key}",
            fingerprint=fingerprint({"month": month, "by": by, "reason": reason}),
            now=now,
            produce=lambda: _publish(session, month=month, by=by, reason=reason, now=now),
        )
    return _publish(session, month=month, by=by, reason=reason, now=now)


def _publish(session: Session, *, month: str, by: str, reason: str, now: datetime) -> Outcome:
    rows = compute_scorecard(session, month=month, now=now)
    if not rows:
        raise NothingToPublish(f"no survey answers in {month}", field="month")
    grid = current_config().payout_grid
    content = fingerprint({"grid": grid, "rows": rows})
    latest = repository.latest_scorecard(session, month)
    if latest is not None and latest.fingerprint == content:
        return Outcome(200, _version_body(latest, None), replayed=True)
    version = ScorecardVersion(
        month=month,
        version=(latest.version + 1) if latest else 1,
        fingerprint=content,
        grid=grid,
        agents=len(rows),
        published_by=by.strip(),
        reason=reason.strip(),
        published_at=now,
    )
    # A concurrent publication of the same month collides on (month, version): the use case is re-run
    # by ``run_in_transaction`` and then finds the winner's version.
    session.add(version)
    session.flush()
    session.execute(
        insert(ScorecardRow),
        [
            {
                "month": month,
                "version": version.version,
                "agent": str(row["agent"]),
                "team": str(row.get("team") or ""),
                "n": int(row.get("n") or 0),
                "data": row,
            }
            for row in rows
        ],
    )
    outbox.emit(
        session,
        type="scorecard.published",
        payload={
            "month": month,
            "version": version.version,
            "by": version.published_by,
            "reason": version.reason,
        },
        now=now,
    )
    return Outcome(201, _version_body(version, None))


def get_scorecard(session: Session, *, month: str, version: int | None = None) -> dict[str, Any]:
    """A published scorecard (the latest version unless one is named), with its rows and the list
    of every version of the month."""
    check_month(month)
    found = (
        repository.latest_scorecard(session, month)
        if version is None
        else repository.scorecard_version(session, month, version)
    )
    if found is None:
        raise UnknownScorecard(
            f"no published scorecard for {month}" + (f" version {version}" if version else "")
        )
    body = _version_body(found, repository.scorecard_rows(session, month, found.version))
    body["versions"] = [_version_body(v, None) for v in repository.scorecard_versions(session, month)]
    return body
