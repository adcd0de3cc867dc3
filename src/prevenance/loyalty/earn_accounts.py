"""The earn engine's reads of a batch's accounts and pending referrals: every account the batch posts
to created on first use and, on PostgreSQL, the members' accounts locked in one stable order (id), the
issuance accounts read unlocked; the referees' pending referrals in one query. ``earning`` builds the
batch's postings on what these return."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import ARRAY, any_, bindparam, select, union_all
from sqlalchemy.orm import Session

from prevenance.common.lookups import InQuery
from prevenance.db import ignoring_conflicts
from prevenance.loyalty import ledger
from prevenance.loyalty.earn_rows import ACCOUNTS, REFERRALS


@dataclass(frozen=True)
class PendingReferral:
    id: str
    referrer_id: int
    bonus: int
    unit: str


_R = REFERRALS.c
_PENDING = select(_R.referee_id, _R.id, _R.referrer_id, _R.bonus, _R.unit).where(_R.status == "pending")
_PENDING_REFERRALS = InQuery(_PENDING.where, _R.referee_id)
_PENDING_REFERRALS_LOCKED = InQuery(
    lambda condition: _PENDING.where(condition).order_by(_R.referee_id).with_for_update(), _R.referee_id
)
_A = ACCOUNTS.c
_ACCOUNTS_BY_CODE = InQuery(select(_A.code, _A.id, _A.balance).where, _A.code)
_LOCKED_ACCOUNTS = (
    select(_A.code, _A.id, _A.balance)
    .where(_A.code == any_(bindparam("p_tracked", type_=ARRAY(_A.code.type))))
    .order_by(_A.id)
    .with_for_update()
    .cte("locked")
)
_LOCK_ACCOUNTS = union_all(
    select(_LOCKED_ACCOUNTS.c.code, _LOCKED_ACCOUNTS.c.id, _LOCKED_ACCOUNTS.c.balance),
    select(_A.code, _A.id, _A.balance).where(
        _A.code == any_(bindparam("p_untracked", type_=ARRAY(_A.code.type)))
    ),
)
"""PostgreSQL: the members' accounts of a batch locked, its issuance accounts read, in one statement."""


def pending_referrals(session: Session, referee_ids: list[int], *, lock: bool) -> dict[int, PendingReferral]:
    """The pending referral of each referee among ``referee_ids`` (locked, in referee order, when
    ``lock``: the batch that pays a bonus must be the one that marks it paid)."""
    query = _PENDING_REFERRALS_LOCKED if lock else _PENDING_REFERRALS
    return {
        referee_id: PendingReferral(rid, referrer_id, int(bonus), unit)
        for referee_id, rid, referrer_id, bonus, unit in query.rows(session, referee_ids)
    }


def ensure_accounts(
    session: Session, needed: dict[str, tuple[str, int | None]]
) -> dict[str, tuple[int, int]]:
    """Create the accounts first used by this batch (in first-use order, as the service would),
    then lock every account the batch posts to and return ``code → (id, balance)``."""
    if session.get_bind().dialect.name == "postgresql":
        return _lock_accounts_postgres(session, needed)
    codes = list(needed)
    known = {code: (aid, int(balance)) for code, aid, balance in _ACCOUNTS_BY_CODE.rows(session, codes)}
    missing = _new_accounts(needed, known)
    if missing:
        # Concurrent creators race on the unique code; the loser's insert is a no-op.
        session.execute(ignoring_conflicts(session, ledger.INSERT_ACCOUNT_IF_NEW), missing)
        known.update(
            (code, (aid, int(balance)))
            for code, aid, balance in _ACCOUNTS_BY_CODE.rows(session, [m["code"] for m in missing])
        )
    return known  # SQLite: the write lock is already ours, what was read is what is there


def _new_accounts(
    needed: dict[str, tuple[str, int | None]], known: dict[str, tuple[int, int]]
) -> list[dict[str, Any]]:
    return [
        {
            "code": code,
            "unit": unit,
            "member_id": member_id,
            "tracks_balance": member_id is not None,
            "balance": 0,
        }
        for code, (unit, member_id) in needed.items()
        if code not in known
    ]


def _lock_accounts_postgres(
    session: Session, needed: dict[str, tuple[str, int | None]]
) -> dict[str, tuple[int, int]]:
    """One statement when every account exists (the usual case): the members' accounts locked in id
    order (one order for every locker keeps deadlocks rare; PostgreSQL breaks the rest and the batch
    is re-run), the issuance accounts read unlocked (their balance is not tracked; locking them would
    serialise every batch). The balances read under the lock are the ones the batch builds on."""
    tracked = [c for c in needed if needed[c][1] is not None]
    untracked = [c for c in needed if needed[c][1] is None]
    connection = session.connection()
    params = {"p_tracked": tracked, "p_untracked": untracked}
    found = {code: (aid, int(balance)) for code, aid, balance in connection.execute(_LOCK_ACCOUNTS, params)}
    missing = _new_accounts(needed, found)
    if not missing:
        return found
    # Concurrent creators race on the unique code; the loser's insert is a no-op. Then lock again:
    # a row another transaction created since is locked too.
    session.execute(ignoring_conflicts(session, ledger.INSERT_ACCOUNT_IF_NEW), missing)
    return {code: (aid, int(balance)) for code, aid, balance in connection.execute(_LOCK_ACCOUNTS, params)}
