"""Use cases of the voice domain. Each runs inside the caller's unit of work and never commits.

The statistics (scores, shrinkage, calibration, the report) live in ``stats``, ``analytics``,
``calibration`` and ``report``; this module loads the data they need, calls them and stores what
must be kept (answers, published scorecards, barometers, suggestions).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from functools import lru_cache
from importlib import resources
from typing import TYPE_CHECKING, Any

import polars as pl
from sqlalchemy import insert
from sqlalchemy.orm import Session

from prevenance.common import inputs, outbox
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import fingerprint
from prevenance.common.problems import InvalidInput, as_invalid_input
from prevenance.common.rules import FieldError
from prevenance.customers import service as customers
from prevenance.desk import service as desk
from prevenance.voice import repository, rules
from prevenance.voice.errors import (
    InvalidImport,
    NothingToPublish,
    SurveyLinkError,
    UnknownScorecard,
    UnknownSuggestion,
)
from prevenance.voice.tables import (
    Answer,
    AnswerTopic,
    Barometer,
    ScorecardRow,
    ScorecardVersion,
    Suggestion,
    SurveyConsent,
)

if TYPE_CHECKING:
    from prevenance.customers.tables import Member

METHODS = "docs/methods.md"
ANSWER_SCHEMA: dict[str, Any] = {
    "answer_id": pl.Utf8,
    "contact_id": pl.Utf8,
    "member_id": pl.Int64,
    "agent": pl.Utf8,
    "team": pl.Utf8,
    "channel": pl.Utf8,
    "reason": pl.Utf8,
    "product": pl.Utf8,
    "country": pl.Utf8,
    "month": pl.Utf8,
    "answered_at": pl.Datetime("us", "UTC"),
    "recommend": pl.Int8,
    "interaction": pl.Int8,
    "language": pl.Utf8,
}


def _iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment is not None else None


@lru_cache(maxsize=1)
def current_config() -> rules.VoiceConfig:
    """The shipped configuration (sampling, payout grid, calibration fallback)."""
    text = resources.files("prevenance.voice").joinpath("voice_config.json").read_text("utf-8")
    return rules.parse_config(json.loads(text))


# --- consent --------------------------------------------------------------------------------------


def set_survey_consent(
    session: Session, *, member_ref: str, opted_out: bool, by: str, now: datetime
) -> dict[str, Any]:
    """Record whether a member wants surveys; setting the same value again changes nothing."""
    member = customers.get_or_raise(session, ref=member_ref)
    row = session.get(SurveyConsent, member.id, with_for_update=True)
    if row is None:
        row = SurveyConsent(member_id=member.id, opted_out=opted_out, updated_at=now, updated_by=by)
        session.add(row)
    elif row.opted_out != opted_out:
        row.opted_out, row.updated_at, row.updated_by = opted_out, now, by
    session.flush()
    return {"member_ref": member.ref, "opted_out": row.opted_out, "updated_at": _iso(row.updated_at)}


def get_survey_consent(session: Session, *, member_ref: str) -> dict[str, Any]:
    """A member's survey choice (default: not opted out)."""
    member = customers.get_or_raise(session, ref=member_ref)
    row = repository.consent(session, member.id)
    return {
        "member_ref": member.ref,
        "opted_out": bool(row and row.opted_out),
        "updated_at": _iso(row.updated_at) if row else None,
    }


# --- the survey page ------------------------------------------------------------------------------


def get_open_invitation(session: Session, *, invitation_id: str) -> dict[str, Any]:
    """What the survey page needs to show the form; SurveyLinkError when the link cannot be used."""
    invitation = repository.invitation(session, invitation_id)
    if invitation is None or invitation.status == "skipped":
        raise SurveyLinkError("invalid")
    if invitation.answered_at is not None:
        raise SurveyLinkError("used")
    return {"id": invitation.id, "language": invitation.language, "channel": invitation.channel}


def _tag(text: str | None, language: str) -> list[str]:
    if not text:
        return []
    from prevenance.voice import topics

    return sorted(set(topics.tag(text, language)))


def store_answer(session: Session, *, row: Answer, now: datetime) -> None:
    """Insert an answer with its topics and, when it has one, its suggestion; emit ``survey.answered``."""
    session.add(row)
    session.flush()
    topic_rows = [
        {"answer_id": row.id, "part": part, "topic": topic, "month": row.month}
        for part, text in (("comment", row.comment), ("suggestion", row.suggestion))
        for topic in _tag(text, row.language)
    ]
    if topic_rows:
        session.execute(insert(AnswerTopic), topic_rows)
    if row.suggestion:
        session.add(
            Suggestion(
                id="sug_" + hashlib.sha256(row.id.encode()).hexdigest()[:32],
                answer_id=row.id,
                text=row.suggestion,
                language=row.language,
                country=row.country,
                month=row.month,
                status="new",
                created_at=now,
                updated_at=now,
            )
        )
    session.flush()
    outbox.emit(session, type="survey.answered", payload=_answer_body(row), now=now)


def _answer_body(row: Answer) -> dict[str, Any]:
    return {
        "id": row.id,
        "invitation_id": row.invitation_id,
        "contact_id": row.contact_id,
        "member_id": row.member_id,
        "agent": row.agent,
        "team": row.team,
        "channel": row.channel,
        "reason": row.reason,
        "product": row.product,
        "country": row.country,
        "month": row.month,
        "answered_at": _iso(row.answered_at),
        "recommend": row.recommend,
        "interaction": row.interaction,
        "comment": row.comment,
        "suggestion": row.suggestion,
        "language": row.language,
        "source": row.source,
    }


def submit_answer(
    session: Session, *, invitation_id: str, form: rules.AnswerForm, language: str, now: datetime
) -> dict[str, Any]:
    """Record the answer to an invitation, once. The conditional update of ``answered_at`` decides a
    race between two submissions (its row count says who won); the unique ``invitation_id`` of the
    answer is the database's own guarantee behind it."""
    invitation = repository.invitation(session, invitation_id)
    if invitation is None or invitation.status == "skipped":
        raise SurveyLinkError("invalid")
    if form.recommend is None:
        raise InvalidInput("recommend is required", field="recommend")
    if not repository.claim_invitation_answer(session, invitation_id, now):
        raise SurveyLinkError("used")
    row = Answer(
        id=f"survey:{invitation.id}",
        invitation_id=invitation.id,
        contact_id=invitation.contact_id,
        member_id=invitation.member_id,
        agent=invitation.agent,
        team=invitation.team,
        channel=invitation.channel,
        reason=invitation.reason,
        product=invitation.product,
        country=invitation.country,
        month=rules.month_of(now),
        answered_at=now,
        recommend=form.recommend,
        interaction=form.interaction,
        comment=form.comment,
        suggestion=form.suggestion,
        language=language if language in rules.LANGUAGES else invitation.language,
        source="survey",
        fingerprint=fingerprint(
            {"r": form.recommend, "i": form.interaction, "c": form.comment, "s": form.suggestion}
        ),
        created_at=now,
    )
    store_answer(session, row=row, now=now)
    return _answer_body(row)


# --- CSV import -----------------------------------------------------------------------------------


def import_answers(
    session: Session,
    *,
    rows: Sequence[Mapping[str, str | None]],
    now: datetime,
    progress: Callable[[int], None] | None = None,
    first_line: int = 2,
) -> dict[str, int]:
    """Import answers from another channel (post-call phone surveys): all lines or none.

    Each line is checked first (line numbers count the header as line 1); any faulty line rejects
    the file with every line and reason (``InvalidImport``). An id already imported with the same
    values is skipped, with other values it is a faulty line: a re-run of the file adds nothing.
    """
    errors: list[dict[str, Any]] = []
    parsed: list[tuple[int, rules.ImportedAnswer]] = []
    for offset, raw in enumerate(rows):
        line = first_line + offset
        try:
            parsed.append((line, rules.parse_import_row(raw)))
        except FieldError as error:
            errors.append({"line": line, "field": error.field, "reason": str(error)})
    refs = sorted({item.member_ref for _, item in parsed})
    members: dict[str, Member] = {}
    for ref in refs:
        member = customers.get(session, ref=ref)
        if member is not None:
            members[ref] = member
    ids = [f"csv:{item.id}" for _, item in parsed]
    existing = repository.answers_by_id(session, ids)
    seen: dict[str, int] = {}
    to_insert: list[Answer] = []
    unchanged = 0
    for line, item in parsed:
        member = members.get(item.member_ref)
        if member is None:
            errors.append(
                {"line": line, "field": "member_ref", "reason": f"unknown member {item.member_ref!r}"}
            )
            continue
        answer_id = f"csv:{item.id}"
        if answer_id in seen:
            errors.append(
                {"line": line, "field": "id", "reason": f"id repeated (first on line {seen[answer_id]})"}
            )
            continue
        seen[answer_id] = line
        row = Answer(
            id=answer_id,
            invitation_id=None,
            contact_id=item.contact_id,
            member_id=member.id,
            agent=item.agent,
            team=item.team,
            channel=item.channel,
            reason=item.reason,
            product=item.product or member.product,
            country=item.country or member.country,
            month=rules.month_of(item.answered_at),
            answered_at=item.answered_at,
            recommend=item.recommend,
            interaction=item.interaction,
            comment=item.comment,
            suggestion=item.suggestion,
            language=item.language or member.language,
            source="import",
            fingerprint="",
            created_at=now,
        )
        row.fingerprint = fingerprint({k: v for k, v in _answer_body(row).items() if k != "id"})
        if answer_id in existing:
            if existing[answer_id].fingerprint != row.fingerprint:
                errors.append(
                    {"line": line, "field": "id", "reason": f"id {item.id!r} was imported with other values"}
                )
            else:
                unchanged += 1
            continue
        to_insert.append(row)
    if errors:
        errors.sort(key=lambda e: e["line"])
        raise InvalidImport(
            f"{len(errors)} faulty line(s), first on line {errors[0]['line']}: {errors[0]['reason']}",
            field=errors[0]["field"],
            errors=errors[:1000],
        )
    for done, row in enumerate(to_insert, start=1):
        store_answer(session, row=row, now=now)
        if progress is not None:
            progress(done)
    return {"imported": len(to_insert), "unchanged": unchanged, "lines": len(rows)}


# --- answers as a frame ---------------------------------------------------------------------------


def load_answers(session: Session, *, months: Sequence[str]) -> pl.DataFrame:
    """The answers of the given months as the frame ``analytics`` and ``calibration`` read."""
    rows = repository.answer_rows(session, months)
    data: dict[str, list[Any]] = {name: [] for name in ANSWER_SCHEMA}
    for row in rows:
        for name, value in zip(ANSWER_SCHEMA, row, strict=True):
            data[name].append(value)
    data["contact_id"] = [value or "" for value in data["contact_id"]]
    return pl.DataFrame(data, schema=ANSWER_SCHEMA)


def _check_month(month: str) -> str:
    inputs.check_month(month)  # the accepted window (a 422 naming the month)
    with as_invalid_input():
        return rules.check_month(month)


def scores(session: Session, *, by: str, month: str) -> dict[str, Any]:
    """RTF and excellence rate by ``by`` for a month, each with n and a 95% interval."""
    from prevenance.voice import analytics

    if by not in rules.SCORE_DIMENSIONS:
        raise InvalidInput(f"by must be one of {', '.join(rules.SCORE_DIMENSIONS)}", field="by")
    _check_month(month)
    answers = load_answers(session, months=[month])
    grid = current_config().payout_grid
    items = analytics.scores_by(answers, by, target_rtf=float(grid["target_rtf"]))
    return {
        "month": month,
        "by": by,
        "n": answers.height,
        "items": items,
        "method": f"{METHODS}#scores-by-agent-team-channel-reason-country-product-month",
    }


# --- scorecards -----------------------------------------------------------------------------------


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
    from prevenance.voice import analytics

    _check_month(month)
    answers = load_answers(session, months=[month])
    frame = analytics.agent_scorecards(
        answers, _fcr_frame(session, month=month, now=now), current_config().payout_grid
    )
    rows = [{key: _plain(value) for key, value in row.items()} for row in frame.sort("agent").to_dicts()]
    return rows


def _version_body(version: ScorecardVersion, rows: list[ScorecardRow] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "month": version.month,
        "version": version.version,
        "published_by": version.published_by,
        "reason": version.reason,
        "published_at": _iso(version.published_at),
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
    _check_month(month)
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


# --- barometers -----------------------------------------------------------------------------------


def _barometer_body(row: Barometer) -> dict[str, Any]:
    return {
        "source": row.source,
        "country": row.country,
        "quarter": row.quarter,
        "metric": row.metric,
        "value": row.value,
        "n": row.n,
        "imported_at": _iso(row.imported_at),
    }


def import_barometers(
    session: Session, *, rows: Sequence[Mapping[str, str | None]], now: datetime
) -> dict[str, int]:
    """Store competitor and market figures, all lines or none; one row per (source, country, quarter,
    metric): the same figure again changes nothing, a new value corrects the stored one."""
    errors: list[dict[str, Any]] = []
    lines: dict[tuple[str, str, str, str], rules.BarometerLine] = {}
    for offset, raw in enumerate(rows):
        try:
            item = rules.parse_barometer_row(raw)
        except FieldError as error:
            errors.append({"line": offset + 2, "field": error.field, "reason": str(error)})
            continue
        lines[(item.source, item.country, item.quarter, item.metric)] = item
    if errors:
        raise InvalidImport(
            f"{len(errors)} faulty line(s), first on line {errors[0]['line']}: {errors[0]['reason']}",
            field=errors[0]["field"],
            errors=errors,
        )
    counts = {"inserted": 0, "updated": 0, "unchanged": 0}
    for key, item in lines.items():
        row = session.get(Barometer, key, with_for_update=True)
        if row is None:
            session.add(
                Barometer(
                    source=item.source,
                    country=item.country,
                    quarter=item.quarter,
                    metric=item.metric,
                    value=item.value,
                    n=item.n,
                    imported_at=now,
                )
            )
            counts["inserted"] += 1
        elif (row.value, row.n) != (item.value, item.n):
            row.value, row.n, row.imported_at = item.value, item.n, now
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    session.flush()
    return counts


def list_barometers(
    session: Session, *, quarter: str | None = None, country: str | None = None
) -> list[dict[str, Any]]:
    """Stored barometer figures, by quarter, country, source and metric."""
    if quarter is not None:
        inputs.check_quarter(quarter)
        with as_invalid_input():
            rules.check_quarter(quarter)
    return [_barometer_body(row) for row in repository.barometers(session, quarter=quarter, country=country)]


def calibrated_countries(session: Session, *, quarter: str) -> dict[str, Any]:
    """The quarter's raw and calibrated scores per country, computed once with the shipped calibration
    settings: the API, the executive screen and the quarterly report all show these figures."""
    from prevenance.voice import calibration

    inputs.check_quarter(quarter)
    with as_invalid_input():
        months = rules.quarter_months(quarter)
    config = current_config()
    answers = load_answers(session, months=months)
    countries = calibration.country_scores(
        answers, reference=config.calibration_reference, fallback=config.calibration_fallback or None
    )
    return {
        "quarter": quarter,
        "reference": config.calibration_reference,
        "n": answers.height,
        "min_answers": calibration.MIN_ANSWERS,
        "countries": countries,
    }


def country_comparison(session: Session, *, quarter: str) -> dict[str, Any]:
    """Raw and calibrated RTF per country for a quarter, with the barometers of that quarter beside."""
    found = calibrated_countries(session, quarter=quarter)
    outside = list_barometers(session, quarter=quarter)
    for item in found["countries"]:
        code = item.get("country") or item.get("key")
        item["barometers"] = [b for b in outside if b["country"] == code]
    return {
        **found,
        "barometers": outside,
        "method": f"{METHODS}#culture-aware-country-comparison-calibration",
    }


# --- suggestions and topics -----------------------------------------------------------------------


def _suggestion_body(row: Suggestion, topics: list[str]) -> dict[str, Any]:
    return {
        "id": row.id,
        "answer_id": row.answer_id,
        "text": row.text,
        "language": row.language,
        "country": row.country,
        "month": row.month,
        "topics": topics,
        "status": row.status,
        "link": row.link,
        "note": row.note,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
        "updated_by": row.updated_by,
    }


def list_suggestions(
    session: Session,
    *,
    status: str | None = None,
    topic: str | None = None,
    month: str | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Customers' suggestions, newest first, filtered by status, topic and month."""
    if status is not None and status not in rules.SUGGESTION_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(rules.SUGGESTION_STATUSES)}", field="status")
    if month is not None:
        _check_month(month)
    rows = repository.suggestions(session, status=status, topic=topic, month=month, limit=limit)
    topics = repository.topics_of(session, [row.answer_id for row in rows], part="suggestion")
    return [_suggestion_body(row, topics.get(row.answer_id, [])) for row in rows]


def update_suggestion(
    session: Session,
    *,
    suggestion_id: str,
    status: str | None,
    link: str | None,
    note: str | None,
    by: str,
    now: datetime,
) -> dict[str, Any]:
    """Move a suggestion along (new, under review, adopted, declined) and say what was done with it."""
    if status is not None and status not in rules.SUGGESTION_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(rules.SUGGESTION_STATUSES)}", field="status")
    row = repository.suggestion_for_update(session, suggestion_id)
    if row is None:
        raise UnknownSuggestion(f"no suggestion {suggestion_id!r}", field="id")
    changed = False
    for name, value in (("status", status), ("link", link), ("note", note)):
        if value is not None and getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed:
        row.updated_at, row.updated_by = now, by
        session.flush()
        outbox.emit(
            session,
            type="suggestion.updated",
            payload={"id": row.id, "status": row.status, "link": row.link, "by": by},
            now=now,
        )
    topics = repository.topics_of(session, [row.answer_id], part="suggestion")
    return _suggestion_body(row, topics.get(row.answer_id, []))


def topic_counts(session: Session, *, month: str | None = None) -> dict[str, Any]:
    """How many answers mention each topic (comment or suggestion), by month."""
    if month is not None:
        _check_month(month)
    items = [
        {"month": r.month, "topic": r.topic, "answers": int(r.answers)}
        for r in repository.topic_counts(session, month)
    ]
    return {"month": month, "items": items}


# --- the member 360 -------------------------------------------------------------------------------


def list_member_surveys(session: Session, *, member_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """A member's answered surveys, newest first (for the member 360)."""
    rows = repository.member_answers(session, member_id, limit)
    return [
        {
            "id": row.id,
            "contact_id": row.contact_id,
            "answered_at": _iso(row.answered_at),
            "channel": row.channel,
            "agent": row.agent,
            "reason": row.reason,
            "recommend": row.recommend,
            "interaction": row.interaction,
            "comment": row.comment,
            "suggestion": row.suggestion,
            "source": row.source,
        }
        for row in rows
    ]


# --- the quarterly report -------------------------------------------------------------------------


def report_data(session: Session, *, quarter: str, language: str, now: datetime) -> dict[str, Any]:
    """Everything ``report.build_quarterly_report`` needs for a quarter (and the quarters before it,
    for the trends): answers, FCR by month and country, top reasons, card promise kept, barometers."""
    inputs.check_quarter(quarter)
    with as_invalid_input():
        quarters = rules.previous_quarters(quarter, current_config().report_history_quarters)
    if language not in rules.LANGUAGES:
        raise InvalidInput("language must be fr or en", field="language")
    months = [month for q in quarters for month in rules.quarter_months(q)]
    fcr_rows: list[dict[str, Any]] = []
    for month in months:
        report = desk.fcr_report(session, by="country", month=month, now=now)
        fcr_rows += [
            {"month": month, "country": r["key"], "fcr_resolved": int(r["successes"]), "fcr_n": int(r["n"])}
            for r in report["rows"]
        ]
    reasons: dict[str, dict[str, Any]] = {}
    for month in rules.quarter_months(quarter):
        for item in desk.reason_report(session, month=month)["reasons"]:
            entry = reasons.setdefault(
                item["reason"],
                {"reason": item["reason"], "label": item[f"label_{language}"], "count": 0},
            )
            entry["count"] += int(item["contacts"])
    card_promise = []
    for month in months:
        kept = desk.card_replacement_report(session, month=month, now=now)["within_promise"]
        card_promise.append({"month": month, "share_within_promise": kept["value"], "n": int(kept["n"])})
    outside = repository.barometers_for_quarters(session, quarters)
    barometers = pl.DataFrame(
        {
            "source": [b.source for b in outside],
            "country": [b.country for b in outside],
            "quarter": [b.quarter for b in outside],
            "metric": [b.metric for b in outside],
            "value": [b.value for b in outside],
            "n": [b.n for b in outside],
        },
        schema={
            "source": pl.Utf8,
            "country": pl.Utf8,
            "quarter": pl.Utf8,
            "metric": pl.Utf8,
            "value": pl.Float64,
            "n": pl.Int64,
        },
    )
    calibrated = calibrated_countries(session, quarter=quarter)
    return {
        "quarter": quarter,
        "language": language,
        "answers": load_answers(session, months=months),
        "countries": calibrated["countries"],
        "reference_country": calibrated["reference"],
        "fcr": pl.DataFrame(
            fcr_rows,
            schema={"month": pl.Utf8, "country": pl.Utf8, "fcr_resolved": pl.Int64, "fcr_n": pl.Int64},
        ),
        "reasons": sorted(reasons.values(), key=lambda r: (-r["count"], r["reason"]))[:10],
        "card_promise": card_promise,
        "barometers": barometers,
    }
