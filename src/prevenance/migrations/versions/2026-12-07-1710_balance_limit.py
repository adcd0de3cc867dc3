"""accounts.balance stays within the ledger's bound: ±10^15, and an integer

The ledger refuses any posting that would take a balance beyond ``ledger_bounds.LEDGER_BALANCE_LIMIT``
(in the WHERE clause of its balance update, and in the earn engine on the locked rows); this is the
last line of defence should any other statement try. Before it, ``balance + amount`` past 2^63 - 1
was a numeric overflow on PostgreSQL and, on SQLite, silently a REAL (float) balance.

PostgreSQL: a CHECK constraint, added ``NOT VALID`` then validated (the scan does not block writes).
SQLite cannot add a CHECK to a table without copying it, and ``accounts`` is referenced by every
posting (a copy would trip the foreign keys): two triggers refuse an inserted or updated balance
outside the bound or not an integer (``typeof``), which a CHECK could not say on SQLite anyway. A
database holding such a balance already fails this upgrade: run ``prevenance ledger audit`` first.

Revision ID: 6d2b9e41c7a3
Revises: 05b2392a1421
Create Date: 2026-12-07 17:10:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "6d2b9e41c7a3"
down_revision: str | None = "05b2392a1421"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIMIT = 10**15  # ledger_bounds.LEDGER_BALANCE_LIMIT when written; a migration keeps its own value
CONSTRAINT = "ck_accounts_balance_within_limit"
REFUSED = f"accounts.balance must be an integer within ±{LIMIT} ({CONSTRAINT})"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            f"ALTER TABLE accounts ADD CONSTRAINT {CONSTRAINT} "
            f"CHECK (balance BETWEEN -{LIMIT} AND {LIMIT}) NOT VALID"
        )
        op.execute(f"ALTER TABLE accounts VALIDATE CONSTRAINT {CONSTRAINT}")
        return
    refused = f"typeof(NEW.balance) <> 'integer' OR NEW.balance NOT BETWEEN -{LIMIT} AND {LIMIT}"
    for action, event in (("insert", "INSERT"), ("update", "UPDATE OF balance")):
        op.execute(
            f"CREATE TRIGGER accounts_balance_limit_{action} BEFORE {event} ON accounts "
            f"WHEN {refused} BEGIN SELECT RAISE(ABORT, '{REFUSED}'); END"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"ALTER TABLE accounts DROP CONSTRAINT IF EXISTS {CONSTRAINT}")
        return
    for action in ("insert", "update"):
        op.execute(f"DROP TRIGGER IF EXISTS accounts_balance_limit_{action}")
