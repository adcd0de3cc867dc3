"""recovery cases and goodwill grants: a detractor or poor answer opens one case on the member, owed
by the rated team; a missed promise or an incident grants goodwill once per cause and member

Revision ID: f3b8d2e6a9c1
Revises: e7a1b2c3d4f5
Create Date: 2026-12-06 02:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from prevenance.common.base import UtcDateTime

revision: str = "f3b8d2e6a9c1"
down_revision: str | None = "e7a1b2c3d4f5"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "desk_recovery_cases",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("answer_id", sa.String(length=220), nullable=True),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("member_ref", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=200), nullable=True),
        sa.Column("team", sa.String(length=120), nullable=False),
        sa.Column("agent", sa.String(length=120), nullable=True),
        sa.Column("channel", sa.String(length=20), nullable=True),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("cause", sa.String(length=20), nullable=False),
        sa.Column("recommend", sa.Integer(), nullable=True),
        sa.Column("interaction", sa.Integer(), nullable=True),
        sa.Column("answered_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("opened_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("opened_by", sa.String(length=120), nullable=False),
        sa.Column("due_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("outcome", sa.String(length=30), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("closed_by", sa.String(length=120), nullable=True),
        sa.Column("closed_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("follow_up_answer_id", sa.String(length=220), nullable=True),
        sa.Column("follow_up_recommend", sa.Integer(), nullable=True),
        sa.Column("follow_up_at", UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("status IN ('open', 'closed')", name=op.f("ck_desk_recovery_cases_status")),
        sa.CheckConstraint(
            "cause IN ('recommend', 'interaction', 'manual')", name=op.f("ck_desk_recovery_cases_cause")
        ),
        sa.CheckConstraint(
            "outcome IS NULL OR outcome IN ('called_back', 'resolved', 'goodwill_given', 'customer_declined')",
            name=op.f("ck_desk_recovery_cases_outcome"),
        ),
        sa.CheckConstraint(
            "(status = 'open' AND outcome IS NULL) OR (status = 'closed' AND outcome IS NOT NULL)",
            name=op.f("ck_desk_recovery_cases_closed_outcome"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_desk_recovery_cases_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_recovery_cases")),
        sa.UniqueConstraint("answer_id", name=op.f("uq_desk_recovery_cases_answer_id")),
    )
    op.create_index("ix_desk_recovery_cases_status_due", "desk_recovery_cases", ["status", "due_at"])
    op.create_index("ix_desk_recovery_cases_member_opened", "desk_recovery_cases", ["member_id", "opened_at"])
    op.create_index("ix_desk_recovery_cases_opened", "desk_recovery_cases", ["opened_at"])
    op.create_table(
        "goodwill_grants",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=200), nullable=False),
        sa.Column("cause", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("form", sa.String(length=10), nullable=False),
        sa.Column("points", sa.BigInteger(), nullable=False),
        sa.Column("credit_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("cost_eur", sa.Numeric(14, 4), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("product", sa.String(length=40), nullable=False),
        sa.Column("team", sa.String(length=120), nullable=True),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("posting_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("granted_by", sa.String(length=120), nullable=False),
        sa.Column("granted_at", UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("form IN ('points', 'credit', 'capped')", name=op.f("ck_goodwill_grants_form")),
        sa.CheckConstraint("cause IN ('late_card', 'incident')", name=op.f("ck_goodwill_grants_cause")),
        sa.CheckConstraint("points >= 0 AND credit_minor >= 0", name=op.f("ck_goodwill_grants_amounts")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_goodwill_grants_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_goodwill_grants")),
        sa.UniqueConstraint("key", name=op.f("uq_goodwill_grants_key")),
    )
    op.create_index("ix_goodwill_grants_member_month", "goodwill_grants", ["member_id", "month"])
    op.create_index("ix_goodwill_grants_month", "goodwill_grants", ["month"])
    op.create_table(
        "offer_suppressions",
        sa.Column("id", sa.String(length=200), nullable=False),
        sa.Column("offer_id", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("transaction_id", sa.String(length=200), nullable=False),
        sa.Column("arm", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.String(length=40), nullable=False),
        sa.Column("decided_at", UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("arm IN ('treatment', 'control')", name=op.f("ck_offer_suppressions_arm")),
        sa.ForeignKeyConstraint(
            ["offer_id"], ["offers.id"], name=op.f("fk_offer_suppressions_offer_id_offers")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_offer_suppressions_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_offer_suppressions")),
        sa.UniqueConstraint(
            "offer_id", "member_id", "transaction_id", name="uq_offer_suppressions_offer_member_tx"
        ),
    )
    op.create_table(
        "desk_goodwill_mails",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("cause", sa.String(length=20), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("subject", sa.String(length=400), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("last_attempt_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("next_attempt_at", UtcDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'failed')", name=op.f("ck_desk_goodwill_mails_status")
        ),
        sa.CheckConstraint("language IN ('fr', 'en')", name=op.f("ck_desk_goodwill_mails_language")),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_desk_goodwill_mails_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_desk_goodwill_mails")),
    )
    op.create_index("ix_desk_goodwill_mails_status_created", "desk_goodwill_mails", ["status", "created_at"])
    op.create_index("ix_desk_goodwill_mails_member", "desk_goodwill_mails", ["member_id"])
    op.create_index("ix_offer_suppressions_member", "offer_suppressions", ["member_id", "decided_at"])


def downgrade() -> None:
    op.drop_table("desk_goodwill_mails")
    op.drop_table("offer_suppressions")
    op.drop_table("goodwill_grants")
    op.drop_table("desk_recovery_cases")
