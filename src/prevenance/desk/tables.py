"""Tables of the service desk. A contact's reason, channel and outcome are checked by the service
against the configured taxonomy; the closed lists are also database constraints."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from prevenance.common.base import Base, MailRetryColumns, UtcDateTime

BigId = BigInteger().with_variant(Integer, "sqlite")


class Case(Base):
    """Contacts about one matter of one member; resolved or open, with an owner.

    ``country`` is the member's country when the case was opened, so reports by country keep the
    country the contact was served in.
    """

    __tablename__ = "desk_cases"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'resolved')", name="status"),
        CheckConstraint("contact_count >= 0", name="contact_count"),
        Index("ix_desk_cases_member_opened", "member_id", "opened_at"),
        Index("ix_desk_cases_opened", "opened_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    reason: Mapped[str] = mapped_column(String(80))
    country: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(20))
    owner: Mapped[str] = mapped_column(String(120))
    contact_count: Mapped[int] = mapped_column(Integer)
    first_contact_id: Mapped[str] = mapped_column(String(200))
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Contact(Base):
    """One interaction with a member on one channel; its ``id`` is the caller's idempotency key."""

    __tablename__ = "desk_contacts"
    __table_args__ = (
        CheckConstraint("channel IN ('phone', 'email', 'chat', 'social', 'web', 'letter')", name="channel"),
        CheckConstraint("direction IN ('inbound', 'outbound')", name="direction"),
        CheckConstraint(
            "outcome IN ('resolved', 'pending', 'transferred', 'callback_scheduled', 'escalated')",
            name="outcome",
        ),
        CheckConstraint("ended_at >= started_at", name="ends_after_start"),
        Index("ix_desk_contacts_member_started", "member_id", "started_at"),
        Index("ix_desk_contacts_member_reason_started", "member_id", "reason", "started_at"),
        Index("ix_desk_contacts_case", "case_id"),
        # Channel routing reads one reason's contacts over a window.
        Index("ix_desk_contacts_reason_started", "reason", "started_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    case_id: Mapped[str] = mapped_column(ForeignKey("desk_cases.id"))
    channel: Mapped[str] = mapped_column(String(20))
    direction: Mapped[str] = mapped_column(String(10))
    agent: Mapped[str] = mapped_column(String(120))
    team: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    ended_at: Mapped[datetime] = mapped_column(UtcDateTime())
    notes: Mapped[str] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CardReplacement(Base):
    """An emergency card order and its clock against the promise made when it was ordered."""

    __tablename__ = "desk_card_replacements"
    __table_args__ = (
        CheckConstraint("status IN ('ordered', 'dispatched', 'delivered')", name="status"),
        CheckConstraint("promise_hours > 0", name="promise_positive"),
        Index("ix_desk_card_replacements_status_due", "status", "due_at"),
        Index("ix_desk_card_replacements_member", "member_id", "ordered_at"),
        Index("ix_desk_card_replacements_ordered", "ordered_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    # Members are addressed by a reference that never changes: kept here so the at-risk and
    # breached lists name the member without reaching into another domain's table.
    member_ref: Mapped[str] = mapped_column(String(64))
    city: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(2))
    address: Mapped[str] = mapped_column(Text)
    city_team: Mapped[bool] = mapped_column(Boolean)
    promise_hours: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(20))
    ordered_at: Mapped[datetime] = mapped_column(UtcDateTime())
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    dispatched_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Communication(Base):
    """Something the brand sent a member (statement, marketing, incident notice, survey invitation)."""

    __tablename__ = "desk_communications"
    __table_args__ = (
        CheckConstraint("language IN ('fr', 'en')", name="language"),
        Index("ix_desk_communications_member_sent", "member_id", "sent_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(20))
    template: Mapped[str] = mapped_column(String(120))
    channel: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(2))
    subject: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text)
    sent_at: Mapped[datetime] = mapped_column(UtcDateTime())
    source: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ContactPreference(Base):
    """How a member wants to be approached, set by the member or an agent."""

    __tablename__ = "desk_contact_preferences"
    __table_args__ = (CheckConstraint("mode IN ('in_a_hurry', 'has_time', 'leave_me_alone')", name="mode"),)

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    mode: Mapped[str] = mapped_column(String(20))
    preferred_channel: Mapped[str | None] = mapped_column(String(20), nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(120))


class BenefitUsage(Base):
    """A member used a card benefit (a lounge visit, a claim, a concierge request); ``id`` is the
    caller's idempotency key. Which contact it is credited to is computed when reported."""

    __tablename__ = "desk_benefit_usages"
    __table_args__ = (
        Index("ix_desk_benefit_usages_member_benefit_used", "member_id", "benefit", "used_at"),
        Index("ix_desk_benefit_usages_used", "used_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    benefit: Mapped[str] = mapped_column(String(60))
    used_at: Mapped[datetime] = mapped_column(UtcDateTime())
    source: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class BenefitExplanation(Base):
    """An agent explained a benefit to the member at a contact: once per (contact, benefit).

    ``member_id``, ``agent`` and ``explained_at`` (the contact's start) are copied from the
    contact so attribution reads one table.
    """

    __tablename__ = "desk_benefit_explanations"
    __table_args__ = (
        Index("ix_desk_benefit_explanations_member_benefit", "member_id", "benefit", "explained_at"),
        Index("ix_desk_benefit_explanations_explained", "explained_at"),
    )

    contact_id: Mapped[str] = mapped_column(ForeignKey("desk_contacts.id"), primary_key=True)
    benefit: Mapped[str] = mapped_column(String(60), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    agent: Mapped[str] = mapped_column(String(120))
    explained_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Callback(Base):
    """A call-back booked for a member: the desk phones the member at ``scheduled_for`` about
    ``reason``; completed by the contact that made the call. ``id`` is the caller's idempotency key."""

    __tablename__ = "desk_callbacks"
    __table_args__ = (
        CheckConstraint("status IN ('scheduled', 'completed')", name="status"),
        Index("ix_desk_callbacks_status_scheduled", "status", "scheduled_for"),
        Index("ix_desk_callbacks_member", "member_id", "scheduled_for"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    member_ref: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(80))
    phone: Mapped[str] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(20))
    scheduled_for: Mapped[datetime] = mapped_column(UtcDateTime())
    booked_by: Mapped[str] = mapped_column(String(120))
    booked_at: Mapped[datetime] = mapped_column(UtcDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    contact_id: Mapped[str | None] = mapped_column(ForeignKey("desk_contacts.id"), nullable=True)


class Incident(Base):
    """Something broke for a set of customers: declared by an operator, told to each of them.

    ``affects`` keeps the targeting rule as given; the affected members are those with an
    ``initial`` notice, fixed when the incident is declared.
    """

    __tablename__ = "desk_incidents"
    __table_args__ = (CheckConstraint("status IN ('active', 'resolved')", name="status"),)

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    title_fr: Mapped[str] = mapped_column(String(300))
    title_en: Mapped[str] = mapped_column(String(300))
    body_fr: Mapped[str] = mapped_column(Text)
    body_en: Mapped[str] = mapped_column(Text)
    since: Mapped[datetime] = mapped_column(UtcDateTime())
    affects: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20))
    affected_count: Mapped[int] = mapped_column(Integer)
    declared_by: Mapped[str] = mapped_column(String(120))
    declared_at: Mapped[datetime] = mapped_column(UtcDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class IncidentNotice(Base, MailRetryColumns):
    """One email owed to one member about one incident: this table is the mail outbox.

    Written in the transaction that declares, updates or resolves the incident; the relay sends
    each ``pending`` row and marks it ``sent`` in the transaction that logs the communication. A row
    the relay refused is retried at ``next_attempt_at`` (temporary failure) or ends ``failed`` with
    the relay's answer in ``last_error`` (see ``common.mail``).
    ``id`` is ``<incident>/<step>/<member id>`` (step: ``initial``, ``update:<update id>`` or
    ``resolution``), so a step can never be queued twice for a member, and the email's
    Message-ID is derived from it.
    """

    __tablename__ = "desk_incident_notices"
    __table_args__ = (
        CheckConstraint("kind IN ('initial', 'update', 'resolution')", name="kind"),
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        CheckConstraint("language IN ('fr', 'en')", name="language"),
        Index("ix_desk_incident_notices_status_created", "status", "created_at"),
        Index("ix_desk_incident_notices_member", "member_id", "incident_id"),
        Index("ix_desk_incident_notices_incident", "incident_id", "kind"),
    )

    id: Mapped[str] = mapped_column(String(520), primary_key=True)
    incident_id: Mapped[str] = mapped_column(ForeignKey("desk_incidents.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    kind: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(2))
    subject: Mapped[str] = mapped_column(String(400))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ConciergeRequest(Base):
    """A premium member's request to the concierge (a table, flowers, tickets, a trip…).

    ``id`` is the caller's idempotency key; open → in_progress → solved | cancelled. Solved
    requests are searchable by words (SQLite: the ``desk_concierge_fts`` FTS5 table written on
    solve; PostgreSQL: full text over title, details and solution).
    """

    __tablename__ = "desk_concierge_requests"
    __table_args__ = (
        CheckConstraint(
            "category IN ('restaurant', 'flowers', 'tickets', 'travel', 'gifts', 'events', 'other')",
            name="category",
        ),
        CheckConstraint("status IN ('open', 'in_progress', 'solved', 'cancelled')", name="status"),
        Index("ix_desk_concierge_requests_status_due", "status", "due_at"),
        Index("ix_desk_concierge_requests_member", "member_id", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    member_ref: Mapped[str] = mapped_column(String(64))
    category: Mapped[str] = mapped_column(String(20))
    title: Mapped[str] = mapped_column(String(300))
    details: Mapped[str] = mapped_column(Text)
    city: Mapped[str] = mapped_column(String(120))
    country: Mapped[str] = mapped_column(String(2))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20))
    partner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    cost: Mapped[Decimal | None] = mapped_column(Numeric(12, 2), nullable=True)
    solution: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_by: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class MemberTastes(Base):
    """What the concierge knows a member likes and dislikes, shown on each new request."""

    __tablename__ = "desk_member_tastes"

    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    notes: Mapped[str] = mapped_column(Text)
    likes: Mapped[list[str]] = mapped_column(JSON)
    dislikes: Mapped[list[str]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(120))


class ConciergePartner(Base):
    """A partner of the concierge network (a restaurant, a florist, a ticket broker…), rated 1-5."""

    __tablename__ = "desk_concierge_partners"
    __table_args__ = (
        CheckConstraint(
            "category IN ('restaurant', 'flowers', 'tickets', 'travel', 'gifts', 'events', 'other')",
            name="category",
        ),
        CheckConstraint("rating BETWEEN 1 AND 5", name="rating"),
        Index("ix_desk_concierge_partners_place", "country", "city", "category"),
    )

    code: Mapped[str] = mapped_column(String(120), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    city: Mapped[str] = mapped_column(String(120))
    category: Mapped[str] = mapped_column(String(20))
    rating: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str] = mapped_column(String(120))


class RecoveryCase(Base):
    """A service-recovery case: a member said the service failed (a detractor or poor answer) and
    the team of the rated contact owes them a call before ``due_at``. One case per answer
    (``answer_id`` unique), however often the ``survey.answered`` event is delivered; a case opened
    by hand has no answer. ``follow_up_*`` is the member's next scored answer after the case was
    closed recovered, for the report's "next answer a promoter"."""

    __tablename__ = "desk_recovery_cases"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        CheckConstraint("cause IN ('recommend', 'interaction', 'manual')", name="cause"),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('called_back', 'resolved', 'goodwill_given', 'customer_declined')",
            name="outcome",
        ),
        CheckConstraint(
            "(status = 'open' AND outcome IS NULL) OR (status = 'closed' AND outcome IS NOT NULL)",
            name="closed_outcome",
        ),
        Index("ix_desk_recovery_cases_status_due", "status", "due_at"),
        Index("ix_desk_recovery_cases_member_opened", "member_id", "opened_at"),
        Index("ix_desk_recovery_cases_opened", "opened_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    answer_id: Mapped[str | None] = mapped_column(String(220), unique=True, nullable=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    member_ref: Mapped[str] = mapped_column(String(64))
    contact_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    team: Mapped[str] = mapped_column(String(120))
    agent: Mapped[str | None] = mapped_column(String(120), nullable=True)
    channel: Mapped[str | None] = mapped_column(String(20), nullable=True)
    country: Mapped[str] = mapped_column(String(2))
    cause: Mapped[str] = mapped_column(String(20))
    recommend: Mapped[int | None] = mapped_column(Integer, nullable=True)
    interaction: Mapped[int | None] = mapped_column(Integer, nullable=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    opened_at: Mapped[datetime] = mapped_column(UtcDateTime())
    opened_by: Mapped[str] = mapped_column(String(120))
    due_at: Mapped[datetime] = mapped_column(UtcDateTime())
    status: Mapped[str] = mapped_column(String(20))
    outcome: Mapped[str | None] = mapped_column(String(30), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    closed_by: Mapped[str | None] = mapped_column(String(120), nullable=True)
    closed_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    follow_up_answer_id: Mapped[str | None] = mapped_column(String(220), nullable=True)
    follow_up_recommend: Mapped[int | None] = mapped_column(Integer, nullable=True)
    follow_up_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class GoodwillMail(Base, MailRetryColumns):
    """The mail owed to a member for a goodwill grant, in their language: the outbox of the goodwill
    mails, written once per grant (``id`` derived from the grant's key) when loyalty's
    ``goodwill.granted`` event reaches the desk. The relay sends each ``pending`` row and marks it
    ``sent`` in the transaction that logs the communication (as ``IncidentNotice``)."""

    __tablename__ = "desk_goodwill_mails"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        CheckConstraint("language IN ('fr', 'en')", name="language"),
        Index("ix_desk_goodwill_mails_status_created", "status", "created_at"),
        Index("ix_desk_goodwill_mails_member", "member_id"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    cause: Mapped[str] = mapped_column(String(20))
    language: Mapped[str] = mapped_column(String(2))
    subject: Mapped[str] = mapped_column(String(400))
    body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
