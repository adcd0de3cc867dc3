"""Tables of the member chat. A message's ``seq`` is its rank in its conversation (unique), so a
client resuming after ``seq`` n gets each later message once, across reloads and restarts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from prevenance.common.base import Base, UtcDateTime


class ChatConversation(Base):
    """One chat of one member, opened at one moment, waiting in its team's queue until taken."""

    __tablename__ = "chat_conversations"
    __table_args__ = (
        CheckConstraint("status IN ('waiting', 'active', 'closed')", name="status"),
        CheckConstraint("last_seq >= 0", name="last_seq"),
        Index("ix_chat_conversations_team_status", "team", "status"),
        Index("ix_chat_conversations_member", "member_id", "opened_at"),
        Index("ix_chat_conversations_opened", "opened_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    member_ref: Mapped[str] = mapped_column(String(64))
    language: Mapped[str] = mapped_column(String(2))
    moment_kind: Mapped[str] = mapped_column(String(40))
    moment_ref: Mapped[str] = mapped_column(String(200))
    team: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(String(80))
    status: Mapped[str] = mapped_column(String(20))
    agent: Mapped[str | None] = mapped_column(String(120), nullable=True)
    last_seq: Mapped[int] = mapped_column(Integer)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    taken_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    contact_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class ChatMessage(Base):
    """One message, numbered in its conversation; ``client_id`` makes a resent message land once."""

    __tablename__ = "chat_messages"
    __table_args__ = (
        UniqueConstraint("conversation_id", "seq", name="uq_chat_messages_conversation_seq"),
        UniqueConstraint("conversation_id", "client_id", name="uq_chat_messages_conversation_client"),
        CheckConstraint("author_role IN ('member', 'agent')", name="author_role"),
        CheckConstraint("seq >= 1", name="seq"),
    )

    # "<conversation id>:<client id>", the message's idempotency key.
    id: Mapped[str] = mapped_column(String(420), primary_key=True)
    conversation_id: Mapped[str] = mapped_column(ForeignKey("chat_conversations.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    seq: Mapped[int] = mapped_column(Integer)
    client_id: Mapped[str] = mapped_column(String(200))
    author_role: Mapped[str] = mapped_column(String(10))
    author: Mapped[str] = mapped_column(String(120))  # the agent's name, or "member"
    text: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ChatAgent(Base):
    """A chat agent (an API key's or console user's name) and the teams whose queues they serve."""

    __tablename__ = "chat_agents"

    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    teams: Mapped[list[Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
