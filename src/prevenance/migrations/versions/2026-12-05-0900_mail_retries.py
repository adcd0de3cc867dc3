"""mail retries: attempts, next_attempt_at and last_error on the two mail queues, status 'failed'

One message the relay refuses no longer blocks the queue: a temporary failure waits for
``next_attempt_at``, a permanent one (or the last retry) ends ``failed`` with the relay's answer.

Revision ID: c0e7a1d2b3f4
Revises: a2c05e551020
Create Date: 2026-12-05 09:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from prevenance.common.base import UtcDateTime

revision: str = "c0e7a1d2b3f4"
down_revision: str | None = "a2c05e551020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_QUEUES = {
    "desk_incident_notices": ("('pending', 'sent')", "('pending', 'sent', 'failed')"),
    "voice_invitations": (
        "('pending', 'sent', 'skipped')",
        "('pending', 'sent', 'skipped', 'failed')",
    ),
}


def upgrade() -> None:
    for table, (_, statuses) in _QUEUES.items():
        with op.batch_alter_table(table, reflect_kwargs={"resolve_fks": False}) as batch:
            batch.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
            batch.add_column(sa.Column("last_attempt_at", UtcDateTime(timezone=True), nullable=True))
            batch.add_column(sa.Column("next_attempt_at", UtcDateTime(timezone=True), nullable=True))
            batch.add_column(sa.Column("last_error", sa.String(length=500), nullable=True))
            batch.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
            batch.create_check_constraint(op.f(f"ck_{table}_status"), f"status IN {statuses}")


def downgrade() -> None:
    for table, (statuses, _) in _QUEUES.items():
        op.execute(sa.text(f"UPDATE {table} SET status = 'pending' WHERE status = 'failed'"))
        with op.batch_alter_table(table, reflect_kwargs={"resolve_fks": False}) as batch:
            batch.drop_constraint(op.f(f"ck_{table}_status"), type_="check")
            batch.create_check_constraint(op.f(f"ck_{table}_status"), f"status IN {statuses}")
            batch.drop_column("last_error")
            batch.drop_column("next_attempt_at")
            batch.drop_column("last_attempt_at")
            batch.drop_column("attempts")
