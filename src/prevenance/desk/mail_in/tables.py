"""Tables of the desk's e-mail: every message in and out, one row each, and the files attached.

Inbound rows are unique on the hash of their Message-ID (``message_key``): the same message delivered
twice (an MTA retrying after a lost answer, a message sent to two of our addresses) is one row, so
one contact. Outbound rows (acknowledgements, agents' answers) are the mail queue the relay sends,
with the retry columns of ``common.mail``; ``once_key`` makes the acknowledgement of a thread unique.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from prevenance.common.base import Base, MailRetryColumns, UtcDateTime

BigId = BigInteger().with_variant(Integer, "sqlite")


class MailMessage(Base, MailRetryColumns):
    """One e-mail, received or sent. ``state``: inbound ``triage`` (unknown sender, waiting for an
    agent), ``filed`` (in a member's case), ``discarded`` (by an agent, with a reason), ``ignored``
    (automated: auto-reply, bounce, list); outbound ``pending``, ``sent`` or ``failed``."""

    __tablename__ = "desk_mail_messages"
    __table_args__ = (
        CheckConstraint("direction IN ('inbound', 'outbound')", name="direction"),
        CheckConstraint(
            "state IN ('triage', 'filed', 'discarded', 'ignored', 'pending', 'sent', 'failed')",
            name="state",
        ),
        CheckConstraint("kind IN ('mail', 'automated', 'acknowledgement', 'reply')", name="kind"),
        Index("ix_desk_mail_messages_state_received", "state", "received_at"),
        Index("ix_desk_mail_messages_case_received", "case_id", "received_at"),
        Index("ix_desk_mail_messages_member", "member_id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    message_key: Mapped[str] = mapped_column(String(64), unique=True)
    message_id: Mapped[str] = mapped_column(String(998))
    once_key: Mapped[str | None] = mapped_column(String(240), unique=True, nullable=True)
    direction: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(20))
    state: Mapped[str] = mapped_column(String(20))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    case_id: Mapped[str | None] = mapped_column(ForeignKey("desk_cases.id"), nullable=True)
    contact_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sender: Mapped[str] = mapped_column(String(320))
    sender_name: Mapped[str] = mapped_column(String(200))
    recipients: Mapped[str] = mapped_column(String(1000))
    subject: Mapped[str] = mapped_column(String(500))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str | None] = mapped_column(Text, nullable=True)
    in_reply_to: Mapped[str | None] = mapped_column(String(998), nullable=True)
    thread_references: Mapped[str] = mapped_column(Text)  # space-separated Message-IDs
    language: Mapped[str | None] = mapped_column(String(2), nullable=True)
    size_bytes: Mapped[int] = mapped_column(Integer)
    automated: Mapped[str | None] = mapped_column(String(40), nullable=True)  # why it is ignored
    suggested_reason: Mapped[str | None] = mapped_column(String(80), nullable=True)
    suggestion_words: Mapped[str | None] = mapped_column(String(200), nullable=True)
    discard_reason: Mapped[str | None] = mapped_column(String(500), nullable=True)
    handled_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    handled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    received_at: Mapped[datetime] = mapped_column(UtcDateTime())  # inbound: received; outbound: queued
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class MailAttachment(Base):
    """A file attached to an inbound message; ``content`` is None when it was over the size cap
    (listed, so the agent knows to ask for it another way)."""

    __tablename__ = "desk_mail_attachments"
    __table_args__ = (Index("ix_desk_mail_attachments_message", "message_pk", "position"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    message_pk: Mapped[str] = mapped_column(ForeignKey("desk_mail_messages.id"))
    # Set when the message is filed under a member: an erasure deletes the member's files.
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True, index=True)
    position: Mapped[int] = mapped_column(Integer)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(120))
    size_bytes: Mapped[int] = mapped_column(Integer)
    kept: Mapped[bool] = mapped_column(Boolean)
    content: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
