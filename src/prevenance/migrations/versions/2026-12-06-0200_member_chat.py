"""member chat: conversations opened at a moment, numbered messages, agents' teams

Revision ID: e7c4a9b2d1f0
Revises: e7a1c3d5f9b2
Create Date: 2026-12-06 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from prevenance.common.base import UtcDateTime

revision: str = "e7c4a9b2d1f0"
down_revision: str | None = "e7a1c3d5f9b2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_conversations",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_ref", sa.String(length=64), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("moment_kind", sa.String(length=40), nullable=False),
        sa.Column("moment_ref", sa.String(length=200), nullable=False),
        sa.Column("team", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.String(length=80), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("agent", sa.String(length=120), nullable=True),
        sa.Column("last_seq", sa.Integer(), nullable=False),
        sa.Column("opened_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("taken_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("closed_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("contact_id", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "status IN ('waiting', 'active', 'closed')", name=op.f("ck_chat_conversations_status")
        ),
        sa.CheckConstraint("last_seq >= 0", name=op.f("ck_chat_conversations_last_seq")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_chat_conversations_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_conversations")),
    )
    op.create_index("ix_chat_conversations_team_status", "chat_conversations", ["team", "status"])
    op.create_index("ix_chat_conversations_member", "chat_conversations", ["member_id", "opened_at"])
    op.create_index("ix_chat_conversations_opened", "chat_conversations", ["opened_at"])
    op.create_table(
        "chat_messages",
        sa.Column("id", sa.String(length=420), nullable=False),
        sa.Column("conversation_id", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=200), nullable=False),
        sa.Column("author_role", sa.String(length=10), nullable=False),
        sa.Column("author", sa.String(length=120), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("sent_at", UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("author_role IN ('member', 'agent')", name=op.f("ck_chat_messages_author_role")),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_chat_messages_seq")),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["chat_conversations.id"],
            name=op.f("fk_chat_messages_conversation_id_chat_conversations"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_chat_messages_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_messages")),
        sa.UniqueConstraint("conversation_id", "seq", name="uq_chat_messages_conversation_seq"),
        sa.UniqueConstraint("conversation_id", "client_id", name="uq_chat_messages_conversation_client"),
    )
    op.create_table(
        "chat_agents",
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("teams", sa.JSON(), nullable=False),
        sa.Column("updated_at", UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_chat_agents")),
    )


def downgrade() -> None:
    op.drop_table("chat_agents")
    op.drop_table("chat_messages")
    op.drop_index("ix_chat_conversations_opened", table_name="chat_conversations")
    op.drop_index("ix_chat_conversations_member", table_name="chat_conversations")
    op.drop_index("ix_chat_conversations_team_status", table_name="chat_conversations")
    op.drop_table("chat_conversations")
