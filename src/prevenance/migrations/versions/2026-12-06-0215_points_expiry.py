"""points expiry: the lots each expiry posting consumed, and the warnings owed to members

``expired_lots`` records, per expiry posting, which earn postings (lots) it took and how many points
of each; ``expiry_warnings`` is the mail outbox of the warnings sent before points expire, one per
lot and expiry day (unique ``key``).

Revision ID: e7a1c3d5f9b2
Revises: d1e2f3a4b5c6
Create Date: 2026-12-06 02:15:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from prevenance.common.base import UtcDateTime

revision: str = "e7a1c3d5f9b2"
down_revision: str | None = "d1e2f3a4b5c6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "expired_lots",
        sa.Column("expiry_posting_id", _ID, nullable=False),
        sa.Column("earn_posting_id", _ID, nullable=False),
        sa.Column("member_id", _ID, nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("expired_on", sa.Date(), nullable=False),
        sa.CheckConstraint("points > 0", name=op.f("ck_expired_lots_points_positive")),
        sa.ForeignKeyConstraint(
            ["expiry_posting_id"], ["postings.id"], name=op.f("fk_expired_lots_expiry_posting_id_postings")
        ),
        sa.ForeignKeyConstraint(
            ["earn_posting_id"], ["postings.id"], name=op.f("fk_expired_lots_earn_posting_id_postings")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_expired_lots_member_id_members")
        ),
        sa.PrimaryKeyConstraint("expiry_posting_id", "earn_posting_id", name=op.f("pk_expired_lots")),
    )
    op.create_index("ix_expired_lots_earn_posting", "expired_lots", ["earn_posting_id"])
    op.create_table(
        "expiry_warnings",
        sa.Column("id", _ID, nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("member_id", _ID, nullable=False),
        sa.Column("earn_posting_id", _ID, nullable=True),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("expires_on", sa.Date(), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("sent_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'sent', 'failed')", name=op.f("ck_expiry_warnings_status")),
        sa.CheckConstraint("language IN ('fr', 'en')", name=op.f("ck_expiry_warnings_language")),
        sa.CheckConstraint("points > 0", name=op.f("ck_expiry_warnings_points_positive")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_expiry_warnings_member_id_members")
        ),
        sa.ForeignKeyConstraint(
            ["earn_posting_id"], ["postings.id"], name=op.f("fk_expiry_warnings_earn_posting_id_postings")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_expiry_warnings")),
        sa.UniqueConstraint("key", name=op.f("uq_expiry_warnings_key")),
    )
    op.create_index("ix_expiry_warnings_status_created", "expiry_warnings", ["status", "created_at"])
    op.create_index("ix_expiry_warnings_member", "expiry_warnings", ["member_id"])


def downgrade() -> None:
    op.drop_index("ix_expiry_warnings_member", table_name="expiry_warnings")
    op.drop_index("ix_expiry_warnings_status_created", table_name="expiry_warnings")
    op.drop_table("expiry_warnings")
    op.drop_index("ix_expired_lots_earn_posting", table_name="expired_lots")
    op.drop_table("expired_lots")
