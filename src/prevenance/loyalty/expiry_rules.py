"""Points expiry as a policy of the programme: lots, first in first out, and what is due. No I/O.

The programme never expires points unless its document says so (``points_expiry``, kind ``none``
by default). Two policies exist:

- ``after_earn``: each credit is a *lot* that expires ``months`` calendar months after the day it
  was credited; spending consumes the oldest lots first (FIFO), so what expires is what was kept
  longest.
- ``inactivity``: the whole balance expires ``months`` months after the member's last activity (a
  posting the member caused: an earn, a redemption, a refund, a referral, an offer reward).

How the other movements meet the lots (chosen here, tested in ``tests/unit/loyalty/test_expiry_rules``):

- A **travel hold** debits the member at once (into escrow), so held points are in no lot and can
  never expire while held. A **release** (void, or a hold left unconfirmed) gives the points back
  to the very lots the hold took them from, with their original dates: holding points does not make
  them younger. A lot past its date when the points come back expires at the next run.
- A **card refund** takes back what its own transaction earned: it consumes that transaction's lot
  first (the refunded purchase's points), then the oldest lots. A refund beyond the balance leaves
  a *deficit* that the next credits pay first (the points were already spent).
- An **expiry** consumes exactly the lots recorded with it (``expired_lots``).
- Expiry never takes more than the balance: the lots' remaining points sum to the balance when it
  is positive and to zero otherwise.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from prevenance.common.rules import FieldError

EXPIRY_KINDS = ("none", "after_earn", "inactivity")
EXPIRY_KEYS = ("kind", "months", "warning_days")
DEFAULT_WARNING_DAYS = 30
MAX_MONTHS = 1200

HOLD_REASON = "travel_hold"
RELEASE_REASONS = ("travel_void", "travel_hold_expired")
REFUND_REASON = "refund"
EXPIRY_REASON = "expiry"
# Postings the member did not cause: they never count as activity under the inactivity policy.
NOT_ACTIVITY = ("expiry", "travel_hold_expired", "goodwill")


class ExpiryPolicyError(FieldError):
    """The ``points_expiry`` section of the programme is not valid."""


@dataclass(frozen=True)
class ExpiryPolicy:
    """The programme's points expiry: ``none``, ``after_earn`` or ``inactivity`` after ``months``."""

    kind: str = "none"
    months: int = 0
    warning_days: int = DEFAULT_WARNING_DAYS


NO_EXPIRY = ExpiryPolicy()


def parse_policy(section: Any, path: str = "points_expiry") -> ExpiryPolicy:
    """Validate ``points_expiry``: ``{"kind": "none"}``, or ``{"kind": "after_earn"|"inactivity",
    "months": N}`` with an optional ``warning_days`` (30)."""
    if section is None:
        return NO_EXPIRY
    if not isinstance(section, Mapping):
        raise ExpiryPolicyError(f"{path} must be an object", path)
    for key in section:
        if key not in EXPIRY_KEYS:
            raise ExpiryPolicyError(
                f"unknown key {key!r} in {path} (allowed: {', '.join(EXPIRY_KEYS)})", f"{path}.{key}"
            )
    kind = section.get("kind")
    if kind not in EXPIRY_KINDS:
        raise ExpiryPolicyError(f"{path}.kind must be one of {', '.join(EXPIRY_KINDS)}", f"{path}.kind")
    warning = section.get("warning_days", DEFAULT_WARNING_DAYS)
    if isinstance(warning, bool) or not isinstance(warning, int) or not 0 <= warning <= 366:
        raise ExpiryPolicyError(
            f"{path}.warning_days must be an integer from 0 to 366", f"{path}.warning_days"
        )
    if kind == "none":
        if "months" in section:
            raise ExpiryPolicyError(f"{path}.months has no meaning when kind is none", f"{path}.months")
        return ExpiryPolicy(warning_days=warning)
    months = section.get("months")
    if isinstance(months, bool) or not isinstance(months, int) or not 1 <= months <= MAX_MONTHS:
        raise ExpiryPolicyError(f"{path}.months must be an integer from 1 to {MAX_MONTHS}", f"{path}.months")
    return ExpiryPolicy(kind=str(kind), months=months, warning_days=warning)


def add_months(day: date, months: int) -> date:
    """The same day ``months`` later, on the month's last day when it is shorter (31 Jan + 1 = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


# --- lots ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Movement:
    """One posting on the member's points account: ``amount`` > 0 credits it, < 0 debits it."""

    posting_id: int
    reason: str
    reference: str
    amount: int
    at: datetime


@dataclass
class Lot:
    """Points credited by one posting and still in the account."""

    posting_id: int
    reason: str
    reference: str
    credited_at: datetime
    points: int


@dataclass
class LotState:
    """The member's lots after replaying the postings, oldest first."""

    lots: list[Lot] = field(default_factory=list)
    deficit: int = 0
    last_activity: datetime | None = None
    # Per travel hold (its reference): the lots it took and how many points from each.
    held: dict[str, list[tuple[int, int]]] = field(default_factory=dict)

    @property
    def available(self) -> int:
        return sum(lot.points for lot in self.lots)

    @property
    def balance(self) -> int:
        return self.available - self.deficit


def _take(lot: Lot, wanted: int) -> int:
    taken = min(lot.points, wanted)
    lot.points -= taken
    return taken


def _consume(state: LotState, amount: int, *, first: Iterable[Lot] = ()) -> list[tuple[int, int]]:
    """Take ``amount`` from ``first`` then the oldest lots; what cannot be taken becomes deficit."""
    taken: list[tuple[int, int]] = []
    left = amount
    for lot in [*first, *state.lots]:
        if left == 0:
            break
        got = _take(lot, left)
        if got:
            taken.append((lot.posting_id, got))
            left -= got
    state.deficit += left
    return taken


def _credit(state: LotState, movement: Movement, amount: int) -> None:
    paid = min(state.deficit, amount)
    state.deficit -= paid
    if amount - paid:
        state.lots.append(
            Lot(movement.posting_id, movement.reason, movement.reference, movement.at, amount - paid)
        )


def replay(
    movements: Sequence[Movement], expired: Mapping[int, Sequence[tuple[int, int]]] | None = None
) -> LotState:
    """The lots left after the postings, in posting order. ``expired`` maps an expiry posting to
    the lots (earn posting id, points) it recorded."""
    state = LotState()
    by_id: dict[int, Lot] = {}
    expired = expired or {}
    for movement in sorted(movements, key=lambda m: m.posting_id):
        if movement.reason not in NOT_ACTIVITY:
            state.last_activity = max(state.last_activity or movement.at, movement.at)
        if movement.amount > 0:
            given_back = (
                state.held.pop(movement.reference, None) if movement.reason in RELEASE_REASONS else None
            )
            if given_back is None:
                _credit(state, movement, movement.amount)
                if state.lots and state.lots[-1].posting_id == movement.posting_id:
                    by_id[movement.posting_id] = state.lots[-1]
                continue
            left = movement.amount
            paid = min(state.deficit, left)
            state.deficit -= paid
            left -= paid
            for lot_id, points in given_back:
                back = min(points, left)
                if back and lot_id in by_id:
                    by_id[lot_id].points += back
                    left -= back
            if left:
                _credit(state, movement, left)
                if state.lots and state.lots[-1].posting_id == movement.posting_id:
                    by_id[movement.posting_id] = state.lots[-1]
            continue
        amount = -movement.amount
        if movement.reason == EXPIRY_REASON and movement.posting_id in expired:
            recorded = [by_id[lot_id] for lot_id, _ in expired[movement.posting_id] if lot_id in by_id]
            wanted = {lot_id: points for lot_id, points in expired[movement.posting_id]}
            left = amount
            for lot in recorded:
                got = _take(lot, min(wanted[lot.posting_id], left))
                left -= got
            if left:
                _consume(state, left)
        elif movement.reason == REFUND_REASON:
            own = [lot for lot in state.lots if lot.reference == movement.reference and lot.reason == "earn"]
            _consume(state, amount, first=own)
        else:
            taken = _consume(state, amount)
            if movement.reason == HOLD_REASON:
                state.held[movement.reference] = taken
    state.lots = [lot for lot in state.lots if lot.points > 0]
    return state


# --- what is due ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Due:
    """Points of one lot that expire (or will, for a warning) on ``expires_on``."""

    posting_id: int
    points: int
    expires_on: date


def expires_on(lot: Lot, state: LotState, policy: ExpiryPolicy) -> date | None:
    """The day a lot expires under the policy (None: never)."""
    if policy.kind == "after_earn":
        return add_months(lot.credited_at.date(), policy.months)
    if policy.kind == "inactivity" and state.last_activity is not None:
        return add_months(state.last_activity.date(), policy.months)
    return None


def due(state: LotState, policy: ExpiryPolicy, as_of: date) -> list[Due]:
    """The lots that have expired by the end of ``as_of``, oldest first, never more than the
    balance (nothing when the balance is zero or below)."""
    budget = max(state.balance, 0)
    found: list[Due] = []
    for lot in state.lots:
        day = expires_on(lot, state, policy)
        if day is None or day > as_of or budget == 0:
            continue
        points = min(lot.points, budget)
        budget -= points
        found.append(Due(lot.posting_id, points, day))
    return found


def warnings(state: LotState, policy: ExpiryPolicy, as_of: date) -> list[Due]:
    """The lots that will expire within ``warning_days`` after ``as_of`` (not yet due)."""
    if policy.kind == "none" or policy.warning_days == 0:
        return []
    horizon = as_of + timedelta(days=policy.warning_days)
    budget = max(state.balance, 0)
    found: list[Due] = []
    for lot in state.lots:
        day = expires_on(lot, state, policy)
        if day is None or not as_of < day <= horizon or budget == 0:
            continue
        points = min(lot.points, budget)
        budget -= points
        found.append(Due(lot.posting_id, points, day))
    return found


def warning_key(member_id: int, policy: ExpiryPolicy, item: Due) -> str:
    """What makes a warning unique: one per lot and expiry day (after the earn), one per member and
    expiry day (inactivity: the whole balance goes at once)."""
    if policy.kind == "inactivity":
        return f"inactivity:{member_id}:{item.expires_on.isoformat()}"
    return f"lot:{item.posting_id}:{item.expires_on.isoformat()}"
