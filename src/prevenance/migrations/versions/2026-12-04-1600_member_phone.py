"""member phone: members.phone (E.164) so the desk finds a caller by number

Revision ID: 0a1b2c3d4e5f
Revises: f708192a3b45
Create Date: 2026-12-04 16:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0a1b2c3d4e5f"
down_revision: str | None = "f708192a3b45"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("phone", sa.String(length=16), nullable=True))
        batch.create_index(batch.f("ix_members_phone"), ["phone"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_index(batch.f("ix_members_phone"))
        batch.drop_column("phone")
