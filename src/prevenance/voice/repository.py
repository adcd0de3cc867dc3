"""Every query of the voice domain, and nothing else."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, exists, func, select, update
from sqlalchemy.orm import Session

from prevenance.common import mail
from prevenance.common.bulk import rows_changed
from prevenance.common.lookups import InQuery
from prevenance.voice.tables import (
    Answer,
    AnswerTopic,
    Barometer,
    Invitation,
    ScorecardRow,
    ScorecardVersion,
    Suggestion,
    SurveyConsent,
)

if TYPE_CHECKING:
    from prevenance.common.mail import Unsent

CHUNK = 1000  # ids per IN list, well under both backends' parameter limits


def consent(session: Session, member_id: int) -> SurveyConsent | None:
    return session.get(SurveyConsent, member_id)


def opted_out_among(session: Session, member_ids: list[int]) -> set[int]:
    """Which of these members declined surveys (one query for a batch of decisions)."""
    if not member_ids:
        return set()
    return set(
        session.scalars(
            select(SurveyConsent.member_id).where(
                SurveyConsent.member_id.in_(member_ids), SurveyConsent.opted_out.is_(True)
            )
        )
    )


def decisions_between(
    session: Session, member_ids: list[int], after: datetime, until: datetime
) -> list[tuple[int, str, datetime, str]]:
    """``(member_id, contact_id, contact_ended_at, status)`` of these members' decisions for
    contacts that ended in ``(after, until]``: what a batch of decisions under a cap needs."""
    if not member_ids:
        return []
    rows = session.execute(
        select(
            Invitation.member_id, Invitation.contact_id, Invitation.contact_ended_at, Invitation.status
        ).where(
            Invitation.member_id.in_(member_ids),
            Invitation.contact_ended_at > after,
            Invitation.contact_ended_at <= until,
        )
    )
    return [(int(m), str(c), e, str(s)) for m, c, e, s in rows]


def invitation(session: Session, invitation_id: str) -> Invitation | None:
    return session.get(Invitation, invitation_id)


def next_pending_invitation(session: Session, now: datetime) -> Invitation | None:
    """The oldest pending invitation whose attempt is due (``next_attempt_at``), locked (``SKIP
    LOCKED``: two relays never take the same)."""
    return mail.next_due_row(session, Invitation, now, order_by=(Invitation.created_at, Invitation.id))


def mark_invitation_sent(session: Session, invitation_id: str, now: datetime) -> bool:
    """Pending → sent; False when another relay already did it."""
    return bool(mail.mark_rows_sent(session, Invitation, now, where=(Invitation.id == invitation_id,)))


def record_invitation_attempt(session: Session, invitation_id: str, unsent: Unsent) -> None:
    """A refused attempt on a pending invitation: retry at ``next_attempt_at``, or failed."""
    mail.record_unsent(session, Invitation, invitation_id, unsent)


def count_invitations(session: Session, *, status: str) -> int:
    """How many invitations are in ``status`` (the relay's ``pending`` and ``failed``)."""
    return session.scalar(select(func.count()).where(Invitation.status == status)) or 0


def claim_invitation_answer(session: Session, invitation_id: str, now: datetime) -> bool:
    """Mark the invitation answered unless it already is: the row count says who won a race."""
    result = session.execute(
        update(Invitation)
        .where(
            Invitation.id == invitation_id,
            Invitation.answered_at.is_(None),
            Invitation.status != "skipped",
        )
        .values(answered_at=now)
    )
    return bool(rows_changed(result))


def count_pending_invitations(session: Session) -> int:
    return session.scalar(select(func.count()).where(Invitation.status == "pending")) or 0


def answers_by_id(session: Session, ids: Sequence[str]) -> dict[str, Answer]:
    found: dict[str, Answer] = {}
    for start in range(0, len(ids), CHUNK):
        chunk = list(ids[start : start + CHUNK])
        for row in session.scalars(select(Answer).where(Answer.id.in_(chunk))):
            found[row.id] = row
    return found


_FINGERPRINTS = InQuery(select(Answer.id, Answer.fingerprint).where, Answer.id)


def answer_fingerprints(session: Session, ids: Sequence[str]) -> dict[str, str]:
    """id → fingerprint of the answers among ``ids`` already stored (an import's re-run check): one
    statement with one parameter for a whole chunk of the file (``common.lookups.InQuery``)."""
    return dict(_FINGERPRINTS.rows(session, ids))


MEMBER_ANSWERS = (
    select(Answer.__table__)
    .where(Answer.member_id == bindparam("p_member"))
    .order_by(Answer.answered_at.desc(), Answer.id.desc())
    .limit(bindparam("p_limit"))
)
"""Built once (the 360 asks it of every member it shows)."""


def latest_scorecard(session: Session, month: str) -> ScorecardVersion | None:
    return session.scalars(
        select(ScorecardVersion)
        .where(ScorecardVersion.month == month)
        .order_by(ScorecardVersion.version.desc())
    ).first()


def scorecard_version(session: Session, month: str, version: int) -> ScorecardVersion | None:
    return session.get(ScorecardVersion, (month, version))


def scorecard_versions(session: Session, month: str) -> list[ScorecardVersion]:
    return list(
        session.scalars(
            select(ScorecardVersion).where(ScorecardVersion.month == month).order_by(ScorecardVersion.version)
        )
    )


def scorecard_rows(session: Session, month: str, version: int) -> list[ScorecardRow]:
    return list(
        session.scalars(
            select(ScorecardRow)
            .where(ScorecardRow.month == month, ScorecardRow.version == version)
            .order_by(ScorecardRow.agent)
        )
    )


def barometers(session: Session, *, quarter: str | None, country: str | None) -> list[Barometer]:
    statement = select(Barometer)
    if quarter is not None:
        statement = statement.where(Barometer.quarter == quarter)
    if country is not None:
        statement = statement.where(Barometer.country == country)
    return list(
        session.scalars(
            statement.order_by(Barometer.quarter, Barometer.country, Barometer.source, Barometer.metric)
        )
    )


def barometers_for_quarters(session: Session, quarters: Sequence[str]) -> list[Barometer]:
    return list(
        session.scalars(
            select(Barometer)
            .where(Barometer.quarter.in_(list(quarters)))
            .order_by(Barometer.quarter, Barometer.country, Barometer.source, Barometer.metric)
        )
    )


def suggestions(
    session: Session, *, status: str | None, topic: str | None, month: str | None, limit: int
) -> list[Suggestion]:
    statement = select(Suggestion)
    if status is not None:
        statement = statement.where(Suggestion.status == status)
    if month is not None:
        statement = statement.where(Suggestion.month == month)
    if topic is not None:
        statement = statement.where(
            exists().where(
                AnswerTopic.answer_id == Suggestion.answer_id,
                AnswerTopic.part == "suggestion",
                AnswerTopic.topic == topic,
            )
        )
    return list(session.scalars(statement.order_by(Suggestion.created_at.desc(), Suggestion.id).limit(limit)))


def suggestion_for_update(session: Session, suggestion_id: str) -> Suggestion | None:
    return session.get(Suggestion, suggestion_id, with_for_update=True)


def topics_of(session: Session, answer_ids: Sequence[str], part: str | None = None) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for start in range(0, len(answer_ids), CHUNK):
        statement = select(AnswerTopic.answer_id, AnswerTopic.topic).where(
            AnswerTopic.answer_id.in_(list(answer_ids[start : start + CHUNK]))
        )
        if part is not None:
            statement = statement.where(AnswerTopic.part == part)
        for answer_id, topic in session.execute(statement.order_by(AnswerTopic.topic)):
            if topic not in found.setdefault(answer_id, []):
                found[answer_id].append(topic)
    return found


def topic_counts(session: Session, month: str | None) -> list[Any]:
    """Answers mentioning each topic (in a comment or a suggestion), by month."""
    statement = select(
        AnswerTopic.month,
        AnswerTopic.topic,
        func.count(func.distinct(AnswerTopic.answer_id)).label("answers"),
    )
    if month is not None:
        statement = statement.where(AnswerTopic.month == month)
    return list(
        session.execute(
            statement.group_by(AnswerTopic.month, AnswerTopic.topic).order_by(
                AnswerTopic.month, func.count(func.distinct(AnswerTopic.answer_id)).desc(), AnswerTopic.topic
            )
        )
    )
