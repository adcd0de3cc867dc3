"""member city: members.city for incident targeting and card delivery

Revision ID: a1c2e3f4a5b6
Revises: b3f1b77f1fe8
Create Date: 2026-11-25 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "a1c2e3f4a5b6"
down_revision: str | None = "b3f1b77f1fe8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("city", sa.String(length=120), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.drop_column("city")
