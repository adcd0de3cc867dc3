"""postings are append-only: the database refuses UPDATE and DELETE on them

Revision ID: 5c1e0a7f2b91
Revises: b1fabb16007e
Create Date: 2026-11-25 09:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "5c1e0a7f2b91"
down_revision: str | None = "b1fabb16007e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION prevenance_postings_append_only() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'postings are append-only: % refused (post a reversal instead)', TG_OP
    USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql
"""


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        op.execute(
            "CREATE TRIGGER postings_append_only BEFORE UPDATE OR DELETE ON postings "
            "FOR EACH ROW EXECUTE FUNCTION prevenance_postings_append_only()"
        )
    else:
        for action in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER postings_no_{action.lower()} BEFORE {action} ON postings "
                f"BEGIN SELECT RAISE(ABORT, 'postings are append-only: {action} refused'); END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS postings_append_only ON postings")
        op.execute("DROP FUNCTION IF EXISTS prevenance_postings_append_only()")
    else:
        for action in ("update", "delete"):
            op.execute(f"DROP TRIGGER IF EXISTS postings_no_{action}")
