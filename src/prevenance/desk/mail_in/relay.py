"""The relay of the mail the desk owes (acknowledgements and agents' answers): sent through
``common.mail.deliver`` with their threading headers, each written in the communications log once
sent, so it shows in the 360."""

from __future__ import annotations

from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import formataddr

from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from prevenance.common import mail
from prevenance.desk import communications
from prevenance.desk.mail_in.tables import MailMessage

RELAY_SOURCE = "mail-relay"


class _OutgoingQueue:
    """Outbound ``desk_mail_messages`` as a mail queue for ``common.mail.deliver``."""

    kind = "desk_mail"

    def next_due(self, session: Session, now: datetime) -> MailMessage | None:
        return mail.next_due_row(
            session,
            MailMessage,
            now,
            order_by=(MailMessage.received_at, MailMessage.id),
            status="state",
            where=(MailMessage.direction == "outbound",),
        )

    def compose(self, session: Session, row: MailMessage, now: datetime) -> EmailMessage:
        """The message with its threading headers: the reader's client files it under the thread."""
        message = mail.compose(
            sender=formataddr((row.sender_name, row.sender)),
            to=row.recipients,
            subject=row.subject,
            message_id=row.message_id,
            date=now,
            language=row.language or "fr",
            body=row.text_body,
        )
        if row.in_reply_to:
            message["In-Reply-To"] = row.in_reply_to
        if row.thread_references:
            message["References"] = row.thread_references
        if row.kind == "acknowledgement":
            message["Auto-Submitted"] = "auto-replied"  # RFC 3834: other robots do not answer it
        return message

    def mark_sent(self, session: Session, row: MailMessage, now: datetime) -> bool:
        marked = mail.mark_rows_sent(
            session, MailMessage, now, where=(MailMessage.id == row.id,), status="state"
        )
        if marked != 1 or row.member_id is None:
            return marked == 1
        communications.log_sent_mail(
            session,
            id=mail.stable_key("mai", row.id),
            member_id=row.member_id,
            kind="service",
            template=f"mail_in.{row.kind}",
            language=row.language or "fr",
            subject=row.subject,
            summary=row.text_body,
            sent_at=now,
            source=RELAY_SOURCE,
            now=now,
        )
        return True

    def mark_unsent(self, session: Session, row: MailMessage, unsent: mail.Unsent) -> None:
        mail.record_unsent(session, MailMessage, row.id, unsent, status="state")


def send_pending(engine: Engine, *, smtp_url: str, now: datetime, limit: int = 1000) -> int:
    """Send the acknowledgements and answers that are due (one transaction each); returns how many
    were sent. Retries and permanent failures follow ``common.mail``."""
    return mail.deliver(engine, _OutgoingQueue(), smtp_url=smtp_url, now=now, limit=limit).sent


def count_pending(session: Session, *, now: datetime | None = None) -> int:
    """Outbound messages still waiting for the relay."""
    statement = select(func.count()).where(
        MailMessage.direction == "outbound", MailMessage.state == "pending"
    )
    if now is not None:
        statement = statement.where(
            or_(MailMessage.next_attempt_at.is_(None), MailMessage.next_attempt_at <= now + timedelta(0))
        )
    return session.scalar(statement) or 0
