"""Tables of the rewards programme. The ledger (accounts, postings) is append-only: postings are
never updated or deleted, and every invariant that a constraint can hold is a constraint."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from prevenance.common.base import Base, UtcDateTime
from prevenance.common.idempotency import KEY_MAX
from prevenance.loyalty.ledger_bounds import LEDGER_BALANCE_LIMIT

BigId = BigInteger().with_variant(Integer, "sqlite")


class ProgrammeVersion(Base):
    """Every version of the programme document; the newest is in force."""

    __tablename__ = "programme_versions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str] = mapped_column(String(120))


class Account(Base):
    """One account per (owner, unit). ``balance`` is kept for member accounts (checked by the
    audit against the sum of postings); system accounts are summed on demand, so the programme's
    issuance account is never a hot row that serialises every earn. The ledger keeps every balance
    within ±``LEDGER_BALANCE_LIMIT``; the check is the database's last line of defence (on SQLite a
    trigger also refuses a balance that is not an integer: see migration ``balance_limit``)."""

    __tablename__ = "accounts"
    __table_args__ = (
        CheckConstraint("unit IN ('points', 'miles')", name="unit"),
        CheckConstraint(
            f"balance BETWEEN -{LEDGER_BALANCE_LIMIT} AND {LEDGER_BALANCE_LIMIT}", name="balance_within_limit"
        ),
        UniqueConstraint("member_id", "unit", name="uq_accounts_member_unit"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    code: Mapped[str] = mapped_column(String(120), unique=True)
    unit: Mapped[str] = mapped_column(String(10))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    tracks_balance: Mapped[bool] = mapped_column(Boolean, default=False)
    balance: Mapped[int] = mapped_column(BigInteger, default=0)


class Posting(Base):
    """An integer amount moved from one account to another, with why and for what."""

    __tablename__ = "postings"
    __table_args__ = (
        CheckConstraint("amount > 0", name="amount_positive"),
        CheckConstraint("debit_account_id <> credit_account_id", name="distinct_accounts"),
        Index("ix_postings_member_id_id", "member_id", "id"),
        Index("ix_postings_debit", "debit_account_id"),
        Index("ix_postings_credit", "credit_account_id"),
        Index("ix_postings_reference", "reference"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(KEY_MAX), unique=True)
    debit_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    credit_account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    amount: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(40))
    reference: Mapped[str] = mapped_column(String(200))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"), nullable=True)
    balance_after: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class CardTransaction(Base):
    """A card payment and what it earned; ``units_current`` follows refunds."""

    __tablename__ = "card_transactions"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="amount_positive"),
        CheckConstraint("refunded_minor >= 0 AND refunded_minor <= amount_minor", name="refund_bounds"),
        Index("ix_card_transactions_member_occurred", "member_id", "occurred_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    merchant: Mapped[str] = mapped_column(String(200))
    category: Mapped[str] = mapped_column(String(60))
    occurred_at: Mapped[datetime] = mapped_column(UtcDateTime())
    fx_rate: Mapped[str] = mapped_column(String(40))
    amount_eur: Mapped[str] = mapped_column(String(40))
    product: Mapped[str] = mapped_column(String(40))
    unit: Mapped[str] = mapped_column(String(10))
    units_per_euro: Mapped[int] = mapped_column(Integer)
    minimum_earn: Mapped[int] = mapped_column(Integer)
    units_earned: Mapped[int] = mapped_column(BigInteger)
    units_current: Mapped[int] = mapped_column(BigInteger)
    refunded_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Refund(Base):
    """A refund of part or all of a card transaction."""

    __tablename__ = "refunds"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    transaction_id: Mapped[str] = mapped_column(ForeignKey("card_transactions.id"), index=True)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    units_reversed: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Redemption(Base):
    """A use of points: catalogue, e-code, partner transfer or travel (held, then confirmed)."""

    __tablename__ = "redemptions"
    __table_args__ = (
        CheckConstraint("kind IN ('catalogue', 'ecode', 'transfer', 'travel')", name="kind"),
        CheckConstraint("status IN ('completed', 'held', 'confirmed', 'voided', 'expired')", name="status"),
        Index("ix_redemptions_status_expires", "status", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    points: Mapped[int] = mapped_column(BigInteger)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    resolved_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class CatalogueItem(Base):
    """A good priced in points; stock can never go below zero."""

    __tablename__ = "catalogue_items"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="stock_non_negative"),
        CheckConstraint("points > 0", name="points_positive"),
    )

    sku: Mapped[str] = mapped_column(String(80), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    points: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class Partner(Base):
    """An airline, hotel or merchant partner; transfers go in whole blocks."""

    __tablename__ = "partners"
    __table_args__ = (
        CheckConstraint("kind IN ('airline', 'hotel', 'merchant')", name="kind"),
        CheckConstraint("points_per_block > 0 AND units_per_block > 0", name="blocks_positive"),
    )

    code: Mapped[str] = mapped_column(String(60), primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200))
    points_per_block: Mapped[int] = mapped_column(Integer)
    units_per_block: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class ECode(Base):
    """One online discount code of a partner's pool; handed out at most once."""

    __tablename__ = "ecodes"
    __table_args__ = (
        UniqueConstraint("partner_code", "code", name="uq_ecodes_partner_code"),
        Index("ix_ecodes_available", "partner_code", "points", "redemption_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    partner_code: Mapped[str] = mapped_column(ForeignKey("partners.code"))
    points: Mapped[int] = mapped_column(BigInteger)
    code: Mapped[str] = mapped_column(String(200))
    redemption_id: Mapped[str | None] = mapped_column(String(200), nullable=True, unique=True)
    loaded_at: Mapped[datetime] = mapped_column(UtcDateTime())
    issued_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class Referral(Base):
    """A referral: the referrer's bonus is credited once, at the referee's first transaction."""

    __tablename__ = "referrals"
    __table_args__ = (
        CheckConstraint("referrer_id <> referee_id", name="not_self"),
        CheckConstraint("status IN ('pending', 'rewarded')", name="status"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    referee_id: Mapped[int] = mapped_column(ForeignKey("members.id"), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    bonus: Mapped[int] = mapped_column(BigInteger)
    unit: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    rewarded_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    rewarding_transaction_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class MilesExport(Base):
    """A file of co-brand miles sent to an airline partner for one date."""

    __tablename__ = "miles_exports"
    __table_args__ = (UniqueConstraint("partner_code", "export_date", name="uq_miles_exports_partner_date"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    partner_code: Mapped[str] = mapped_column(String(60))
    export_date: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    line_count: Mapped[int] = mapped_column(Integer)
    total_miles: Mapped[int] = mapped_column(BigInteger)


class MilesExportLine(Base):
    """One miles posting sent to the airline; its primary key makes a second sending impossible."""

    __tablename__ = "miles_export_lines"

    posting_id: Mapped[int] = mapped_column(ForeignKey("postings.id"), primary_key=True)
    export_id: Mapped[int] = mapped_column(ForeignKey("miles_exports.id"), index=True)
    member_ref: Mapped[str] = mapped_column(String(64))
    miles: Mapped[int] = mapped_column(BigInteger)


class ExpiredLot(Base):
    """Which earn posting (lot) an expiry posting consumed, and how many of its points: the
    primary key keeps a lot from being written twice into one expiry."""

    __tablename__ = "expired_lots"
    __table_args__ = (
        CheckConstraint("points > 0", name="points_positive"),
        Index("ix_expired_lots_earn_posting", "earn_posting_id"),
    )

    expiry_posting_id: Mapped[int] = mapped_column(ForeignKey("postings.id"), primary_key=True)
    earn_posting_id: Mapped[int] = mapped_column(ForeignKey("postings.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    expired_on: Mapped[date] = mapped_column(Date)


class ExpiryWarning(Base):
    """One mail owed to a member about points expiring soon: this table is its mail outbox.

    ``key`` is unique (``lot:<posting>:<day>`` or ``inactivity:<member>:<day>``), so a lot is
    never warned about twice for one expiry day whatever runs race; the relay sends ``pending``
    rows and marks them ``sent`` (see ``common.mail``)."""

    __tablename__ = "expiry_warnings"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'sent', 'failed')", name="status"),
        CheckConstraint("language IN ('fr', 'en')", name="language"),
        CheckConstraint("points > 0", name="points_positive"),
        Index("ix_expiry_warnings_status_created", "status", "created_at"),
        Index("ix_expiry_warnings_member", "member_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    earn_posting_id: Mapped[int | None] = mapped_column(ForeignKey("postings.id"), nullable=True)
    points: Mapped[int] = mapped_column(BigInteger)
    expires_on: Mapped[date] = mapped_column(Date)
    language: Mapped[str] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(500), nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


class GoodwillGrant(Base):
    """A goodwill gesture to one member for one cause (a late emergency card, an incident): points
    (with their posting, reason ``goodwill``), a statement credit (recorded here: the issuer credits
    the statement) or nothing when the monthly cap was reached (``capped``). One row per cause and
    member (``key`` unique): a repeated or concurrent grant finds it."""

    __tablename__ = "goodwill_grants"
    __table_args__ = (
        CheckConstraint("form IN ('points', 'credit', 'capped')", name="form"),
        CheckConstraint("cause IN ('late_card', 'incident')", name="cause"),
        CheckConstraint("points >= 0 AND credit_minor >= 0", name="amounts"),
        Index("ix_goodwill_grants_member_month", "member_id", "month"),
        Index("ix_goodwill_grants_month", "month"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    key: Mapped[str] = mapped_column(String(200), unique=True)
    cause: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str] = mapped_column(String(200))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    form: Mapped[str] = mapped_column(String(10))
    points: Mapped[int] = mapped_column(BigInteger)
    credit_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    cost_eur: Mapped[Decimal] = mapped_column(Numeric(14, 4))
    country: Mapped[str] = mapped_column(String(2))
    product: Mapped[str] = mapped_column(String(40))
    team: Mapped[str | None] = mapped_column(String(120), nullable=True)
    month: Mapped[str] = mapped_column(String(7))
    posting_id: Mapped[int | None] = mapped_column(BigId, nullable=True)
    granted_by: Mapped[str] = mapped_column(String(120))
    granted_at: Mapped[datetime] = mapped_column(UtcDateTime())
