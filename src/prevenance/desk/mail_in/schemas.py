"""Wire models of the desk's e-mail."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from prevenance.desk.mail_in.service import REPLY_ID_LENGTH
from prevenance.desk.schemas import MemberRef, Outcome

State = Literal["triage", "filed", "discarded", "ignored", "pending", "sent", "failed"]
ReasonCode = Annotated[str, Field(min_length=3, max_length=80, examples=["card.lost_stolen"])]
# An answer's id is the key of its message row: as long as that column holds (a longer one was a 500
# on PostgreSQL, which refuses a text longer than its column).
ReplyId = Annotated[str, Field(min_length=1, max_length=REPLY_ID_LENGTH)]


class MailAttachmentRead(BaseModel):
    position: int
    filename: str
    content_type: str
    size_bytes: int
    kept: bool


class MailMessageSummary(BaseModel):
    id: str
    message_id: str
    direction: Literal["inbound", "outbound"]
    kind: Literal["mail", "automated", "acknowledgement", "reply"]
    state: State
    member_ref: str | None
    case_id: str | None
    contact_id: str | None
    sender: str
    sender_name: str
    recipients: str
    subject: str
    in_reply_to: str | None
    references: list[str]
    received_at: datetime
    sent_at: datetime | None
    automated: str | None
    suggested_reason: str | None
    suggestion_words: list[str]
    discard_reason: str | None
    handled_by: str | None
    size_bytes: int
    preview: str


class MailMessageRead(MailMessageSummary):
    """One message; ``html`` is the sanitised HTML part (no script, style or image), ``text`` the
    plain text (preferred)."""

    text: str
    html: str | None
    attachments: list[MailAttachmentRead]


class MailMessagesPage(BaseModel):
    state: State | None
    items: list[MailMessageSummary]


class MailLink(BaseModel):
    """Who wrote the message; ``reason`` overrides the suggested one."""

    model_config = ConfigDict(extra="forbid")

    member_ref: MemberRef
    reason: ReasonCode | None = None


class MailDiscard(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, Field(min_length=1, max_length=500)]


class CaseReplyCreate(BaseModel):
    """An answer to the member of a case, sent by e-mail; ``id`` is the idempotency key. Logged as a
    contact (channel email, outbound) with ``outcome`` (``resolved`` resolves the case)."""

    model_config = ConfigDict(extra="forbid")

    id: ReplyId
    body: Annotated[str, Field(min_length=1, max_length=20_000)]
    outcome: Outcome = "pending"
    reason: ReasonCode | None = None
