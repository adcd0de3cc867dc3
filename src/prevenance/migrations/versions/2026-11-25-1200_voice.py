"""voice: survey invitations, answers, scorecards, barometers, suggestions

Revision ID: c4d5e6f70812
Revises: a1c2e3f4a5b6
Create Date: 2026-11-25 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "c4d5e6f70812"
down_revision: str | None = "a1c2e3f4a5b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
