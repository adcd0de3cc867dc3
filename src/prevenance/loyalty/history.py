"""The card-transaction history as the domains above loyalty read it (offers' features, its
training set). Loyalty's table stays loyalty's: read here, never written from above.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Float, bindparam, case, cast, func, select
from sqlalchemy.orm import Session

from prevenance.loyalty.tables import CardTransaction

_T = CardTransaction
_RECENT = _T.occurred_at >= bindparam("p_window_start")
# Built once (on the offer decision of every earning payment): building and keying the statement
# cost as much as running it.
_HISTORY = (
    select(
        _T.category,
        func.lower(_T.merchant),
        func.sum(case((_RECENT, 1), else_=0)),
        func.sum(case((_RECENT, cast(_T.amount_eur, Float)), else_=0.0)),
        func.min(_T.occurred_at),
        func.max(_T.occurred_at),
    )
    .where(
        _T.member_id == bindparam("p_member"),
        _T.occurred_at >= bindparam("p_history_start"),
        _T.occurred_at <= bindparam("p_as_of"),
        _T.id != bindparam("p_exclude"),
    )
    .group_by(_T.category, func.lower(_T.merchant))
)


def member_spend_by_merchant(
    session: Session,
    *,
    member_id: int,
    history_start: datetime,
    window_start: datetime,
    as_of: datetime,
    exclude_transaction: str | None = None,
) -> Sequence[Any]:
    """One member's payments in ``[history_start, as_of]`` grouped by (category, lower-cased
    merchant): the count and the euro spend from ``window_start`` on, the first and last payment.
    One grouped query on the index ``(member_id, occurred_at)``."""
    return session.execute(
        _HISTORY,
        {
            "p_member": member_id,
            "p_window_start": window_start,
            "p_history_start": history_start,
            "p_as_of": as_of,
            "p_exclude": exclude_transaction or "",  # no transaction id is empty
        },
    ).all()


def list_payments(session: Session, *, start: datetime, end: datetime) -> Sequence[Any]:
    """(member id, merchant, category, euro amount as a float, occurred at) of every payment in
    ``[start, end)``."""
    t = CardTransaction
    return session.execute(
        select(t.member_id, t.merchant, t.category, cast(t.amount_eur, Float), t.occurred_at).where(
            t.occurred_at >= start, t.occurred_at < end
        )
    ).all()


def payment_bounds(session: Session) -> tuple[datetime, datetime] | None:
    """First and last payment date in the database, or None when there is none."""
    low, high = session.execute(
        select(func.min(CardTransaction.occurred_at), func.max(CardTransaction.occurred_at))
    ).one()
    return (low, high) if low is not None else None
