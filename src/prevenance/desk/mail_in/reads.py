"""Reading the mail the desk received and sent: the triage queue, one message with its attachments
listed, a case's thread, an attachment's bytes. HTML is only ever given back sanitised."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from prevenance.common.ids import iso_z
from prevenance.common.problems import InvalidInput
from prevenance.customers import service as customers
from prevenance.desk.errors import UnknownCase
from prevenance.desk.mail_in import rules
from prevenance.desk.mail_in.errors import (
    UnknownAttachment,
    UnknownMailMessage,
)
from prevenance.desk.mail_in.tables import MailAttachment, MailMessage
from prevenance.desk.tables import Case

STATES = ("triage", "filed", "discarded", "ignored", "pending", "sent", "failed")


def _attachments(session: Session, row: MailMessage) -> list[dict[str, Any]]:
    rows = session.execute(
        select(
            MailAttachment.position,
            MailAttachment.filename,
            MailAttachment.content_type,
            MailAttachment.size_bytes,
            MailAttachment.kept,
        )
        .where(MailAttachment.message_pk == row.id)
        .order_by(MailAttachment.position)
    )
    return [
        {"position": p, "filename": f, "content_type": c, "size_bytes": s, "kept": bool(k)}
        for p, f, c, s, k in rows
    ]


def message_body(session: Session, row: MailMessage, *, full: bool = True) -> dict[str, Any]:
    member = customers.find_member_by_id(session, member_id=row.member_id) if row.member_id else None
    body: dict[str, Any] = {
        "id": row.id,
        "message_id": row.message_id,
        "direction": row.direction,
        "kind": row.kind,
        "state": row.state,
        "member_ref": member.ref if member else None,
        "case_id": row.case_id,
        "contact_id": row.contact_id,
        "sender": row.sender,
        "sender_name": row.sender_name,
        "recipients": row.recipients,
        "subject": row.subject,
        "in_reply_to": row.in_reply_to,
        "references": row.thread_references.split(),
        "received_at": iso_z(row.received_at),
        "sent_at": iso_z(row.sent_at),
        "automated": row.automated,
        "suggested_reason": row.suggested_reason,
        "suggestion_words": row.suggestion_words.split(", ") if row.suggestion_words else [],
        "discard_reason": row.discard_reason,
        "handled_by": row.handled_by,
        "size_bytes": row.size_bytes,
        "preview": " ".join(row.text_body.split())[:160],
    }
    if full:
        body["text"] = row.text_body
        body["html"] = rules.sanitise_html(row.html_body) if row.html_body else None
        body["attachments"] = _attachments(session, row) if row.direction == "inbound" else []
    return body


def list_messages(session: Session, *, state: str | None, limit: int = 50) -> dict[str, Any]:
    """Messages newest first (``state=triage``: the triage queue), without their bodies."""
    if state is not None and state not in STATES:
        raise InvalidInput(f"state must be one of {', '.join(STATES)}", field="state")
    statement = select(MailMessage)
    if state is not None:
        statement = statement.where(MailMessage.state == state)
    rows = session.scalars(
        statement.order_by(MailMessage.received_at.desc(), MailMessage.id.desc()).limit(limit)
    )
    items = [message_body(session, row, full=False) for row in rows]
    return {"state": state, "items": items}


def count_triage(session: Session) -> int:
    """Messages waiting for an agent in triage."""
    return session.scalar(select(func.count()).where(MailMessage.state == "triage")) or 0


def get_message(session: Session, *, message_id: str) -> dict[str, Any]:
    """One message with its text, its sanitised HTML and its attachments listed; 404 when unknown."""
    row = session.get(MailMessage, message_id)
    if row is None:
        raise UnknownMailMessage(f"no message {message_id!r}", field="id")
    return message_body(session, row)


def case_thread(session: Session, *, case_id: str) -> list[dict[str, Any]]:
    """A case's e-mails in and out, oldest first; 404 when the case is unknown."""
    if session.get(Case, case_id) is None:
        raise UnknownCase(f"no case {case_id!r}", field="id")
    rows = session.scalars(
        select(MailMessage)
        .where(MailMessage.case_id == case_id)
        .order_by(MailMessage.received_at, MailMessage.direction, MailMessage.id)
    )
    return [message_body(session, row) for row in rows]


def get_attachment(session: Session, *, message_id: str, position: int) -> tuple[str, str, bytes]:
    """An attachment's file name, type and bytes; 404 when unknown or not kept."""
    row = session.scalars(
        select(MailAttachment).where(
            MailAttachment.message_pk == message_id, MailAttachment.position == position
        )
    ).first()
    if row is None or row.content is None:
        raise UnknownAttachment(f"no kept attachment {position} on message {message_id!r}", field="position")
    return row.filename, row.content_type, row.content
