"""Call-back booking: a member asks to be called back; an agent completes it once."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import as_utc, fingerprint, iso_z
from prevenance.common.problems import InvalidInput
from prevenance.customers import service as customers
from prevenance.desk import config
from prevenance.desk.errors import (
    CallbackAlreadyCompleted,
    ContactOfAnotherMember,
    UnknownCallback,
    UnknownContactInBody,
    UnknownReason,
)
from prevenance.desk.tables import (
    Callback,
    Contact,
)


@dataclass(frozen=True)
class CallbackInput:
    id: str
    member_ref: str
    reason: str
    scheduled_for: datetime
    phone: str


def _callback_body(row: Callback) -> dict[str, Any]:
    return {
        "id": row.id,
        "member_ref": row.member_ref,
        "reason": row.reason,
        "phone": row.phone,
        "status": row.status,
        "scheduled_for": iso_z(row.scheduled_for),
        "booked_by": row.booked_by,
        "booked_at": iso_z(row.booked_at),
        "completed_at": iso_z(row.completed_at),
        "contact_id": row.contact_id,
    }


def book_callback(session: Session, *, callback: CallbackInput, by: str, now: datetime) -> Outcome:
    """Book a call-back for a member, once per id; it must be scheduled in the future."""
    data = asdict(callback)
    data["scheduled_for"] = iso_z(as_utc(callback.scheduled_for))
    return run_idempotent(
        session,
        scope="callback",
        key=callback.id,
        fingerprint=fingerprint(data),
        now=now,
        produce=lambda: _book_callback(session, data=callback, by=by, now=now),
    )


def _book_callback(session: Session, *, data: CallbackInput, by: str, now: datetime) -> Outcome:
    if data.reason not in config.current().reasons:
        raise UnknownReason(
            f"unknown contact reason {data.reason!r}; see GET /v1/contact-reasons", field="reason"
        )
    scheduled_for = as_utc(data.scheduled_for)
    if scheduled_for <= now:
        raise InvalidInput("scheduled_for must be in the future", field="scheduled_for")
    member = customers.get_member(session, ref=data.member_ref)
    customers.ensure_not_erased(member)
    row = Callback(
        id=data.id,
        member_id=member.id,
        member_ref=member.ref,
        reason=data.reason,
        phone=data.phone.strip(),
        status="scheduled",
        scheduled_for=scheduled_for,
        booked_by=by,
        booked_at=now,
    )
    session.add(row)
    session.flush()
    body = _callback_body(row)
    outbox.emit(session, type="callback.booked", payload=body, now=now)
    return Outcome(201, body)


def list_callbacks(
    session: Session, *, due_before: datetime | None, status: str, limit: int = 500
) -> list[dict[str, Any]]:
    """Call-backs in a status, soonest first, optionally only those due before a time."""
    statement = select(Callback).where(Callback.status == status)
    if due_before is not None:
        statement = statement.where(Callback.scheduled_for < as_utc(due_before))
    rows = session.scalars(statement.order_by(Callback.scheduled_for, Callback.id).limit(limit))
    return [_callback_body(row) for row in rows]


def get_callback(session: Session, *, callback_id: str) -> dict[str, Any]:
    row = session.get(Callback, callback_id)
    if row is None:
        raise UnknownCallback(f"no call-back {callback_id!r}", field="id")
    return _callback_body(row)


def complete_callback(
    session: Session, *, callback_id: str, contact_id: str, now: datetime
) -> dict[str, Any]:
    """Mark a call-back made by the member's contact ``contact_id``; the same call again changes
    nothing, another contact on a completed call-back is a conflict."""
    row = session.get(Callback, callback_id, with_for_update=True)
    if row is None:
        raise UnknownCallback(f"no call-back {callback_id!r}", field="id")
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise UnknownContactInBody(f"no contact {contact_id!r}", field="contact_id")
    if contact.member_id != row.member_id:
        raise ContactOfAnotherMember("the contact is another member's", field="contact_id")
    if row.status == "completed":
        if row.contact_id != contact_id:
            raise CallbackAlreadyCompleted(
                f"the call-back was completed by contact {row.contact_id!r}", field="contact_id"
            )
        return _callback_body(row)
    row.status, row.contact_id, row.completed_at = "completed", contact_id, now
    session.flush()
    body = _callback_body(row)
    outbox.emit(session, type="callback.completed", payload=body, now=now)
    return body
