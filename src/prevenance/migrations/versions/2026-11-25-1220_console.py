"""console: staff users

Revision ID: e6f708192a34
Revises: d5e6f7081923
Create Date: 2026-11-25 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import prevenance.common.base

revision: str = "e6f708192a34"
down_revision: str | None = "d5e6f7081923"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Lower-cased prefix indexes of the agent's customer search (see console/tables.py).
_PREFIX_COLUMNS = ("name", "email", "ref")


def upgrade() -> None:
    op.create_table(
        "console_users",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("username", sa.String(length=120), nullable=False),
        sa.Column("password_hash", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("member_ref", sa.String(length=64), nullable=True),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("created_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.CheckConstraint(
            "role IN ('agent', 'concierge', 'supervisor', 'marketing', 'admin', 'member')",
            name=op.f("ck_console_users_role"),
        ),
        sa.CheckConstraint("language IN ('fr', 'en')", name=op.f("ck_console_users_language")),
        sa.CheckConstraint(
            "(role = 'member') = (member_id IS NOT NULL)", name=op.f("ck_console_users_member_bound")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_console_users_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_console_users")),
        sa.UniqueConstraint("username", name=op.f("uq_console_users_username")),
    )
    op.create_index(op.f("ix_console_users_member_id"), "console_users", ["member_id"], unique=False)
    postgres = op.get_bind().dialect.name == "postgresql"
    for column in _PREFIX_COLUMNS:
        name = f"ix_console_members_{column}_prefix"
        if postgres:
            op.execute(f"CREATE INDEX {name} ON members (lower({column}) text_pattern_ops)")
        else:
            op.create_index(name, "members", [sa.text(f"lower({column})")], unique=False)


def downgrade() -> None:
    for column in _PREFIX_COLUMNS:
        op.drop_index(f"ix_console_members_{column}_prefix", table_name="members")
    op.drop_index(op.f("ix_console_users_member_id"), table_name="console_users")
    op.drop_table("console_users")
