"""outbox dead letters: attempts, last_error, retry_at and parked_at on outbox_events; a partial pending index

An event one handler always refuses no longer holds up the others: a refused delivery is counted in
``attempts`` with its ``last_error`` and the event backs off until ``retry_at`` (1, 2, 4, … s after
its 1st, 2nd, 3rd failure: ``outbox.retry_delay``); at ``outbox.MAX_ATTEMPTS`` the event is parked
(``parked_at``) and no pass picks it until ``prevenance outbox retry``. Pending now means "not delivered and not
parked", and ``ix_outbox_pending`` holds exactly those rows (partial, on ``id``): the passes read the
oldest pending ones in id order, which the old ``(delivered_at, id)`` index did not give PostgreSQL's
planner (it walked the primary key past every delivered event). ``ix_outbox_parked`` holds the few
parked rows (the ``/metrics`` gauge, ``prevenance outbox parked``). Building each reads the table once.

Revision ID: 05b2392a1421
Revises: a4c7e1f3b9d2
Create Date: 2026-12-07 17:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from prevenance.common.base import UtcDateTime

revision: str = "05b2392a1421"
down_revision: str | None = "a4c7e1f3b9d2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PENDING = sa.text("delivered_at IS NULL AND parked_at IS NULL")
_PARKED = sa.text("parked_at IS NOT NULL")


def upgrade() -> None:
    op.add_column("outbox_events", sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    op.add_column("outbox_events", sa.Column("last_error", sa.String(length=300), nullable=True))
    op.add_column("outbox_events", sa.Column("parked_at", UtcDateTime(timezone=True), nullable=True))
    op.add_column("outbox_events", sa.Column("retry_at", UtcDateTime(timezone=True), nullable=True))
    op.drop_index("ix_outbox_pending", table_name="outbox_events")
    op.create_index(
        "ix_outbox_pending",
        "outbox_events",
        ["id"],
        unique=False,
        postgresql_where=_PENDING,
        sqlite_where=_PENDING,
    )
    op.create_index(
        "ix_outbox_parked",
        "outbox_events",
        ["id"],
        unique=False,
        postgresql_where=_PARKED,
        sqlite_where=_PARKED,
    )


def downgrade() -> None:
    """Parked and backing-off events become pending again (the old schema can say neither)."""
    op.drop_index("ix_outbox_parked", table_name="outbox_events")
    op.drop_index("ix_outbox_pending", table_name="outbox_events")
    op.create_index("ix_outbox_pending", "outbox_events", ["delivered_at", "id"], unique=False)
    with op.batch_alter_table("outbox_events") as batch:
        batch.drop_column("retry_at")
        batch.drop_column("parked_at")
        batch.drop_column("last_error")
        batch.drop_column("attempts")
