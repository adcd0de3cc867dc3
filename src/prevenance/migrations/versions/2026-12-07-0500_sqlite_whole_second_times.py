"""SQLite: times written by the bulk insert at a whole second get their microseconds

Before this revision ``common.bulk.insert_many`` handed SQLite's driver naive datetimes, which its
default adapter writes without microseconds when they are zero (``2026-02-01 00:00:00``), where
SQLAlchemy writes ``2026-02-01 00:00:00.000000``. Times are compared as text on SQLite, so such a
time sorted before its own second's bound (``answered_at >= '2026-02-01 00:00:00.000000'`` left it
out). Imported survey answers (answered at whole seconds, as files give them), their suggestions and
events, and expiry events were concerned. PostgreSQL stores timestamps, not text: nothing to do.

Revision ID: a4c7e1f3b9d2
Revises: f3b8d2e6a9c1
Create Date: 2026-12-07 05:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "a4c7e1f3b9d2"
down_revision: str | None = "f3b8d2e6a9c1"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WRITTEN_IN_BULK = {
    "voice_answers": ("answered_at", "created_at"),
    "voice_suggestions": ("created_at", "updated_at"),
    "outbox_events": ("occurred_at",),
}
WHOLE_SECOND = 19  # len("YYYY-MM-DD HH:MM:SS")


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, columns in WRITTEN_IN_BULK.items():
        for column in columns:
            op.execute(
                f"UPDATE {table} SET {column} = {column} || '.000000' "
                f"WHERE typeof({column}) = 'text' AND length({column}) = {WHOLE_SECOND}"
            )


def downgrade() -> None:
    """Nothing to undo: the longer text is what SQLAlchemy itself writes."""
