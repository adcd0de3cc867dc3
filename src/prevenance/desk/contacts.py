"""Contacts on every channel and the cases they open or join, with the reason taxonomy.
Each write runs inside the caller's unit of work, never commits, and claims its idempotency key
first (see ``common.idempotency``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, insert, select
from sqlalchemy.orm import Session

from prevenance.common import outbox, reads
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import as_utc, fingerprint_of, iso_z, new_id
from prevenance.common.problems import InvalidInput
from prevenance.common.reads import Read
from prevenance.customers import service as customers
from prevenance.desk import config, rules
from prevenance.desk.errors import (
    CaseOfAnotherMember,
    UnknownCase,
    UnknownCaseInBody,
    UnknownContact,
    UnknownReason,
)
from prevenance.desk.tables import (
    Case,
    Contact,
)

if TYPE_CHECKING:
    from prevenance.customers.tables import Member


def list_reasons() -> list[dict[str, str]]:
    """The configured two-level reason taxonomy, leaves only, with French and English labels."""
    return [asdict(reason) for reason in config.current().reasons.values()]


def reason_labels(code: str) -> tuple[str, str]:
    """A reason's French and English labels (its code when the taxonomy does not know it)."""
    reason = config.current().reasons.get(code)
    return (reason.label_fr, reason.label_en) if reason else (code, code)


@dataclass(frozen=True)
class ContactInput:
    """One interaction as the agent's desktop or a telephony system reports it."""

    id: str
    member_ref: str
    channel: str
    direction: str
    agent: str
    team: str
    reason: str
    started_at: datetime
    ended_at: datetime
    notes: str
    outcome: str
    case_id: str | None = None

    def fingerprint(self) -> str:
        return fingerprint_of(self)


_INSERT_CASE = insert(Case.__table__)  # type: ignore[arg-type]
_INSERT_CONTACT = insert(Contact.__table__)  # type: ignore[arg-type]


def _contact_body(contact: Contact | SimpleNamespace, member_ref: str) -> dict[str, Any]:
    label_fr, label_en = reason_labels(contact.reason)
    return {
        "id": contact.id,
        "member_ref": member_ref,
        "case_id": contact.case_id,
        "channel": contact.channel,
        "direction": contact.direction,
        "agent": contact.agent,
        "team": contact.team,
        "reason": contact.reason,
        "reason_label_fr": label_fr,
        "reason_label_en": label_en,
        "started_at": iso_z(contact.started_at),
        "ended_at": iso_z(contact.ended_at),
        "notes": contact.notes,
        "outcome": contact.outcome,
    }


def _case_body(case: Case, member_ref: str, contacts: list[Contact] | None = None) -> dict[str, Any]:
    return {
        "id": case.id,
        "member_ref": member_ref,
        "reason": case.reason,
        "status": case.status,
        "owner": case.owner,
        "country": case.country,
        "contact_count": case.contact_count,
        "first_contact_id": case.first_contact_id,
        "opened_at": iso_z(case.opened_at),
        "resolved_at": iso_z(case.resolved_at),
        "contacts": [_contact_body(c, member_ref) for c in contacts or []],
    }


def log_contact(session: Session, *, contact: ContactInput, now: datetime) -> Outcome:
    """Log a contact and file it in its case (a new one unless ``case_id`` names one), once per id."""
    return run_idempotent(
        session,
        scope="contact",
        key=contact.id,
        fingerprint=contact.fingerprint(),
        now=now,
        produce=lambda: _log_contact(session, data=contact, now=now),
    )


def _log_contact(session: Session, *, data: ContactInput, now: datetime) -> Outcome:
    if data.reason not in config.current().reasons:
        raise UnknownReason(
            f"unknown contact reason {data.reason!r}; see GET /v1/contact-reasons", field="reason"
        )
    started, ended = as_utc(data.started_at), as_utc(data.ended_at)
    if ended < started:
        raise InvalidInput("ended_at must not be before started_at", field="ended_at")
    member = customers.get_member_summary_for_body(session, ref=data.member_ref, field="member_ref")
    customers.ensure_not_erased(member, field="member_ref")
    case_status = rules.case_status_after(data.outcome)
    resolved_at = ended if case_status == "resolved" else None
    if data.case_id is not None:
        # Locked: two contacts filed in one case at once must both count.
        case = session.get(Case, data.case_id, with_for_update=True)
        if case is None:
            raise UnknownCaseInBody(f"no case {data.case_id!r}", field="case_id")
        if case.member_id != member.id:
            raise CaseOfAnotherMember(f"case {case.id!r} is another member's", field="case_id")
        case.contact_count += 1
        case.updated_at = now
        case.status, case.resolved_at = case_status, resolved_at
        case_country, case_id = case.country, case.id
    else:
        # A new case is written as it stands after its first contact (one INSERT, no UPDATE).
        case_country, case_id = member.country, new_id("case")
        session.execute(
            _INSERT_CASE,
            {
                "id": case_id,
                "member_id": member.id,
                "reason": data.reason,
                "country": case_country,
                "status": case_status,
                "owner": data.agent,
                "contact_count": 1,
                "first_contact_id": data.id,
                "opened_at": started,
                "resolved_at": resolved_at,
                "updated_at": now,
            },
        )
    # Core inserts: the ORM's unit of work cost a quarter of the use case for two rows.
    contact = SimpleNamespace(
        id=data.id,
        member_id=member.id,
        case_id=case_id,
        channel=data.channel,
        direction=data.direction,
        agent=data.agent,
        team=data.team,
        reason=data.reason,
        started_at=started,
        ended_at=ended,
        notes=data.notes,
        outcome=data.outcome,
        created_at=now,
    )
    session.execute(_INSERT_CONTACT, vars(contact))
    body = _contact_body(contact, member.ref)
    outbox.emit(
        session,
        type="contact.closed",
        payload={**body, "case_status": case_status, "country": case_country, "language": member.language},
        now=now,
    )
    return Outcome(201, body)


def get_contact(session: Session, *, contact_id: str) -> dict[str, Any]:
    """One contact; 404 when unknown."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise UnknownContact(f"no contact {contact_id!r}", field="id")
    member = customers.find_member_by_id(session, member_id=contact.member_id)
    assert member is not None
    return _contact_body(contact, member.ref)


_MEMBER_CONTACTS = (
    select(Contact.__table__)
    .where(Contact.member_id == bindparam("p_member"))
    .order_by(Contact.started_at.desc(), Contact.id.desc())
    .limit(bindparam("p_limit"))
)
"""Built once: the 360 asks it of every member it shows (a statement built per call costs more to
build and key for the cache than the database takes to answer it)."""


def member_contacts(member: Member, *, limit: int) -> Read[list[dict[str, Any]]]:
    """A member's contacts, newest first, as a read a view sends with others (``common.reads``)."""
    return Read(
        _MEMBER_CONTACTS,
        {"p_member": member.id, "p_limit": limit},
        lambda rows: [_contact_body(row, member.ref) for row in rows],
    )


def list_member_contacts(session: Session, *, member_ref: str, limit: int = 50) -> dict[str, Any]:
    """A member's contacts, newest first."""
    member = customers.get_member(session, ref=member_ref)
    return {"member_ref": member.ref, "items": reads.run(session, member_contacts(member, limit=limit))}


def _case_contacts(session: Session, case_id: str) -> list[Contact]:
    return list(
        session.scalars(
            select(Contact).where(Contact.case_id == case_id).order_by(Contact.started_at, Contact.id)
        )
    )


def get_case(session: Session, *, case_id: str) -> dict[str, Any]:
    """A case with its contacts in order; 404 when unknown."""
    case = session.get(Case, case_id)
    if case is None:
        raise UnknownCase(f"no case {case_id!r}", field="id")
    member = customers.find_member_by_id(session, member_id=case.member_id)
    assert member is not None
    return _case_body(case, member.ref, _case_contacts(session, case.id))


def resolve_case(session: Session, *, case_id: str, owner: str | None, now: datetime) -> dict[str, Any]:
    """Resolve an open case without a new contact; resolving a resolved case changes nothing.

    A case resolved this way was not resolved at its first contact (that contact ended otherwise),
    so it never counts towards first-contact resolution.
    """
    case = session.get(Case, case_id, with_for_update=True)
    if case is None:
        raise UnknownCase(f"no case {case_id!r}", field="id")
    member = customers.find_member_by_id(session, member_id=case.member_id)
    assert member is not None
    if case.status != "resolved":
        case.status, case.resolved_at, case.updated_at = "resolved", now, now
        if owner:
            case.owner = owner
        session.flush()
        outbox.emit(
            session,
            type="case.resolved",
            payload={"id": case.id, "member_ref": member.ref, "owner": case.owner},
            now=now,
        )
    return _case_body(case, member.ref, _case_contacts(session, case.id))


_MEMBER_CASES = (
    select(Case.__table__)
    .where(Case.member_id == bindparam("p_member"))
    .order_by(Case.opened_at.desc(), Case.id.desc())
    .limit(bindparam("p_limit"))
)
_MEMBER_CASES_IN_STATUS = _MEMBER_CASES.where(Case.status == bindparam("p_status"))


def list_member_cases(
    session: Session, *, member_ref: str, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """A member's cases, newest first (without their contacts)."""
    member = customers.get_member(session, ref=member_ref)
    return reads.run(session, member_cases(member, status=status, limit=limit))


def member_cases(member: Member, *, status: str | None, limit: int) -> Read[list[dict[str, Any]]]:
    """A member's cases (in one status, if given), newest first, as a read a view sends with others."""
    params: dict[str, Any] = {"p_member": member.id, "p_limit": limit}
    if status is not None:
        params["p_status"] = status
    return Read(
        _MEMBER_CASES if status is None else _MEMBER_CASES_IN_STATUS,
        params,
        lambda rows: [_case_body(case, member.ref) for case in rows],
    )
