"""Tables of the voice domain: consent, invitations (the survey mail outbox), answers, topics,
suggestions, published scorecards and external barometers.

An invitation is decided once per contact (``contact_id`` unique), whether it is sent or skipped,
so a re-delivered ``contact.closed`` event changes nothing. An answer is unique per invitation:
that constraint is what makes a survey link work once, even when two submissions race.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from prevenance.common.base import Base, UtcDateTime

BigId = BigInteger().with_variant(Integer, "sqlite")


class SurveyConsent(Base):
    """A member's choice about surveys; no row means the default (surveys welcome)."""

    __tablename__ = "voice_survey_consents"

    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"), primary_key=True)
    opted_out: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(120))


class Invitation(Base):
    """The decision taken for one closed contact, and when invited, the mail owed to the member.

    The contact's attribution (agent, team, channel, reason, product, country) is copied here when
    the contact closes, so the answer is attributed to what the contact was, whatever changes later.
    """

    __tablename__ = "voice_invitations"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'skipped', 'failed')", name="status"),
        CheckConstraint("language IN ('fr', 'en')", name="language"),
        Index("ix_voice_invitations_status_created", "status", "created_at"),
        Index("ix_voice_invitations_member_created", "member_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    contact_id: Mapped[str] = mapped_column(String(200), unique=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    language: Mapped[str] = mapped_column(String(2))
    agent: Mapped[str] = mapped_column(String(120))
    team: Mapped[str] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(80))
    product: Mapped[str] = mapped_column(String(40))
    country: Mapped[str] = mapped_column(String(2))
    contact_ended_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20))
    skip_reason: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # The relay's retries (see ``common.mail``): a refused mail waits for ``next_attempt_at`` or
    # ends ``failed`` with the relay's answer.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)


class Answer(Base):
    """One survey answer, from the survey page (``invitation_id`` set, unique) or a CSV import
    (``id`` = ``csv:<external id>``). ``month`` is the answer's UTC month, for grouping."""

    __tablename__ = "voice_answers"
    __table_args__ = (
        CheckConstraint("recommend IS NULL OR (recommend BETWEEN 0 AND 10)", name="recommend"),
        CheckConstraint("interaction IS NULL OR (interaction BETWEEN 1 AND 5)", name="interaction"),
        CheckConstraint("recommend IS NOT NULL OR interaction IS NOT NULL", name="scored"),
        CheckConstraint("source IN ('survey', 'import', 'demo')", name="source"),
        Index("ix_voice_answers_month", "month"),
        Index("ix_voice_answers_member_answered", "member_id", "answered_at"),
    )

    id: Mapped[str] = mapped_column(String(220), primary_key=True)
    invitation_id: Mapped[str | None] = mapped_column(
        ForeignKey("voice_invitations.id"), unique=True, nullable=True
    )
    contact_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    member_id: Mapped[int] = mapped_column(BigId, ForeignKey("members.id"))
    agent: Mapped[str] = mapped_column(String(120))
    team: Mapped[str] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str] = mapped_column(String(80))
    product: Mapped[str] = mapped_column(String(40))
    country: Mapped[str] = mapped_column(String(2))
    month: Mapped[str] = mapped_column(String(7))
    answered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    recommend: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    interaction: Mapped[int | None] = mapped_column(SmallInteger, nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    suggestion: Mapped[str | None] = mapped_column(Text, nullable=True)
    language: Mapped[str] = mapped_column(String(2))
    source: Mapped[str] = mapped_column(String(20))
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AnswerTopic(Base):
    """A topic found in an answer's comment or suggestion (keyword rules), counted by month."""

    __tablename__ = "voice_answer_topics"
    __table_args__ = (
        CheckConstraint("part IN ('comment', 'suggestion')", name="part"),
        Index("ix_voice_answer_topics_month_topic", "month", "topic"),
    )

    answer_id: Mapped[str] = mapped_column(ForeignKey("voice_answers.id"), primary_key=True)
    part: Mapped[str] = mapped_column(String(20), primary_key=True)
    topic: Mapped[str] = mapped_column(String(60), primary_key=True)
    month: Mapped[str] = mapped_column(String(7))


class Suggestion(Base):
    """A customer's suggestion and what became of it (``link``: the service or change it led to)."""

    __tablename__ = "voice_suggestions"
    __table_args__ = (
        CheckConstraint("status IN ('new', 'under_review', 'adopted', 'declined')", name="status"),
        Index("ix_voice_suggestions_status_month", "status", "month"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    answer_id: Mapped[str] = mapped_column(ForeignKey("voice_answers.id"), unique=True)
    text: Mapped[str] = mapped_column(Text)
    language: Mapped[str] = mapped_column(String(2))
    country: Mapped[str] = mapped_column(String(2))
    month: Mapped[str] = mapped_column(String(7))
    status: Mapped[str] = mapped_column(String(20))
    link: Mapped[str | None] = mapped_column(Text, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(120), nullable=True)


class ScorecardVersion(Base):
    """A published monthly scorecard: frozen; a correction is a new version with who and why."""

    __tablename__ = "voice_scorecard_versions"
    __table_args__ = (CheckConstraint("version >= 1", name="version"),)

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    grid: Mapped[dict[str, Any]] = mapped_column(JSON)
    agents: Mapped[int] = mapped_column(Integer)
    published_by: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(Text)
    published_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ScorecardRow(Base):
    """One agent's line of a published scorecard version, as computed at publication."""

    __tablename__ = "voice_scorecard_rows"
    __table_args__ = (
        ForeignKeyConstraint(
            ["month", "version"],
            ["voice_scorecard_versions.month", "voice_scorecard_versions.version"],
            name="fk_voice_scorecard_rows_version",
        ),
    )

    month: Mapped[str] = mapped_column(String(7), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    agent: Mapped[str] = mapped_column(String(120), primary_key=True)
    team: Mapped[str] = mapped_column(String(120))
    n: Mapped[int] = mapped_column(Integer)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


class Barometer(Base):
    """A competitor or market figure (RTF or satisfaction) for a country and quarter."""

    __tablename__ = "voice_barometers"

    source: Mapped[str] = mapped_column(String(120), primary_key=True)
    country: Mapped[str] = mapped_column(String(2), primary_key=True)
    quarter: Mapped[str] = mapped_column(String(6), primary_key=True)
    metric: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    n: Mapped[int | None] = mapped_column(Integer, nullable=True)
    imported_at: Mapped[datetime] = mapped_column(UtcDateTime())
