"""Behavioural features of a member for the propensity model: recency, frequency, spend (overall,
at the offer's partner, in its category) and benefits used.

One aggregate query per member on the decision path (``load_history``, on the card-transaction
index ``(member_id, occurred_at)``); the training set computes the same numbers for every member
at once with Polars (``history_frame``). ``feature_vector`` is the one place both meet, so the model
is trained on exactly what it is scored on. Card transactions are loyalty's, read through
``loyalty.history`` (offers may depend on loyalty, not the other way round).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from prevenance.loyalty import history

FEATURES = (
    "log_recency_days",
    "log_transactions_90d",
    "log_spend_90d_eur",
    "log_partner_spend_90d_eur",
    "log_category_spend_90d_eur",
    "partner_share_90d",
    "log_benefits_used_90d",
)
WINDOW_DAYS = 90
HISTORY_DAYS = 365
NO_HISTORY_RECENCY = float(HISTORY_DAYS)

# Given by the composition layer (benefits are desk data, which offers may not import):
# (session, member_id, since) -> how many benefits the member used since then.
BenefitsProvider = Callable[[Session, int, datetime], int]
# (session, since, until) -> (member id, used at) of every benefit usage in the period, for training.
BenefitEventsProvider = Callable[[Session, datetime, datetime], list[tuple[int, datetime]]]


def feature_vector(
    *,
    recency_days: float | None,
    transactions_90d: float,
    spend_90d: float,
    partner_spend_90d: float,
    category_spend_90d: float,
    benefits_used_90d: float,
) -> list[float]:
    """The model's inputs, in ``FEATURES`` order (logs tame the long tails of spend)."""
    recency = NO_HISTORY_RECENCY if recency_days is None else min(max(recency_days, 0.0), NO_HISTORY_RECENCY)
    share = partner_spend_90d / spend_90d if spend_90d > 0 else 0.0
    return [
        math.log1p(recency),
        math.log1p(transactions_90d),
        math.log1p(spend_90d),
        math.log1p(partner_spend_90d),
        math.log1p(category_spend_90d),
        share,
        math.log1p(benefits_used_90d),
    ]


@dataclass(frozen=True)
class MemberHistory:
    """A member's card payments in the year before ``as_of``, summed by category and merchant."""

    as_of: datetime
    first_at: datetime | None = None
    last_at: datetime | None = None
    transactions_90d: int = 0
    spend_90d: float = 0.0
    by_category_90d: dict[str, float] = field(default_factory=dict)
    by_merchant_90d: dict[str, float] = field(default_factory=dict)
    benefits_used_90d: int = 0

    @property
    def recency_days(self) -> float | None:
        return None if self.last_at is None else (self.as_of - self.last_at).total_seconds() / 86400

    @property
    def history_days(self) -> float | None:
        return None if self.first_at is None else (self.as_of - self.first_at).total_seconds() / 86400

    def vector(self, *, merchant_key: str, category: str | None) -> list[float]:
        """Features of this member for an offer at ``merchant_key`` (casefolded) in ``category``."""
        return feature_vector(
            recency_days=self.recency_days,
            transactions_90d=self.transactions_90d,
            spend_90d=self.spend_90d,
            partner_spend_90d=self.by_merchant_90d.get(merchant_key, 0.0),
            category_spend_90d=self.by_category_90d.get(category.casefold(), 0.0) if category else 0.0,
            benefits_used_90d=self.benefits_used_90d,
        )


def load_history(
    session: Session,
    *,
    member_id: int,
    as_of: datetime,
    exclude_transaction: str | None = None,
    benefits: BenefitsProvider | None = None,
) -> MemberHistory:
    """The member's history before ``as_of`` in one grouped query (the current payment left out)."""
    window_start = as_of - timedelta(days=WINDOW_DAYS)
    rows = history.member_spend_by_merchant(
        session,
        member_id=member_id,
        history_start=as_of - timedelta(days=HISTORY_DAYS),
        window_start=window_start,
        as_of=as_of,
        exclude_transaction=exclude_transaction,
    )
    first: datetime | None = None
    last: datetime | None = None
    count, spend = 0, 0.0
    by_category: dict[str, float] = {}
    by_merchant: dict[str, float] = {}
    for category, merchant, n, total, low, high in rows:
        total = float(total or 0.0)
        count += int(n or 0)
        spend += total
        key = str(category).casefold()
        by_category[key] = by_category.get(key, 0.0) + total
        by_merchant[str(merchant)] = by_merchant.get(str(merchant), 0.0) + total
        first = low if first is None or low < first else first
        last = high if last is None or high > last else last
    used = benefits(session, member_id, window_start) if benefits is not None else 0
    return MemberHistory(
        as_of=as_of,
        first_at=first,
        last_at=last,
        transactions_90d=count,
        spend_90d=spend,
        by_category_90d=by_category,
        by_merchant_90d=by_merchant,
        benefits_used_90d=used,
    )
