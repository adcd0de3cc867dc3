"""mail in: the desk's e-mail messages (inbound and the outbound queue) and their attachments

Revision ID: e7a1b2c3d4f5
Revises: e7c4a9b2d1f0
Create Date: 2026-12-06 02:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from prevenance.common.base import UtcDateTime

revision: str = "e7a1b2c3d4f5"
down_revision: str | None = "e7c4a9b2d1f0"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_mail_messages",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("message_key", sa.String(length=64), nullable=False),
        sa.Column("message_id", sa.String(length=998), nullable=False),
        sa.Column("once_key", sa.String(length=240), nullable=True),
        sa.Column("direction", sa.String(length=10), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("case_id", sa.String(length=200), nullable=True),
        sa.Column("contact_id", sa.String(length=200), nullable=True),
        sa.Column("sender", sa.String(length=320), nullable=False),
        sa.Column("sender_name", sa.String(length=200), nullable=False),
        sa.Column("recipients", sa.String(length=1000), nullable=False),
        sa.Column("subject", sa.String(length=500), nullable=False),
        sa.Column("text_body", sa.Text(), nullable=False),
        sa.Column("html_body", sa.Text(), nullable=True),
        sa.Column("in_reply_to", sa.String(length=998), nullable=True),
        sa.Column("thread_references", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("automated", sa.String(length=40), nullable=True),
        sa.Column("suggested_reason", sa.String(length=80), nullable=True),
        sa.Column("suggestion_words", sa.String(length=200), nullable=True),
        sa.Column("discard_reason", sa.String(length=500), nullable=True),
        sa.Column("handled_by", sa.String(length=120), nullable=True),
        sa.Column("handled_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("received_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_attempt_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "direction IN ('inbound', 'outbound')", name=op.f("ck_desk_mail_messages_direction")
        ),
        sa.CheckConstraint(
            "state IN ('triage', 'filed', 'discarded', 'ignored', 'pending', 'sent', 'failed')",
            name=op.f("ck_desk_mail_messages_state"),
        ),
        sa.CheckConstraint(
            "kind IN ('mail', 'automated', 'acknowledgement', 'reply')",
            name=op.f("ck_desk_mail_messages_kind"),
        ),
        sa.ForeignKeyConstraint(
            ["case_id"], ["desk_cases.id"], name=op.f("fk_desk_mail_messages_case_id_desk_cases")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_desk_mail_messages_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_mail_messages")),
        sa.UniqueConstraint("message_key", name=op.f("uq_desk_mail_messages_message_key")),
        sa.UniqueConstraint("once_key", name=op.f("uq_desk_mail_messages_once_key")),
    )
    op.create_index("ix_desk_mail_messages_state_received", "desk_mail_messages", ["state", "received_at"])
    op.create_index("ix_desk_mail_messages_case_received", "desk_mail_messages", ["case_id", "received_at"])
    op.create_index("ix_desk_mail_messages_member", "desk_mail_messages", ["member_id"])
    op.create_table(
        "desk_mail_attachments",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("message_pk", sa.String(length=40), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=255), nullable=False),
        sa.Column("content_type", sa.String(length=120), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("kept", sa.Boolean(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.ForeignKeyConstraint(
            ["message_pk"],
            ["desk_mail_messages.id"],
            name=op.f("fk_desk_mail_attachments_message_pk_desk_mail_messages"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_desk_mail_attachments_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_mail_attachments")),
    )
    op.create_index("ix_desk_mail_attachments_message", "desk_mail_attachments", ["message_pk", "position"])
    op.create_index("ix_desk_mail_attachments_member_id", "desk_mail_attachments", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_desk_mail_attachments_member_id", table_name="desk_mail_attachments")
    op.drop_index("ix_desk_mail_attachments_message", table_name="desk_mail_attachments")
    op.drop_table("desk_mail_attachments")
    op.drop_index("ix_desk_mail_messages_member", table_name="desk_mail_messages")
    op.drop_index("ix_desk_mail_messages_case_received", table_name="desk_mail_messages")
    op.drop_index("ix_desk_mail_messages_state_received", table_name="desk_mail_messages")
    op.drop_table("desk_mail_messages")
