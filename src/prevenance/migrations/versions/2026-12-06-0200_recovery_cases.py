"""recovery cases: a detractor or poor answer opens one case on the member, owed by the rated team

Revision ID: e7a1b2c3d4f5
Revises: d1e2f3a4b5c6
Create Date: 2026-12-06 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from prevenance.common.base import UtcDateTime

revision: str = "e7a1b2c3d4f5"
down_revision: str | None = "d1e2f3a4b5c6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_recovery_cases",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("answer_id", sa.String(length=220), nullable=True),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_ref", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=200), nullable=True),
        sa.Column("team", sa.String(length=120), nullable=False),
        sa.Column("agent", sa.String(length=120), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("cause", sa.String(length=20), nullable=False),
        sa.Column("recommend", sa.Integer(), nullable=True),
        sa.Column("interaction", sa.Integer(), nullable=True),
        sa.Column("answered_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("opened_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=120), nullable=False),
        sa.Column("due_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("closed_by", sa.String(length=120), nullable=True),
        sa.Column("closed_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("follow_up_answer_id", sa.String(length=220), nullable=True),
        sa.Column("follow_up_recommend", sa.Integer(), nullable=True),
        sa.Column("follow_up_at", UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_desk_recovery_cases_status")),
        sa.CheckConstraint(
            "cause IN ('recommend', 'interaction', 'manual')", name=op.f("ck_desk_recovery_cases_cause")
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('called_back', 'resolved', 'goodwill_given', 'customer_declined')",
            name=op.f("ck_desk_recovery_cases_outcome"),
        ),
        sa.CheckConstraint(
            "(status = 'open' AND outcome IS NULL) OR (status = 'closed' AND outcome IS NOT NULL)",
            name=op.f("ck_desk_recovery_cases_closed_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_desk_recovery_cases_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_recovery_cases")),
        sa.UniqueConstraint("answer_id", name=op.f("uq_desk_recovery_cases_answer_id")),
    )
    op.create_index("ix_desk_recovery_cases_status_due", "desk_recovery_cases", ["status", "due_at"])
    op.create_index("ix_desk_recovery_cases_member_opened", "desk_recovery_cases", ["member_id", "opened_at"])
    op.create_index("ix_desk_recovery_cases_opened", "desk_recovery_cases", ["opened_at"])


def downgrade() -> None:
    op.drop_table("desk_recovery_cases")
