"""A member's balances and movements (read side of the ledger)."""

from __future__ import annotations

import base64
import re
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from prevenance.common.inputs import BIGINT_MAX
from prevenance.common.problems import InvalidInput
from prevenance.customers import service as customers
from prevenance.loyalty import ledger
from prevenance.loyalty.tables import (
    Posting,
)


def get_balance(session: Session, *, member_ref: str) -> dict[str, Any]:
    """A member's points and miles."""
    member = customers.get_member(session, ref=member_ref)
    balances = ledger.balances_of(session, member_id=member.id, units=("points", "miles"))
    return {"member_ref": member.ref, **balances}


def _encode_cursor(posting_id: int) -> str:
    return base64.urlsafe_b64encode(f"p:{posting_id}".encode()).decode().rstrip("=")


# What ``_encode_cursor`` writes: a posting id, ASCII digits without sign or separators, inside a
# BIGINT. Anything else was made by hand: ``int()`` alone would take "+3", " 3", "1_0" or a Unicode
# digit, and a number past the column's range reached the database as an overflow (a 500).
_CURSOR = re.compile(r"p:([1-9][0-9]{0,18})")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        text = ""
    found = _CURSOR.fullmatch(text)
    if found is None or int(found.group(1)) > BIGINT_MAX:
        raise InvalidInput("cursor is not one this API gave out", field="cursor")
    return int(found.group(1))


_MOVEMENTS = (
    select(Posting)
    .where(Posting.member_id == bindparam("p_member"))
    .order_by(Posting.id.desc())
    .limit(bindparam("p_limit"))
)
"""Built once: the 360 and the member's movements ask it on every call."""
_MOVEMENTS_BEFORE = _MOVEMENTS.where(Posting.id < bindparam("p_before"))
_LATEST_MOVEMENTS = (
    select(Posting)
    .where(Posting.member_id == bindparam("p_member"))
    .order_by(Posting.created_at.desc(), Posting.id.desc())
    .limit(bindparam("p_limit"))
)


def list_movements(session: Session, *, member_ref: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """The member's postings, newest first, cursor-paginated; each says why and for what."""
    member = customers.get_member(session, ref=member_ref)
    params = {"p_member": member.id, "p_limit": limit + 1}
    if cursor:
        rows = list(session.scalars(_MOVEMENTS_BEFORE, {**params, "p_before": _decode_cursor(cursor)}))
    else:
        rows = list(session.scalars(_MOVEMENTS, params))
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "member_ref": member.ref,
        "items": _movement_items(session, member.id, rows),
        "next_cursor": _encode_cursor(rows[-1].id) if more else None,
    }


def list_latest_movements(session: Session, *, member_ref: str, limit: int) -> list[dict[str, Any]]:
    """The member's last postings by when they were made, newest first (what a member reads).

    Posting ids follow insertion, not time: a backfill or a settlement file posts an older
    purchase after newer ones, so the portal orders by the posting's instant.
    """
    member = customers.get_member(session, ref=member_ref)
    rows = session.scalars(_LATEST_MOVEMENTS, {"p_member": member.id, "p_limit": limit})
    return _movement_items(session, member.id, list(rows))


def _movement_items(session: Session, member_id: int, rows: list[Posting]) -> list[dict[str, Any]]:
    # Read, never create: a unit the member has no account in has no postings either.
    member_accounts = ledger.member_account_ids(session, member_id=member_id) if rows else set()
    return [
        {
            "id": row.id,
            "at": row.created_at.isoformat(),
            "reason": row.reason,
            "reference": row.reference,
            "unit": row.unit,
            "amount": row.amount if row.credit_account_id in member_accounts else -row.amount,
            "balance_after": row.balance_after,
        }
        for row in rows
    ]
