"""The communications log (what was sent to a member, by whom) and the member's contact
preference, which every marketing sender asks first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, bindparam, insert, select
from sqlalchemy.orm import Session

from prevenance.common import mail, outbox, reads
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import as_utc, fingerprint_of, iso_z
from prevenance.common.problems import IdempotencyConflict, InvalidInput
from prevenance.common.reads import Read
from prevenance.customers import service as customers
from prevenance.desk import rules
from prevenance.desk.tables import (
    Communication,
    ContactPreference,
    GoodwillMail,
    IncidentNotice,
)

if TYPE_CHECKING:
    from prevenance.customers.tables import Member


@dataclass(frozen=True)
class CommunicationInput:
    id: str
    member_ref: str
    kind: str
    template: str
    channel: str
    language: str
    sent_at: datetime
    subject: str
    summary: str

    def fingerprint(self) -> str:
        return fingerprint_of(self)


def _communication_body(row: Communication, member_ref: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "member_ref": member_ref,
        "kind": row.kind,
        "template": row.template,
        "channel": row.channel,
        "language": row.language,
        "sent_at": iso_z(row.sent_at),
        "subject": row.subject,
        "summary": row.summary,
        "source": row.source,
    }


def log_communication(
    session: Session, *, communication: CommunicationInput, source: str, now: datetime
) -> Outcome:
    """Record something the brand sent a member, once per id, so the front line sees it."""
    return run_idempotent(
        session,
        scope="communication",
        key=communication.id,
        fingerprint=communication.fingerprint(),
        now=now,
        produce=lambda: _log_communication(session, data=communication, source=source, now=now),
    )


_COMMUNICATIONS: Table = Communication.__table__  # type: ignore[assignment]
_INSERT_COMMUNICATION = insert(_COMMUNICATIONS)  # Core: cheaper than the ORM-enabled insert


def record_communication(
    session: Session, *, member_id: int, communication: CommunicationInput, source: str, now: datetime
) -> None:
    """Record a message the platform itself sends, inside the use case that sends it.

    For callers that hold the member's id and whose own write is already idempotent (an offer made
    during an earn is replayed with the earn): one ``INSERT``, no member lookup and no key of its
    own. The id is deterministic, so the row can never be written twice.
    """
    log_sent_mail(
        session,
        id=communication.id,
        member_id=member_id,
        kind=communication.kind,
        template=communication.template,
        language=communication.language,
        subject=communication.subject,
        summary=communication.summary,
        sent_at=communication.sent_at,
        source=source,
        now=now,
        channel=communication.channel,
    )


def log_sent_mail(
    session: Session,
    *,
    id: str,
    member_id: int,
    kind: str,
    template: str,
    language: str,
    subject: str,
    summary: str,
    sent_at: datetime,
    source: str,
    now: datetime,
    channel: str = "email",
) -> None:
    """Write a message a relay has just sent in the member's communications log (the 360): one
    ``INSERT`` with a deterministic id, in the transaction that marks the message sent, so it is
    logged once however often the relay runs."""
    session.execute(
        _INSERT_COMMUNICATION,
        {
            "id": id,
            "member_id": member_id,
            "kind": kind,
            "template": template,
            "channel": channel,
            "language": language,
            "sent_at": as_utc(sent_at),
            "subject": subject[:300],
            "summary": summary,
            "source": source,
            "created_at": now,
        },
    )


def _log_communication(session: Session, *, data: CommunicationInput, source: str, now: datetime) -> Outcome:
    member = customers.get_member_for_body(session, ref=data.member_ref, field="member_ref")
    customers.ensure_not_erased(member, field="member_ref")
    if session.get(Communication, data.id) is not None:  # written by the platform itself, keyless
        raise IdempotencyConflict(f"communication {data.id!r} is already recorded", field="id")
    row = Communication(
        id=data.id,
        member_id=member.id,
        kind=data.kind,
        template=data.template,
        channel=data.channel,
        language=data.language,
        sent_at=as_utc(data.sent_at),
        subject=data.subject,
        summary=data.summary,
        source=source,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return Outcome(201, _communication_body(row, member.ref))


_MEMBER_COMMUNICATIONS = (
    select(Communication.__table__)
    .where(Communication.member_id == bindparam("p_member"))
    .order_by(Communication.sent_at.desc(), Communication.id.desc())
    .limit(bindparam("p_limit"))
)
"""Built once (the 360 asks it of every member it shows)."""


def list_member_communications(session: Session, *, member_ref: str, limit: int = 50) -> dict[str, Any]:
    """What was sent to a member, newest first."""
    member = customers.get_member(session, ref=member_ref)
    return {"member_ref": member.ref, "items": reads.run(session, member_communications(member, limit=limit))}


def member_communications(member: Member, *, limit: int) -> Read[list[dict[str, Any]]]:
    """What was sent to a member, newest first, as a read a view sends with others."""
    return Read(
        _MEMBER_COMMUNICATIONS,
        {"p_member": member.id, "p_limit": limit},
        lambda rows: [_communication_body(row, member.ref) for row in rows],
    )


def _preference_body(member: Member, row: ContactPreference | None) -> dict[str, Any]:
    mode = row.mode if row else None
    return {
        "member_ref": member.ref,
        "mode": mode,
        "preferred_channel": row.preferred_channel if row else None,
        "may_send_marketing": rules.may_send_marketing(mode),
        "updated_at": iso_z(row.updated_at) if row else None,
        "updated_by": row.updated_by if row else None,
    }


def set_contact_preference(
    session: Session, *, member_ref: str, mode: str, preferred_channel: str | None, by: str, now: datetime
) -> dict[str, Any]:
    """Set how a member wants to be approached (PUT: idempotent by nature)."""
    if mode not in rules.PREFERENCE_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(rules.PREFERENCE_MODES)}", field="mode")
    member = customers.get_member(session, ref=member_ref)
    customers.ensure_not_erased(member)
    row = session.get(ContactPreference, member.id, with_for_update=True)
    changed = row is None or (row.mode, row.preferred_channel) != (mode, preferred_channel)
    if row is None:
        row = ContactPreference(member_id=member.id)
        session.add(row)
    if changed:
        row.mode, row.preferred_channel, row.updated_at, row.updated_by = mode, preferred_channel, now, by
        session.flush()
        outbox.emit(
            session,
            type="contact_preference.changed",
            payload={"member_ref": member.ref, "mode": mode, "preferred_channel": preferred_channel},
            now=now,
        )
    return _preference_body(member, row)


def get_contact_preference(session: Session, *, member_ref: str) -> dict[str, Any]:
    """How a member wants to be approached (``mode`` None when never stated)."""
    member = customers.get_member(session, ref=member_ref)
    return reads.run(session, contact_preference(member))


_PREFERENCE = select(ContactPreference.__table__).where(ContactPreference.member_id == bindparam("p_member"))


def contact_preference(member: Member) -> Read[dict[str, Any]]:
    """How a member wants to be approached, as a read a view sends with others."""
    return Read(
        _PREFERENCE, {"p_member": member.id}, lambda rows: _preference_body(member, rows[0] if rows else None)
    )


_PREFERENCE_MODE = select(ContactPreference.mode).where(ContactPreference.member_id == bindparam("p_member"))


def may_send_marketing(session: Session, *, member_id: int) -> bool:
    """Whether outbound marketing may reach this member (never one who asked to be left alone).
    Asked on the decision of every earning payment while offers are live: one prepared query."""
    mode = session.execute(_PREFERENCE_MODE, {"p_member": member_id}).scalar_one_or_none()
    return rules.may_send_marketing(mode)


MemberMail = GoodwillMail | IncidentNotice


class MemberMailQueue:
    """A table of mails written for one member each (subject and body in the language they were
    queued in) as a queue for ``common.mail.deliver``: the oldest due row first, sent to the
    member's address, and logged in the member's communications when marked sent.

    A queue names its table, sender, ``source`` and metric ``kind``, and says how a row is named
    (``message_id``) and logged (``logged_as``)."""

    kind: str
    table: type[GoodwillMail] | type[IncidentNotice]
    sender: str
    source: str

    def message_id(self, row_id: str) -> str:
        raise NotImplementedError

    def logged_as(self, row: Any) -> tuple[str, str, str]:
        """The row's entry in the communications log: ``(id, kind, template)``."""
        raise NotImplementedError

    def next_due(self, session: Session, now: datetime) -> MemberMail | None:
        """The oldest pending row whose attempt is due, locked (``SKIP LOCKED``: two relays never
        take the same; on SQLite the write transaction serialises them)."""
        table = self.table
        due: MemberMail | None = mail.next_due_row(session, table, now, order_by=(table.created_at, table.id))
        return due

    def compose(self, session: Session, row: MemberMail, now: datetime) -> EmailMessage:
        """The mail to its member's address, in the language it was queued in."""
        member = customers.find_member_by_id(session, member_id=row.member_id)
        if member is None:  # pragma: no cover - members are never deleted (erasure keeps the row)
            raise mail.Unsendable("the member is gone")
        return mail.compose(
            sender=self.sender,
            to=member.email,
            subject=row.subject,
            message_id=self.message_id(row.id),
            date=now,
            language=row.language,
            body=row.body,
        )

    def mark_sent(self, session: Session, row: MemberMail, now: datetime) -> bool:
        """Pending → sent, and the communication logged, in the transaction holding the lock."""
        marked = mail.mark_rows_sent(session, self.table, now, where=(self.table.id == row.id,))
        if marked != 1:
            return False
        log_id, kind, template = self.logged_as(row)
        log_sent_mail(
            session,
            id=log_id,
            member_id=row.member_id,
            kind=kind,
            template=template,
            language=row.language,
            subject=row.subject,
            summary=row.body,
            sent_at=now,
            source=self.source,
            now=now,
        )
        return True

    def mark_unsent(self, session: Session, row: MemberMail, unsent: mail.Unsent) -> None:
        """Record a refused attempt: retry later, or failed with the relay's answer."""
        mail.record_unsent(session, self.table, row.id, unsent)
