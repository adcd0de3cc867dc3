"""Use cases of the voice domain. Each runs inside the caller's unit of work and never commits.

This module records answers (survey page), consent, suggestions and the member 360's surveys; the
figures live by job in ``scorecards`` (scores, scorecards), ``quarterly`` (country comparison,
barometers, the report's data) and ``importing`` (the CSV import), all re-exported here so callers
keep one entry point. The statistics themselves are in ``stats``, ``analytics``, ``calibration``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from prevenance.common import outbox, reads
from prevenance.common.ids import fingerprint, iso_z
from prevenance.common.periods import month_of
from prevenance.common.problems import InvalidInput
from prevenance.common.reads import Read
from prevenance.customers import service as customers
from prevenance.voice import repository, rules
from prevenance.voice.basics import METHODS as METHODS
from prevenance.voice.basics import check_month
from prevenance.voice.basics import current_config as current_config
from prevenance.voice.errors import SurveyLinkError, UnknownSuggestion
from prevenance.voice.importing import import_answers as import_answers
from prevenance.voice.quarterly import calibrated_countries as calibrated_countries
from prevenance.voice.quarterly import country_comparison as country_comparison
from prevenance.voice.quarterly import import_barometers as import_barometers
from prevenance.voice.quarterly import list_barometers as list_barometers
from prevenance.voice.quarterly import report_data as report_data
from prevenance.voice.scorecards import compute_scorecard as compute_scorecard
from prevenance.voice.scorecards import get_scorecard as get_scorecard
from prevenance.voice.scorecards import publish_scorecard as publish_scorecard
from prevenance.voice.scorecards import scores as scores
from prevenance.voice.scorecards import scores_over as scores_over
from prevenance.voice.tables import Answer, AnswerTopic, Suggestion, SurveyConsent

# --- consent --------------------------------------------------------------------------------------


def set_survey_consent(
    session: Session, *, member_ref: str, opted_out: bool, by: str, now: datetime
) -> dict[str, Any]:
    """Record whether a member wants surveys; setting the same value again changes nothing. An erased
    member is never written to again (409 ``member-erased``)."""
    member = customers.get_member(session, ref=member_ref)
    customers.ensure_not_erased(member)
    row = session.get(SurveyConsent, member.id, with_for_update=True)
    if row is None:
        row = SurveyConsent(member_id=member.id, opted_out=opted_out, updated_at=now, updated_by=by)
        session.add(row)
    elif row.opted_out != opted_out:
        row.opted_out, row.updated_at, row.updated_by = opted_out, now, by
    session.flush()
    return {"member_ref": member.ref, "opted_out": row.opted_out, "updated_at": iso_z(row.updated_at)}


def get_survey_consent(session: Session, *, member_ref: str) -> dict[str, Any]:
    """A member's survey choice (default: not opted out)."""
    member = customers.get_member(session, ref=member_ref)
    row = repository.consent(session, member.id)
    return {
        "member_ref": member.ref,
        "opted_out": bool(row and row.opted_out),
        "updated_at": iso_z(row.updated_at) if row else None,
    }


# --- the survey page ------------------------------------------------------------------------------


def _ensure_member_not_erased(session: Session, member_id: int) -> None:
    """SurveyLinkError ``invalid`` when the invited member was erased since the mail went out.

    Erasure skips the invitations still pending, but a mail already sent keeps a working link for
    ``survey_link_max_age_days``; an erased member is never written to again, so its link records
    nothing (and says only "not valid", as a forged link does: no page tells who was erased).
    """
    member = customers.find_member_by_id(session, member_id=member_id)
    if member is None or customers.is_erased(member):
        raise SurveyLinkError("invalid")


def get_open_invitation(session: Session, *, invitation_id: str) -> dict[str, Any]:
    """What the survey page needs to show the form; SurveyLinkError when the link cannot be used."""
    invitation = repository.invitation(session, invitation_id)
    if invitation is None or invitation.status == "skipped":
        raise SurveyLinkError("invalid")
    _ensure_member_not_erased(session, invitation.member_id)
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
        "answered_at": iso_z(row.answered_at),
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
    """Record the answer to an invitation, once, unless its member was erased since. The conditional
    update of ``answered_at`` decides a race between two submissions (its row count says who won); the
    unique ``invitation_id`` of the answer is the database's own guarantee behind it."""
    invitation = repository.invitation(session, invitation_id)
    if invitation is None or invitation.status == "skipped":
        raise SurveyLinkError("invalid")
    if form.recommend is None:
        raise InvalidInput("recommend is required", field="recommend")
    _ensure_member_not_erased(session, invitation.member_id)
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
        month=month_of(now),
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
        "created_at": iso_z(row.created_at),
        "updated_at": iso_z(row.updated_at),
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
        check_month(month)
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
    """Move a suggestion along (new, under review, adopted, declined) and say what was done with it.

    The link and note bounds are checked here, not only in the API's body model: the console's form
    reaches this use case directly, and stored a note as long as the request body allowed."""
    if status is not None and status not in rules.SUGGESTION_STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(rules.SUGGESTION_STATUSES)}", field="status")
    for name, value, limit in (
        ("link", link, rules.SUGGESTION_LINK_MAX),
        ("note", note, rules.SUGGESTION_NOTE_MAX),
    ):
        if value is not None and len(value) > limit:
            raise InvalidInput(f"{name} is longer than {limit} characters", field=name)
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
        check_month(month)
    items = [
        {"month": r.month, "topic": r.topic, "answers": int(r.answers)}
        for r in repository.topic_counts(session, month)
    ]
    return {"month": month, "items": items}


# --- the member 360 -------------------------------------------------------------------------------


def list_member_surveys(session: Session, *, member_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """A member's answered surveys, newest first (for the member 360)."""
    return reads.run(session, member_surveys(member_id, limit=limit))


def member_surveys(member_id: int, *, limit: int) -> Read[list[dict[str, Any]]]:
    """``list_member_surveys`` as a read a view sends with others."""
    return Read(repository.MEMBER_ANSWERS, {"p_member": member_id, "p_limit": limit}, _survey_items)


def _survey_items(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": row.id,
            "contact_id": row.contact_id,
            "answered_at": iso_z(row.answered_at),
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
