"""offers: offers, decisions, holdouts, activations, propensity models

Revision ID: d5e6f7081923
Revises: c4d5e6f70812
Create Date: 2026-11-25 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

revision: str = "d5e6f7081923"
down_revision: str | None = "c4d5e6f70812"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass
