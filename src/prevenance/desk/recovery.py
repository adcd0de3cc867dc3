"""Service recovery: a detractor or poor answer opens a case on the member, owed by the team of the
contact that was rated; an agent closes it with an outcome.

The desk does not read voice's tables (voice sits above it): it reacts to voice's
``survey.answered`` event, which the survey page and ``voice import`` both emit, through the
in-process handler :func:`on_survey_answered` registered in ``maintenance.HANDLERS``. The event is
delivered at least once, possibly by two relays at a time: the unique ``answer_id`` opens exactly one
case per answer. The same event records a recovered member's next answer for the report.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, case, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from prevenance.common import outbox, reads
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import as_utc, fingerprint, iso_z
from prevenance.common.inputs import check_month
from prevenance.common.outbox import OutboxEvent
from prevenance.common.periods import month_bounds
from prevenance.common.problems import Conflict, InvalidInput, NotFound
from prevenance.common.reads import Read
from prevenance.customers import service as customers
from prevenance.desk import config
from prevenance.desk import recovery_rules as rules
from prevenance.desk.errors import ContactOfAnotherMember, UnknownContactInBody
from prevenance.desk.tables import Contact, RecoveryCase


class UnknownRecoveryCase(NotFound):
    type_slug = "unknown-recovery-case"
    title = "Unknown recovery case"


class RecoveryCaseClosed(Conflict):
    type_slug = "recovery-case-closed"
    title = "The recovery case was already closed with another outcome"


def case_id_for(answer_id: str) -> str:
    """The case of an answer: derived from it, so every relay names the same case."""
    return "rcv_" + hashlib.sha256(answer_id.encode()).hexdigest()[:32]


def _body(row: RecoveryCase, now: datetime) -> dict[str, Any]:
    return {
        "id": row.id,
        "member_ref": row.member_ref,
        "answer_id": row.answer_id,
        "contact_id": row.contact_id,
        "team": row.team,
        "agent": row.agent,
        "channel": row.channel,
        "country": row.country,
        "cause": row.cause,
        "recommend": row.recommend,
        "interaction": row.interaction,
        "score": rules.rated_score(row.cause, row.recommend, row.interaction),
        "answered_at": iso_z(row.answered_at),
        "opened_at": iso_z(row.opened_at),
        "opened_by": row.opened_by,
        "due_at": iso_z(row.due_at),
        "status": row.status,
        "state": rules.state(closed=row.status == "closed", due=row.due_at, now=now),
        "outcome": row.outcome,
        "note": row.note,
        "closed_by": row.closed_by,
        "closed_at": iso_z(row.closed_at),
        "follow_up_recommend": row.follow_up_recommend,
        "follow_up_at": iso_z(row.follow_up_at),
    }


# --- opening, from the voice event ----------------------------------------------------------------


def _time(value: Any) -> datetime | None:
    if not value:
        return None
    return as_utc(datetime.fromisoformat(str(value).replace("Z", "+00:00")))


def on_survey_answered(session: Session, event: OutboxEvent) -> None:
    """React to an answer once: record it as the next answer of the member's recovered cases, and
    open a recovery case when it is a detractor or a poor interaction. A repeat of the event (or a
    second relay racing this one) finds the case there and changes nothing."""
    payload = event.payload
    answer_id = str(payload["id"])
    member_id = int(payload["member_id"])
    recommend = payload.get("recommend")
    interaction = payload.get("interaction")
    answered_at = _time(payload.get("answered_at")) or event.occurred_at
    if recommend is not None:
        _record_follow_up(
            session, member_id=member_id, answer_id=answer_id, recommend=int(recommend), at=answered_at
        )
    cause = rules.cause_of(recommend, interaction)
    if cause is None:
        return
    case_id = case_id_for(answer_id)
    if session.get(RecoveryCase, case_id) is not None:
        return
    member = customers.find_member_by_id(session, member_id=member_id)
    if member is None or customers.is_erased(member):
        return
    row = RecoveryCase(
        id=case_id,
        answer_id=answer_id,
        member_id=member.id,
        member_ref=member.ref,
        contact_id=payload.get("contact_id"),
        team=str(payload.get("team") or "unassigned")[:120],
        agent=payload.get("agent"),
        channel=payload.get("channel"),
        country=str(payload.get("country") or member.country),
        cause=cause,
        recommend=recommend,
        interaction=interaction,
        answered_at=answered_at,
        opened_at=event.occurred_at,
        opened_by="survey",
        due_at=rules.due_at(answered_at, config.current().recovery_due_hours),
        status="open",
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # another relay opened this answer's case first: it stands
        return
    outbox.emit(session, type="recovery.opened", payload=_body(row, event.occurred_at), now=event.occurred_at)


def _record_follow_up(
    session: Session, *, member_id: int, answer_id: str, recommend: int, at: datetime
) -> None:
    """The member's first scored answer after a case closed recovered is that case's follow-up."""
    session.execute(
        update(RecoveryCase)
        .where(
            RecoveryCase.member_id == member_id,
            RecoveryCase.status == "closed",
            RecoveryCase.outcome.in_(sorted(rules.RECOVERED)),
            RecoveryCase.follow_up_answer_id.is_(None),
            RecoveryCase.closed_at <= at,
            (RecoveryCase.answer_id.is_(None)) | (RecoveryCase.answer_id != answer_id),
        )
        .values(follow_up_answer_id=answer_id, follow_up_recommend=recommend, follow_up_at=at)
    )


# --- opening by hand ------------------------------------------------------------------------------


@dataclass(frozen=True)
class RecoveryCaseInput:
    id: str
    member_ref: str
    contact_id: str | None
    team: str | None
    note: str | None
    due_at: datetime | None


def open_case(session: Session, *, case: RecoveryCaseInput, by: str, now: datetime) -> Outcome:
    """Open a case by hand (a complaint heard on the phone), once per ``id``; assigned to the team
    of ``contact_id`` when one is given, else to ``team``."""
    data = asdict(case)
    data["due_at"] = iso_z(as_utc(case.due_at)) if case.due_at else None
    return run_idempotent(
        session,
        scope="recovery_case",
        key=case.id,
        fingerprint=fingerprint(data),
        now=now,
        produce=lambda: _open_case(session, case=case, by=by, now=now),
    )


def _open_case(session: Session, *, case: RecoveryCaseInput, by: str, now: datetime) -> Outcome:
    member = customers.get_member_for_body(session, ref=case.member_ref, field="member_ref")
    customers.ensure_not_erased(member, field="member_ref")
    team, agent, channel = case.team, None, None
    if case.contact_id is not None:
        contact = session.get(Contact, case.contact_id)
        if contact is None:
            raise UnknownContactInBody(f"no contact {case.contact_id!r}", field="contact_id")
        if contact.member_id != member.id:
            raise ContactOfAnotherMember("the contact is another member's", field="contact_id")
        team, agent, channel = contact.team, contact.agent, contact.channel
    if not team:
        raise InvalidInput("team is required when no contact_id is given", field="team")
    due = as_utc(case.due_at) if case.due_at else rules.due_at(now, config.current().recovery_due_hours)
    if due <= now:
        raise InvalidInput("due_at must be in the future", field="due_at")
    if session.get(RecoveryCase, case.id) is not None or case.id.startswith("rcv_"):
        raise Conflict(f"the id {case.id!r} is taken", field="id")
    row = RecoveryCase(
        id=case.id,
        answer_id=None,
        member_id=member.id,
        member_ref=member.ref,
        contact_id=case.contact_id,
        team=team,
        agent=agent,
        channel=channel,
        country=member.country,
        cause="manual",
        opened_at=now,
        opened_by=by,
        due_at=due,
        status="open",
        note=case.note,
    )
    session.add(row)
    session.flush()
    body = _body(row, now)
    outbox.emit(session, type="recovery.opened", payload=body, now=now)
    return Outcome(201, body)


# --- closing --------------------------------------------------------------------------------------


def close_case(
    session: Session, *, case_id: str, outcome: str, note: str | None, by: str, now: datetime
) -> dict[str, Any]:
    """Close a case with an outcome. Closing again with the same outcome changes nothing (a retried
    request); another outcome on a closed case is a conflict."""
    if outcome not in rules.OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(rules.OUTCOMES)}", field="outcome")
    row = session.get(RecoveryCase, case_id, with_for_update=True)
    if row is None:
        raise UnknownRecoveryCase(f"no recovery case {case_id!r}", field="id")
    if row.status == "closed":
        if row.outcome != outcome:
            raise RecoveryCaseClosed(f"the case was closed as {row.outcome!r}", field="outcome")
        return _body(row, now)
    if note:
        # New text about the member: never about an erased one (the erasure blanked the note).
        member = customers.find_member_by_id(session, member_id=row.member_id)
        if member is not None:
            customers.ensure_not_erased(member, field="id")
    row.status, row.outcome, row.closed_by, row.closed_at = "closed", outcome, by, now
    if note:
        row.note = note
    session.flush()
    body = _body(row, now)
    outbox.emit(session, type="recovery.closed", payload=body, now=now)
    return body


# --- reading --------------------------------------------------------------------------------------


def get_case(session: Session, *, case_id: str, now: datetime) -> dict[str, Any]:
    row = session.get(RecoveryCase, case_id)
    if row is None:
        raise UnknownRecoveryCase(f"no recovery case {case_id!r}", field="id")
    return _body(row, now)


def _filtered(statement: Any, state: str | None, now: datetime) -> Any:
    if state == "closed":
        return statement.where(RecoveryCase.status == "closed")
    if state == "open":
        return statement.where(RecoveryCase.status == "open")
    if state == "due":
        return statement.where(RecoveryCase.status == "open", RecoveryCase.due_at > now)
    if state == "breached":
        return statement.where(RecoveryCase.status == "open", RecoveryCase.due_at <= now)
    if state is not None:
        raise InvalidInput(f"state must be one of {', '.join(rules.STATES)}", field="state")
    return statement


def list_cases(
    session: Session,
    *,
    now: datetime,
    state: str | None = None,
    team: str | None = None,
    member_ref: str | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Cases in a state (``open`` = due or breached), soonest due first."""
    statement = _filtered(select(RecoveryCase), state, now)
    if team:
        statement = statement.where(RecoveryCase.team == team)
    if member_ref:
        member = customers.get_member(session, ref=member_ref)
        statement = statement.where(RecoveryCase.member_id == member.id)
    rows = session.scalars(statement.order_by(RecoveryCase.due_at, RecoveryCase.id).limit(limit))
    return [_body(row, now) for row in rows]


_MEMBER_CASES = (
    select(RecoveryCase.__table__)
    .where(RecoveryCase.member_id == bindparam("p_member"))
    .order_by(RecoveryCase.opened_at.desc(), RecoveryCase.id)
    .limit(bindparam("p_limit"))
)
"""Built once (the 360 asks it of every member it shows)."""


def list_member_cases(
    session: Session, *, member_id: int, now: datetime, limit: int = 20
) -> list[dict[str, Any]]:
    """A member's recovery cases, newest first (the 360)."""
    return reads.run(session, member_cases(member_id, now=now, limit=limit))


def member_cases(member_id: int, *, now: datetime, limit: int) -> Read[list[dict[str, Any]]]:
    """A member's recovery cases, newest first, as a read a view sends with others."""
    return Read(
        _MEMBER_CASES,
        {"p_member": member_id, "p_limit": limit},
        lambda rows: [_body(row, now) for row in rows],
    )


def counts(session: Session, *, now: datetime, team: str | None = None) -> dict[str, int]:
    """Open, due and breached cases now (the supervisor's dashboard)."""
    statement = select(
        func.count(),
        func.coalesce(func.sum(case((RecoveryCase.due_at <= now, 1), else_=0)), 0),
    ).where(RecoveryCase.status == "open")
    if team:
        statement = statement.where(RecoveryCase.team == team)
    total, breached = session.execute(statement).one()
    return {"open": int(total), "due": int(total) - int(breached), "breached": int(breached)}


def report(session: Session, *, month: str) -> dict[str, Any]:
    """Recovery rate and next-answer promoters of the cases opened in ``month``, by team too."""
    start, end = month_bounds(check_month(month))
    rows = session.execute(
        select(
            RecoveryCase.team,
            RecoveryCase.status,
            RecoveryCase.outcome,
            RecoveryCase.follow_up_recommend,
        ).where(RecoveryCase.opened_at >= start, RecoveryCase.opened_at < end)
    ).all()
    by_team: dict[str, list[rules.ReportCase]] = {}
    every: list[rules.ReportCase] = []
    for team, status, outcome, follow_up in rows:
        case = rules.ReportCase(closed=status == "closed", outcome=outcome, follow_up_recommend=follow_up)
        every.append(case)
        by_team.setdefault(team, []).append(case)
    return {
        "month": month,
        **rules.report(every),
        "teams": [{"team": team, **rules.report(cases)} for team, cases in sorted(by_team.items())],
    }
