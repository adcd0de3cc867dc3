"""voice: survey invitations, answers, scorecards, barometers, suggestions

Revision ID: c4d5e6f70812
Revises: a1c2e3f4a5b6
Create Date: 2026-11-25 12:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import prevenance.common.base

revision: str = "c4d5e6f70812"
down_revision: str | None = "a1c2e3f4a5b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# A published scorecard feeds pay: its rows are frozen by the database itself (a correction is a
# new version), as the ledger's postings are.
FROZEN = ("voice_scorecard_versions", "voice_scorecard_rows")
_PG_FUNCTION = """
CREATE OR REPLACE FUNCTION prevenance_voice_frozen() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION '% is frozen once published: % refused (publish a new version instead)', TG_TABLE_NAME, TG_OP
    USING ERRCODE = 'restrict_violation';
END;
$$ LANGUAGE plpgsql
"""


def _freeze() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_PG_FUNCTION)
        for table in FROZEN:
            op.execute(
                f"CREATE TRIGGER {table}_frozen BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION prevenance_voice_frozen()"
            )
    else:
        for table in FROZEN:
            for action in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{action.lower()} BEFORE {action} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, '{table} is frozen once published: {action} refused'); END"
                )


def _unfreeze() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in FROZEN:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_frozen ON {table}")
        op.execute("DROP FUNCTION IF EXISTS prevenance_voice_frozen()")
    else:
        for table in FROZEN:
            for action in ("update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_no_{action}")


def upgrade() -> None:
    op.create_table(
        "voice_barometers",
        sa.Column("source", sa.String(length=120), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("quarter", sa.String(length=6), nullable=False),
        sa.Column("metric", sa.String(length=40), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=True),
        sa.Column("imported_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", "country", "quarter", "metric", name=op.f("pk_voice_barometers")),
    )
    op.create_table(
        "voice_scorecard_versions",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("grid", sa.JSON(), nullable=False),
        sa.Column("agents", sa.Integer(), nullable=False),
        sa.Column("published_by", sa.String(length=120), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("published_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("version >= 1", name=op.f("ck_voice_scorecard_versions_version")),
        sa.PrimaryKeyConstraint("month", "version", name=op.f("pk_voice_scorecard_versions")),
    )
    op.create_table(
        "voice_scorecard_rows",
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("agent", sa.String(length=120), nullable=False),
        sa.Column("team", sa.String(length=120), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["month", "version"],
            ["voice_scorecard_versions.month", "voice_scorecard_versions.version"],
            name="fk_voice_scorecard_rows_version",
        ),
        sa.PrimaryKeyConstraint("month", "version", "agent", name=op.f("pk_voice_scorecard_rows")),
    )
    op.create_table(
        "voice_invitations",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("contact_id", sa.String(length=200), nullable=False),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("agent", sa.String(length=120), nullable=False),
        sa.Column("team", sa.String(length=120), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=80), nullable=False),
        sa.Column("product", sa.String(length=40), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("contact_ended_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("skip_reason", sa.String(length=40), nullable=True),
        sa.Column("created_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=True),
        sa.Column("answered_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("language IN ('fr', 'en')", name=op.f("ck_voice_invitations_language")),
        sa.CheckConstraint(
            "status IN ('pending', 'sent', 'skipped')", name=op.f("ck_voice_invitations_status")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_voice_invitations_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_invitations")),
        sa.UniqueConstraint("contact_id", name=op.f("uq_voice_invitations_contact_id")),
    )
    op.create_index(
        "ix_voice_invitations_member_created", "voice_invitations", ["member_id", "created_at"], unique=False
    )
    op.create_index(
        "ix_voice_invitations_status_created", "voice_invitations", ["status", "created_at"], unique=False
    )
    op.create_table(
        "voice_survey_consents",
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("opted_out", sa.Boolean(), nullable=False),
        sa.Column("updated_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_voice_survey_consents_member_id_members")
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_voice_survey_consents")),
    )
    op.create_table(
        "voice_answers",
        sa.Column("id", sa.String(length=220), nullable=False),
        sa.Column("invitation_id", sa.String(length=64), nullable=True),
        sa.Column("contact_id", sa.String(length=200), nullable=True),
        sa.Column("member_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("agent", sa.String(length=120), nullable=False),
        sa.Column("team", sa.String(length=120), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("reason", sa.String(length=80), nullable=False),
        sa.Column("product", sa.String(length=40), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("answered_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("recommend", sa.SmallInteger(), nullable=True),
        sa.Column("interaction", sa.SmallInteger(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("suggestion", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("created_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("source IN ('survey', 'import', 'demo')", name=op.f("ck_voice_answers_source")),
        sa.CheckConstraint(
            "interaction IS NULL OR (interaction BETWEEN 1 AND 5)", name=op.f("ck_voice_answers_interaction")
        ),
        sa.CheckConstraint(
            "recommend IS NOT NULL OR interaction IS NOT NULL", name=op.f("ck_voice_answers_scored")
        ),
        sa.CheckConstraint(
            "recommend IS NULL OR (recommend BETWEEN 0 AND 10)", name=op.f("ck_voice_answers_recommend")
        ),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["voice_invitations.id"],
            name=op.f("fk_voice_answers_invitation_id_voice_invitations"),
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_voice_answers_member_id_members")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_answers")),
        sa.UniqueConstraint("invitation_id", name=op.f("uq_voice_answers_invitation_id")),
    )
    op.create_index(
        "ix_voice_answers_member_answered", "voice_answers", ["member_id", "answered_at"], unique=False
    )
    op.create_index("ix_voice_answers_month", "voice_answers", ["month"], unique=False)
    op.create_table(
        "voice_answer_topics",
        sa.Column("answer_id", sa.String(length=220), nullable=False),
        sa.Column("part", sa.String(length=20), nullable=False),
        sa.Column("topic", sa.String(length=60), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.CheckConstraint("part IN ('comment', 'suggestion')", name=op.f("ck_voice_answer_topics_part")),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["voice_answers.id"], name=op.f("fk_voice_answer_topics_answer_id_voice_answers")
        ),
        sa.PrimaryKeyConstraint("answer_id", "part", "topic", name=op.f("pk_voice_answer_topics")),
    )
    op.create_index(
        "ix_voice_answer_topics_month_topic", "voice_answer_topics", ["month", "topic"], unique=False
    )
    op.create_table(
        "voice_suggestions",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("answer_id", sa.String(length=220), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("language", sa.String(length=2), nullable=False),
        sa.Column("country", sa.String(length=2), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("link", sa.Text(), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", prevenance.common.base.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=120), nullable=True),
        sa.CheckConstraint(
            "status IN ('new', 'under_review', 'adopted', 'declined')",
            name=op.f("ck_voice_suggestions_status"),
        ),
        sa.ForeignKeyConstraint(
            ["answer_id"], ["voice_answers.id"], name=op.f("fk_voice_suggestions_answer_id_voice_answers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_voice_suggestions")),
        sa.UniqueConstraint("answer_id", name=op.f("uq_voice_suggestions_answer_id")),
    )
    op.create_index(
        "ix_voice_suggestions_status_month", "voice_suggestions", ["status", "month"], unique=False
    )
    _freeze()


def downgrade() -> None:
    _unfreeze()
    op.drop_index("ix_voice_suggestions_status_month", table_name="voice_suggestions")
    op.drop_table("voice_suggestions")
    op.drop_index("ix_voice_answer_topics_month_topic", table_name="voice_answer_topics")
    op.drop_table("voice_answer_topics")
    op.drop_index("ix_voice_answers_month", table_name="voice_answers")
    op.drop_index("ix_voice_answers_member_answered", table_name="voice_answers")
    op.drop_table("voice_answers")
    op.drop_table("voice_survey_consents")
    op.drop_index("ix_voice_invitations_status_created", table_name="voice_invitations")
    op.drop_index("ix_voice_invitations_member_created", table_name="voice_invitations")
    op.drop_table("voice_invitations")
    op.drop_table("voice_scorecard_rows")
    op.drop_table("voice_scorecard_versions")
    op.drop_table("voice_barometers")
