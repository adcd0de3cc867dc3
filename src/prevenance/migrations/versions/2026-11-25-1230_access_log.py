"""access log: who read or changed which customer's record (append-only)

Revision ID: f708192a3b45
Revises: e6f708192a34
Create Date: 2026-11-25 12:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import prevenance.common.base

revision: str = "f708192a3b45"
down_revision: str | None = "e6f708192a34"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION prevenance_access_log_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'the customer access log is append-only: % refused', TG_OP
    USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    op.create_table(
        "customer_access_log",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("at", prevenance.common.base.UtcDateTime(), nullable=False),
        sa.Column("actor", sa.String(length=120), nullable=False),
        sa.Column("actor_role", sa.String(length=20), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("method", sa.String(length=10), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.CheckConstraint("action IN ('read', 'change')", name=op.f("ck_customer_access_log_action")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_access_log")),
    )
    op.create_index(
        "ix_customer_access_log_member_at", "customer_access_log", ["member_id", "at"], unique=False
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER customer_access_log_append_only BEFORE UPDATE OR DELETE ON customer_access_log "
            "FOR EACH ROW EXECUTE FUNCTION prevenance_access_log_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER customer_access_log_no_{action.lower()} BEFORE {action} ON customer_access_log "
                f"BEGIN SELECT RAISE(ABORT, 'the customer access log is append-only: {action} refused'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS customer_access_log_append_only ON customer_access_log")
        op.execute("DROP FUNCTION IF EXISTS prevenance_access_log_append_only()")
    op.drop_index("ix_customer_access_log_member_at", table_name="customer_access_log")
    op.drop_table("customer_access_log")
