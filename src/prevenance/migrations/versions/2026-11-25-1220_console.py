"""console: staff users

Revision ID: e6f708192a34
Revises: d5e6f7081923
Create Date: 2026-11-25 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "e6f708192a34"
down_revision: str | None = "d5e6f7081923"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
