"""Tables of the offers domain: the catalogue, one decision per (offer, member, transaction) and the
propensity models. The ROI analysis and benefit monitoring read them (offers/roi*, views/)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from prevenance.common.base import Base, UtcDateTime

MemberId = BigInteger().with_variant(Integer(), "sqlite")


class Offer(Base):
    """A campaign: partner, reward, eligibility, caps, budget, validity, FR/EN texts.

    Decimals (costs, margin, holdout share) are stored as text so no float rounding touches money.
    """

    __tablename__ = "offers"
    __table_args__ = (
        CheckConstraint(
            "reward_kind IN ('bonus_points', 'category_multiplier', 'ecode')", name="reward_kind"
        ),
        CheckConstraint("status IN ('active', 'paused', 'ended')", name="status"),
        CheckConstraint("cap_per_member >= 1", name="cap_positive"),
        CheckConstraint("spent_points >= 0", name="spent_non_negative"),
        CheckConstraint("budget_points IS NULL OR spent_points <= budget_points", name="within_budget"),
        Index("ix_offers_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    partner_merchant: Mapped[str] = mapped_column(String(200))
    partner_category: Mapped[str | None] = mapped_column(String(60), nullable=True)
    reward_kind: Mapped[str] = mapped_column(String(30))
    reward: Mapped[dict[str, Any]] = mapped_column(JSON)
    eligibility: Mapped[dict[str, Any]] = mapped_column(JSON)
    cap_per_member: Mapped[int] = mapped_column(Integer, default=1)
    budget_points: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    spent_points: Mapped[int] = mapped_column(BigInteger, default=0)
    unit_cost_eur: Mapped[str] = mapped_column(String(40))
    margin_rate: Mapped[str] = mapped_column(String(40))
    expected_spend_eur: Mapped[str] = mapped_column(String(40), default="100")
    holdout_share: Mapped[str] = mapped_column(String(40), default="0.10")
    decision_days: Mapped[int] = mapped_column(Integer, default=30)
    valid_from: Mapped[datetime] = mapped_column(UtcDateTime())
    valid_until: Mapped[datetime] = mapped_column(UtcDateTime())
    title_fr: Mapped[str] = mapped_column(String(200))
    title_en: Mapped[str] = mapped_column(String(200))
    text_fr: Mapped[str] = mapped_column(Text)
    text_en: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="active")
    fingerprint: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class OfferDecision(Base):
    """What the decision did for one member on one transaction: offered it (treatment) or held it
    back (control, ``would_have_received``). Unique per (offer, member, transaction), so a replayed
    or redelivered transaction can never decide twice."""

    __tablename__ = "offer_decisions"
    __table_args__ = (
        UniqueConstraint(
            "offer_id", "member_id", "transaction_id", name="uq_offer_decisions_offer_member_tx"
        ),
        CheckConstraint("arm IN ('treatment', 'control')", name="arm"),
        CheckConstraint(
            "status IN ('made', 'activated', 'rewarded', 'expired', 'would_have_received')", name="status"
        ),
        CheckConstraint("(arm = 'control') = (status = 'would_have_received')", name="control_is_held_back"),
        Index("ix_offer_decisions_offer_arm", "offer_id", "arm"),
        Index("ix_offer_decisions_member_status", "member_id", "status"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    offer_id: Mapped[str] = mapped_column(ForeignKey("offers.id"))
    member_id: Mapped[int] = mapped_column(MemberId, ForeignKey("members.id"))
    transaction_id: Mapped[str] = mapped_column(String(200))
    arm: Mapped[str] = mapped_column(String(10))
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime())
    propensity: Mapped[float] = mapped_column(Float)
    expected_value: Mapped[float] = mapped_column(Float)
    model_version: Mapped[int | None] = mapped_column(Integer, nullable=True)
    status: Mapped[str] = mapped_column(String(20))
    activated_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    rewarded_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    reward_points: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    reward_transaction_id: Mapped[str | None] = mapped_column(String(200), nullable=True)


class OfferModel(Base):
    """A trained propensity model: feature names, standardisation and coefficients, its metrics."""

    __tablename__ = "offer_models"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    features: Mapped[list[str]] = mapped_column(JSON)
    coefficients: Mapped[dict[str, Any]] = mapped_column(JSON)
    metrics: Mapped[dict[str, Any]] = mapped_column(JSON)


class ProgrammeHoldout(Base):
    """A period of the programme-wide holdout: a few percent of members, chosen by a salted hash,
    receive no marketing offer at all, so the whole programme's incremental value can be measured.

    The salt changes only when the operator starts a new period (never for a running one), and a
    period runs at least ``min_days`` (150 by default) before another may replace it. At most one
    period is open (``ended_at`` null): a partial unique index says so on both databases.
    """

    __tablename__ = "offer_programme_holdouts"
    __table_args__ = (
        CheckConstraint("min_days >= 1", name="min_days_positive"),
        Index(
            "uq_offer_programme_holdouts_open",
            "open_marker",
            unique=True,
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    salt: Mapped[str] = mapped_column(String(64))
    share: Mapped[str] = mapped_column(String(40))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime())
    min_days: Mapped[int] = mapped_column(Integer, default=150)
    ended_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # 1 while the period is open, null once ended: the unique index allows one open period only.
    open_marker: Mapped[int | None] = mapped_column(Integer, nullable=True)
    started_by: Mapped[str] = mapped_column(String(200))


class OfferSuppression(Base):
    """An offer the decision would have made (or held back, in the control arm) but suppressed, with
    why: ``incident-active`` while an incident affects the member. Recorded in both arms alike, so
    the experiment's comparison is not biased by whom the suppression removed. Unique per (offer,
    member, transaction), like the decision it replaces."""

    __tablename__ = "offer_suppressions"
    __table_args__ = (
        UniqueConstraint(
            "offer_id", "member_id", "transaction_id", name="uq_offer_suppressions_offer_member_tx"
        ),
        CheckConstraint("arm IN ('treatment', 'control')", name="arm"),
        Index("ix_offer_suppressions_member", "member_id", "decided_at"),
    )

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    offer_id: Mapped[str] = mapped_column(ForeignKey("offers.id"))
    member_id: Mapped[int] = mapped_column(MemberId, ForeignKey("members.id"))
    transaction_id: Mapped[str] = mapped_column(String(200))
    arm: Mapped[str] = mapped_column(String(10))
    reason: Mapped[str] = mapped_column(String(40))
    decided_at: Mapped[datetime] = mapped_column(UtcDateTime())
