"""Transaction hooks: higher domains (offers) act on each earned payment without loyalty
importing them; ``prevenance.wiring`` installs them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.orm import Session

from prevenance.loyalty import ledger


@dataclass(frozen=True)
class EarnedTransaction:
    """A card payment just recorded, as a transaction hook sees it."""

    id: str
    member_id: int
    member_ref: str
    product: str
    merchant: str
    category: str
    amount_eur: Decimal
    points_earned: int
    unit: str
    occurred_at: datetime
    member_country: str
    member_language: str
    tier: str  # the card product's tier in the programme


class TransactionHook(Protocol):
    """Called inside the earn's transaction, after its postings; what it returns is merged into the
    response body (so an idempotent replay returns it too). It must not commit.

    A hook may carry an ``idle(session) -> bool`` attribute: true when it would answer None and
    write nothing for any earn right now (no live offer); the earn engine then skips it.
    """

    def __call__(
        self, session: Session, *, member_id: int, transaction: EarnedTransaction, now: datetime
    ) -> dict[str, Any] | None: ...


# Keyed by name so that installing the same hook again (each app, each consumer) replaces it.
_TRANSACTION_HOOKS: dict[str, TransactionHook] = {}

# The offers domain rewards members with points; the posting's reason says so.
OFFER_REWARD = "offer_reward"


def register_transaction_hook(hook: TransactionHook, *, name: str) -> None:
    """Run ``hook`` on every earning transaction from now on (replacing a hook of the same name)."""
    _TRANSACTION_HOOKS[name] = hook


def unregister_transaction_hook(name: str) -> None:
    """Stop running the hook of that name (no-op when absent)."""
    _TRANSACTION_HOOKS.pop(name, None)


def transaction_hooks() -> list[TransactionHook]:
    """The hooks every earn runs, in the order they were registered."""
    return list(_TRANSACTION_HOOKS.values())


def award_bonus(
    session: Session, *, member_id: int, points: int, reason: str, reference: str, key: str, now: datetime
) -> int:
    """Credit ``points`` from issuance to the member's points account, once per ``key`` (the posting's
    unique idempotency key); returns the balance after. Used by higher domains (offer rewards)."""
    if reason != OFFER_REWARD:
        raise ValueError(f"award_bonus posts {OFFER_REWARD!r} only, not {reason!r}")
    result = ledger.post(
        session,
        debit=ledger.system_account(session, name="issuance", unit="points"),
        credit=ledger.member_account(session, member_id=member_id, unit="points"),
        amount=points,
        reason=reason,
        reference=reference,
        key=key,
        now=now,
    )
    return result.balance_after or 0
