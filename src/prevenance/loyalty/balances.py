"""A member's balances and movements (read side of the ledger)."""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, case, select
from sqlalchemy.orm import Session, aliased

from prevenance.common.inputs import BIGINT_MAX
from prevenance.common.problems import InvalidInput
from prevenance.common.reads import Read
from prevenance.customers import service as customers
from prevenance.loyalty.tables import Account, Posting

if TYPE_CHECKING:
    from prevenance.customers.tables import Member

UNITS = ("points", "miles")


# Built once, each one statement that finds the member by its reference itself (``member_id_by_ref``):
# a balance or a page of movements is one round trip, which on PostgreSQL ``db.read_statements`` sends
# without a transaction around it. Only an empty answer asks whether the member exists.
_BALANCES_BY_REF = select(Account.unit, Account.balance).where(
    Account.member_id == customers.member_id_by_ref()
)


def get_balance(session: Session, *, member_ref: str) -> dict[str, Any]:
    """A member's points and miles (0 in a unit without an account)."""
    rows = session.execute(_BALANCES_BY_REF, {"p_ref": member_ref}).all()
    if not rows:
        customers.get_member(session, ref=member_ref)  # 404 unless it is a member without accounts
    return _balance_body(member_ref, rows)


def balance_of(member: Member) -> Read[dict[str, Any]]:
    """The balance of a member already read, as a read a view sends with others."""
    return Read(_BALANCES_BY_REF, {"p_ref": member.ref}, lambda rows: _balance_body(member.ref, rows))


def _balance_body(member_ref: str, rows: Sequence[Any]) -> dict[str, Any]:
    found = {unit: int(value or 0) for unit, value in rows}
    return {"member_ref": member_ref, **{unit: found.get(unit, 0) for unit in UNITS}}


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


_CREDITED = aliased(Account, name="credited")
_MOVEMENT_COLUMNS = (
    Posting.id,
    Posting.created_at,
    Posting.reason,
    Posting.reference,
    Posting.unit,
    # Signed for the member: a posting that credits one of the member's accounts adds to it.
    case((_CREDITED.member_id == Posting.member_id, Posting.amount), else_=-Posting.amount).label("amount"),
    Posting.balance_after,
)
_MOVEMENTS = (
    select(*_MOVEMENT_COLUMNS)
    .join(_CREDITED, _CREDITED.id == Posting.credit_account_id)
    .where(Posting.member_id == customers.member_id_by_ref())
    .order_by(Posting.id.desc())
    .limit(bindparam("p_limit"))
)
"""The 360 and the member's movements ask it on every call."""
_MOVEMENTS_BEFORE = _MOVEMENTS.where(Posting.id < bindparam("p_before"))
_LATEST_MOVEMENTS = (
    select(*_MOVEMENT_COLUMNS)
    .join(_CREDITED, _CREDITED.id == Posting.credit_account_id)
    .where(Posting.member_id == customers.member_id_by_ref())
    .order_by(Posting.created_at.desc(), Posting.id.desc())
    .limit(bindparam("p_limit"))
)


def list_movements(session: Session, *, member_ref: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """The member's postings, newest first, cursor-paginated; each says why and for what."""
    params = {"p_ref": member_ref, "p_limit": limit + 1}
    if cursor:
        before = _decode_cursor(cursor)
        rows = session.execute(_MOVEMENTS_BEFORE, {**params, "p_before": before}).all()
    else:
        rows = session.execute(_MOVEMENTS, params).all()
    if not rows:
        customers.get_member(session, ref=member_ref)  # 404 unless the member has no (more) postings
    more = len(rows) > limit
    rows = rows[:limit]
    return {
        "member_ref": member_ref,
        "items": _movement_items(rows),
        "next_cursor": _encode_cursor(rows[-1].id) if more else None,
    }


def last_movements(member: Member, *, limit: int) -> Read[list[dict[str, Any]]]:
    """The first page of ``list_movements`` (its items) for a member already read, as a read a view
    sends with others."""
    return Read(_MOVEMENTS, {"p_ref": member.ref, "p_limit": limit}, _movement_items)


def list_latest_movements(session: Session, *, member_ref: str, limit: int) -> list[dict[str, Any]]:
    """The member's last postings by when they were made, newest first (what a member reads).

    Posting ids follow insertion, not time: a backfill or a settlement file posts an older
    purchase after newer ones, so the portal orders by the posting's instant.
    """
    rows = session.execute(_LATEST_MOVEMENTS, {"p_ref": member_ref, "p_limit": limit}).all()
    if not rows:
        customers.get_member(session, ref=member_ref)
    return _movement_items(rows)


def _movement_items(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "id": row.id,
            "at": row.created_at.isoformat(),
            "reason": row.reason,
            "reference": row.reference,
            "unit": row.unit,
            "amount": row.amount,
            "balance_after": row.balance_after,
        }
        for row in rows
    ]
