"""offers: offers, decisions, holdouts, activations, propensity models

Revision ID: d5e6f7081923
Revises: c4d5e6f70812
Create Date: 2026-11-25 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import prevenance.common.base

revision: str = "d5e6f7081923"
down_revision: str | None = "c4d5e6f70812"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "offer_models",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("created_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("features", sa.JSON(), nullable=False),
        sa.Column("coefficients", sa.JSON(), nullable=False),
        sa.Column("metrics", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version", name=op.f("pk_offer_models")),
    )
    op.create_table(
        "offers",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("partner_merchant", sa.String(length=200), nullable=False),
        sa.Column("partner_category", sa.String(length=60), nullable=True),
        sa.Column("reward_kind", sa.String(length=30), nullable=False),
        sa.Column("reward", sa.JSON(), nullable=False),
        sa.Column("eligibility", sa.JSON(), nullable=False),
        sa.Column("cap_per_member", sa.Integer(), nullable=False),
        sa.Column("budget_points", sa.BigInteger(), nullable=True),
        sa.Column("spent_points", sa.BigInteger(), nullable=False),
        sa.Column("unit_cost_eur", sa.String(length=40), nullable=False),
        sa.Column("margin_rate", sa.String(length=40), nullable=False),
        sa.Column("expected_spend_eur", sa.String(length=40), nullable=False),
        sa.Column("holdout_share", sa.String(length=40), nullable=False),
        sa.Column("decision_days", sa.Integer(), nullable=False),
        sa.Column("valid_from", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("valid_until", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("title_fr", sa.String(length=200), nullable=False),
        sa.Column("title_en", sa.String(length=200), nullable=False),
        sa.Column("text_fr", sa.Text(), nullable=False),
        sa.Column("text_en", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "reward_kind IN ('bonus_points', 'category_multiplier', 'ecode')",
            name=op.f("ck_offers_reward_kind"),
        ),
        sa.CheckConstraint("status IN ('active', 'paused', 'ended')", name=op.f("ck_offers_status")),
        sa.CheckConstraint(
            "budget_points IS NULL OR spent_points <= budget_points", name=op.f("ck_offers_within_budget")
        ),
        sa.CheckConstraint("cap_per_member >= 1", name=op.f("ck_offers_cap_positive")),
        sa.CheckConstraint("spent_points >= 0", name=op.f("ck_offers_spent_non_negative")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offers")),
    )
    op.create_index("ix_offers_status", "offers", ["status"], unique=False)
    op.create_table(
        "offer_decisions",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("offer_id", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("transaction_id", sa.String(length=200), nullable=False),
        sa.Column("arm", sa.String(length=10), nullable=False),
        sa.Column("decided_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("propensity", sa.Float(), nullable=False),
        sa.Column("expected_value", sa.Float(), nullable=False),
        sa.Column("model_version", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("activated_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("rewarded_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("reward_points", sa.BigInteger(), nullable=True),
        sa.Column("reward_transaction_id", sa.String(length=200), nullable=True),
        sa.CheckConstraint(
            "(arm = 'control') = (status = 'would_have_received')",
            name=op.f("ck_offer_decisions_control_is_held_back"),
        ),
        sa.CheckConstraint("arm IN ('treatment', 'control')", name=op.f("ck_offer_decisions_arm")),
        sa.CheckConstraint(
            "status IN ('made', 'activated', 'rewarded', 'expired', 'would_have_received')",
            name=op.f("ck_offer_decisions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_offer_decisions_member_id_members")
        ),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_offer_decisions_offer_id_offers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_decisions")),
        sa.UniqueConstraint(
            "offer_id", "member_id", "transaction_id", name="uq_offer_decisions_offer_member_tx"
        ),
    )
    op.create_index(
        "ix_offer_decisions_member_status", "offer_decisions", ["member_id", "status"], unique=False
    )
    op.create_index("ix_offer_decisions_offer_arm", "offer_decisions", ["offer_id", "arm"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_offer_decisions_offer_arm", table_name="offer_decisions")
    op.drop_index("ix_offer_decisions_member_status", table_name="offer_decisions")
    op.drop_table("offer_decisions")
    op.drop_index("ix_offers_status", table_name="offers")
    op.drop_table("offers")
    op.drop_table("offer_models")
