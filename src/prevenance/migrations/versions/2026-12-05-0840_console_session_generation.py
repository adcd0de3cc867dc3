"""console session generation: console_users.session_generation, so signing out or disabling a user
ends the sessions its signed cookies still name

Revision ID: a2c05e551020
Revises: 0a1b2c3d4e5f
Create Date: 2026-12-05 08:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a2c05e551020"
down_revision: str | None = "0a1b2c3d4e5f"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("console_users") as batch:
        batch.add_column(sa.Column("session_generation", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("console_users") as batch:
        batch.drop_column("session_generation")
