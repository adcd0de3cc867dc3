"""programme holdout: periods of the programme-wide holdout (salt, share, start, minimum length)

Members whose salted hash falls under ``share`` receive no marketing offer while the period is open;
the ROI report compares them with everyone else to measure the whole offers programme.

Revision ID: d1e2f3a4b5c6
Revises: c0e7a1d2b3f4
Create Date: 2026-12-05 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from prevenance.common.base import UtcDateTime

revision: str = "d1e2f3a4b5c6"
down_revision: str | None = "c0e7a1d2b3f4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "offer_programme_holdouts",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("salt", sa.String(length=64), nullable=False),
        sa.Column("share", sa.String(length=40), nullable=False),
        sa.Column("started_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("min_days", sa.Integer(), nullable=False, server_default="150"),
        sa.Column("ended_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("open_marker", sa.Integer(), nullable=True),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.CheckConstraint("min_days >= 1", name=op.f("ck_offer_programme_holdouts_min_days_positive")),
    )
    op.create_index(
        "uq_offer_programme_holdouts_open", "offer_programme_holdouts", ["open_marker"], unique=True
    )


def downgrade() -> None:
    op.drop_index("uq_offer_programme_holdouts_open", table_name="offer_programme_holdouts")
    op.drop_table("offer_programme_holdouts")
