"""The double-entry ledger: accounts, postings, and the audit that proves the invariants.

Integers only, append-only. A posting moves ``amount`` from the debit account to the credit
account. A member's balance is the sum of its credits minus its debits; it is also kept on the
account row and in ``balance_after`` of each posting, and the audit proves the three agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, func, insert, literal_column, select, text, update
from sqlalchemy.orm import Session

from prevenance.common.idempotency import fit_key
from prevenance.db import ignoring_conflicts, insert_ignoring_conflicts, transaction_memo
from prevenance.loyalty import ledger_bounds
from prevenance.loyalty.errors import InsufficientPoints
from prevenance.loyalty.ledger_bounds import LEDGER_BALANCE_LIMIT
from prevenance.loyalty.tables import Account, Posting

# Why a posting was made; every posting names one.
REASONS = (
    "earn",
    "refund",
    "referral",
    "goodwill",
    "redemption_catalogue",
    "redemption_ecode",
    "redemption_transfer",
    "travel_hold",
    "travel_confirm",
    "travel_void",
    "travel_hold_expired",
    "offer_reward",
    "expiry",
)
SPENDING_REASONS = ("redemption_catalogue", "redemption_ecode", "redemption_transfer", "travel_hold")


@dataclass(frozen=True)
class AccountRef:
    """Enough of an account to post to it."""

    id: int
    unit: str
    member_id: int | None
    tracks_balance: bool


@dataclass(frozen=True)
class PostingResult:
    posting_id: int
    balance_after: int | None


# The hot path's statements, built once: Core statements on the tables skip the ORM's per-call
# statement building and bulk-update bookkeeping (accounts and postings are never ORM-loaded).
_ACCOUNTS: Table = Account.__table__  # type: ignore[assignment]
_POSTINGS: Table = Posting.__table__  # type: ignore[assignment]
_ACCOUNT_BY_CODE = select(
    _ACCOUNTS.c.id, _ACCOUNTS.c.unit, _ACCOUNTS.c.member_id, _ACCOUNTS.c.tracks_balance
).where(_ACCOUNTS.c.code == bindparam("p_code"))
# Each balance update carries the ledger's bound in its WHERE clause (``ledger_bounds``): a posting
# that would take the balance beyond it updates no row, in the same statement and under the same
# row lock as the change itself, so no concurrent writer can slip past it. ``p_floor`` is
# ``amount - limit`` (a debit keeps ``balance - amount >= -limit``), ``p_ceiling`` is
# ``limit - amount`` (a credit keeps ``balance + amount <= limit``): computed in Python, so the SQL
# never adds anything that could overflow.
_DEBIT = (
    update(_ACCOUNTS)
    .where(_ACCOUNTS.c.id == bindparam("p_account"), _ACCOUNTS.c.balance >= bindparam("p_floor"))
    .values(balance=_ACCOUNTS.c.balance - bindparam("p_amount"))
    .returning(_ACCOUNTS.c.balance)
)
_DEBIT_FUNDED = _DEBIT.where(_ACCOUNTS.c.balance >= bindparam("p_amount"))
_CREDIT = (
    update(_ACCOUNTS)
    .where(_ACCOUNTS.c.id == bindparam("p_account"), _ACCOUNTS.c.balance <= bindparam("p_ceiling"))
    .values(balance=_ACCOUNTS.c.balance + bindparam("p_amount"))
    .returning(_ACCOUNTS.c.balance)
)
_CREDIT_BY_CODE = (
    update(_ACCOUNTS)
    .where(_ACCOUNTS.c.code == bindparam("p_code"), _ACCOUNTS.c.balance <= bindparam("p_ceiling"))
    .values(balance=_ACCOUNTS.c.balance + bindparam("p_amount"))
    .returning(_ACCOUNTS.c.id, _ACCOUNTS.c.balance)
)
_BALANCE_BY_ID = select(_ACCOUNTS.c.balance).where(_ACCOUNTS.c.id == bindparam("p_account"))
_BALANCE = select(_ACCOUNTS.c.balance).where(
    _ACCOUNTS.c.member_id == bindparam("p_member"), _ACCOUNTS.c.unit == bindparam("p_unit")
)
_INSERT_POSTING = insert(_POSTINGS).returning(_POSTINGS.c.id)


INSERT_ACCOUNT_IF_NEW = insert_ignoring_conflicts(_ACCOUNTS)  # the bulk ingest creates accounts too


def _insert_ignore(session: Session, values: dict[str, Any]) -> None:
    session.execute(ignoring_conflicts(session, INSERT_ACCOUNT_IF_NEW), values)


def _account(session: Session, code: str, *, unit: str, member_id: int | None) -> AccountRef:
    row = session.execute(_ACCOUNT_BY_CODE, {"p_code": code}).first()
    if row is None:
        # Concurrent creators race on the unique code; the loser's insert is a no-op.
        _insert_ignore(
            session,
            {
                "code": code,
                "unit": unit,
                "member_id": member_id,
                "tracks_balance": member_id is not None,
                "balance": 0,
            },
        )
        row = session.execute(_ACCOUNT_BY_CODE, {"p_code": code}).one()
    return AccountRef(id=row[0], unit=row[1], member_id=row[2], tracks_balance=row[3])


def member_account_code(member_id: int, unit: str) -> str:
    """The code of a member's account in a unit: the one format, for the ledger and the earn engine."""
    return f"member:{member_id}:{unit}"


def system_account_code(name: str, unit: str) -> str:
    """The code of a programme account (``issuance``, ``catalogue``…) in a unit."""
    return f"system:{name}:{unit}"


def member_account(session: Session, *, member_id: int, unit: str) -> AccountRef:
    """The member's account in a unit (created on first use)."""
    return _account(session, member_account_code(member_id, unit), unit=unit, member_id=member_id)


def lock_member_accounts(session: Session, *, member_id: int) -> None:
    """Take the row locks an earn would take on the member's accounts (no-op on SQLite)."""
    for unit in ("points", "miles"):
        member_account(session, member_id=member_id, unit=unit)
    session.execute(select(Account.id).where(Account.member_id == member_id).with_for_update()).all()


def system_account(session: Session, *, name: str, unit: str) -> AccountRef:
    """A programme account: ``issuance``, ``catalogue``, ``ecode``, ``travel``, ``travel-escrow``,
    ``expiry`` (points the expiry policy took back).

    Looked up once per transaction: every earn of a batch credits from the same issuance account.
    """
    code = system_account_code(name, unit)
    return transaction_memo(session, code, lambda: _account(session, code, unit=unit, member_id=None))


SYSTEM_ACCOUNTS = (
    ("issuance", "points"), ("catalogue", "points"), ("ecode", "points"), ("travel", "points"),
    ("travel-escrow", "points"), ("issuance", "miles"), ("expiry", "points"),
)  # fmt: skip


def ensure_system_accounts(session: Session) -> None:
    """Create the programme's accounts up front, so no use case creates one while holding a member's
    row lock (which could deadlock with another use case doing the same the other way round)."""
    for name, unit in SYSTEM_ACCOUNTS:
        system_account(session, name=name, unit=unit)


def partner_account(session: Session, *, partner_code: str, unit: str) -> AccountRef:
    """What the programme owes or has sent a partner, in a unit."""
    return _account(session, f"partner:{partner_code}:{unit}", unit=unit, member_id=None)


def _check_posting(debit: AccountRef, *, unit: str, amount: int, reason: str) -> None:
    if amount <= 0:
        raise ValueError("a posting moves a positive amount")
    if debit.unit != unit:
        raise ValueError("a posting moves one unit")
    if reason not in REASONS:
        raise ValueError(f"unknown posting reason {reason!r}")
    ledger_bounds.check_amount(amount, unit)


def _insert_posting(
    session: Session,
    *,
    debit_id: int,
    credit_id: int,
    amount: int,
    unit: str,
    reason: str,
    reference: str,
    key: str,
    member_id: int | None,
    balance_after: int | None,
    now: datetime,
) -> PostingResult:
    posting_id = session.execute(
        _INSERT_POSTING,
        {
            "idempotency_key": fit_key(key),
            "debit_account_id": debit_id,
            "credit_account_id": credit_id,
            "amount": amount,
            "unit": unit,
            "reason": reason,
            "reference": reference,
            "member_id": member_id,
            "balance_after": balance_after,
            "created_at": now,
        },
    ).scalar_one()
    return PostingResult(posting_id=posting_id, balance_after=balance_after)


def posting_key(kind: str, reference: str) -> str:
    """The unique key of the posting of ``kind`` for ``reference`` (``earn:<transaction id>``…),
    fitted to the key column: the earn engine and the use cases must build the same one."""
    return fit_key(f"{kind}:{reference}")


def post(
    session: Session,
    *,
    debit: AccountRef,
    credit: AccountRef,
    amount: int,
    reason: str,
    reference: str,
    key: str,
    now: datetime,
    require_funds: bool = False,
) -> PostingResult:
    """Move ``amount`` from ``debit`` to ``credit``; refuse to overdraw when ``require_funds``.

    The member's balance is changed by a conditional ``UPDATE … RETURNING``: on PostgreSQL the row
    lock it takes serialises concurrent spenders and the condition is re-checked on the newest row
    version, so two redemptions can never both pass a check that only one could afford. The same
    statement holds every balance it changes within ±``LEDGER_BALANCE_LIMIT``: a posting past it
    updates nothing and raises ``BalanceLimitExceeded`` (422); the caller's unit of work rolls back.
    """
    _check_posting(debit, unit=credit.unit, amount=amount, reason=reason)
    balance_after: int | None = None
    member_id: int | None = None
    if debit.tracks_balance:
        statement = _DEBIT_FUNDED if require_funds else _DEBIT
        params = {"p_account": debit.id, "p_amount": amount, "p_floor": amount - LEDGER_BALANCE_LIMIT}
        returned = session.execute(statement, params).scalar_one_or_none()
        if returned is None:
            # A funded debit leaves at least 0, inside the bound: only the funds can refuse it (the
            # balance read below may already be newer than the one the update saw).
            if not require_funds:
                raise ledger_bounds.refusal(amount, debit.unit)
            current = session.execute(_BALANCE_BY_ID, {"p_account": debit.id}).scalar_one()
            raise InsufficientPoints(
                f"{amount} {debit.unit} needed, {max(current, 0)} available",
                field="points",
                needed=amount,
                available=max(current, 0),
            )
        balance_after, member_id = returned, debit.member_id
    if credit.tracks_balance:
        params = {"p_account": credit.id, "p_amount": amount, "p_ceiling": LEDGER_BALANCE_LIMIT - amount}
        balance_after = session.execute(_CREDIT, params).scalar_one_or_none()
        if balance_after is None:
            raise ledger_bounds.refusal(amount, credit.unit)
        member_id = credit.member_id
    return _insert_posting(
        session,
        debit_id=debit.id,
        credit_id=credit.id,
        amount=amount,
        unit=debit.unit,
        reason=reason,
        reference=reference,
        key=key,
        member_id=member_id,
        balance_after=balance_after,
        now=now,
    )


def credit_member(
    session: Session,
    *,
    member_id: int,
    debit: AccountRef,
    amount: int,
    reason: str,
    reference: str,
    key: str,
    now: datetime,
) -> PostingResult:
    """Move ``amount`` from a programme account that keeps no balance (issuance) to the member's
    account in its unit: what ``post`` does, with the member's account found and credited by one
    ``UPDATE … RETURNING`` on its code (created on first use), bounded as in ``post``. Every earn
    passes here, and on PostgreSQL every statement is a round trip."""
    _check_posting(debit, unit=debit.unit, amount=amount, reason=reason)
    if debit.tracks_balance:
        raise ValueError("credit_member debits a programme account that keeps no balance")
    code = member_account_code(member_id, debit.unit)
    params = {"p_code": code, "p_amount": amount, "p_ceiling": LEDGER_BALANCE_LIMIT - amount}
    row = session.execute(_CREDIT_BY_CODE, params).first()
    if row is None:  # the member's first movement in this unit, or the bound refused it
        member_account(session, member_id=member_id, unit=debit.unit)
        row = session.execute(_CREDIT_BY_CODE, params).first()
        if row is None:
            raise ledger_bounds.refusal(amount, debit.unit)
    return _insert_posting(
        session,
        debit_id=debit.id,
        credit_id=row[0],
        amount=amount,
        unit=debit.unit,
        reason=reason,
        reference=reference,
        key=key,
        member_id=member_id,
        balance_after=row[1],
        now=now,
    )


def balance_of(session: Session, *, member_id: int, unit: str) -> int:
    """A member's balance in a unit (0 before any posting)."""
    value = session.execute(_BALANCE, {"p_member": member_id, "p_unit": unit}).scalar_one_or_none()
    return int(value or 0)


# --- audit -------------------------------------------------------------------------------------


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    failures: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "ok": self.ok, "detail": self.detail, "failures": self.failures[:20]}


def _movements() -> Any:
    """Every posting twice: ``+amount`` on its credit account, ``-amount`` on its debit account."""
    credits = select(Posting.credit_account_id.label("account_id"), Posting.amount.label("delta"))
    debits = select(Posting.debit_account_id.label("account_id"), (-Posting.amount).label("delta"))
    return credits.union_all(debits).subquery()


def _computed_balances(session: Session) -> Any:
    """Σ postings of each account that keeps a balance (bounded by ``ledger_bounds``; the system
    accounts' sums, unbounded, are left to ``_unit_totals``)."""
    movements = _movements()
    return (
        select(movements.c.account_id, func.sum(movements.c.delta).label("computed"))
        .join(Account, and_(Account.id == movements.c.account_id, Account.tracks_balance.is_(True)))
        .group_by(movements.c.account_id)
        .subquery()
    )


_HALF = 32
_HALF_BITS: Any = literal_column(str(_HALF))
_LOW_HALF: Any = literal_column(str(2**_HALF - 1))


def _unit_totals(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    """Σ postings per unit over every account, and over the issuance accounts alone, in one pass
    over the postings; exact whatever the total: system accounts keep no balance, so what the
    issuance account has put out over the programme's life is not bounded and may pass 2^63 - 1,
    where SQLite's ``sum()`` raises "integer overflow". Each delta is summed as its high and low
    32-bit halves (``>>`` and ``&``, the same on both databases), neither sum able to overflow below
    2^31 postings, and joined again in Python."""
    movements = _movements()
    issuance = Account.code.like(system_account_code("issuance", "%")).label("issuance")
    query = (
        select(
            Account.unit,
            issuance,
            func.sum(movements.c.delta.op(">>")(_HALF_BITS)),
            func.sum(movements.c.delta.op("&")(_LOW_HALF)),
        )
        .join(movements, movements.c.account_id == Account.id)
        .group_by(Account.unit, issuance)
    )
    every: dict[str, int] = {}
    issued: dict[str, int] = {}
    for unit, is_issuance, high, low in session.execute(query):
        total = (int(high or 0) << _HALF) + int(low or 0)
        every[unit] = every.get(unit, 0) + total
        if is_issuance:
            issued[unit] = issued.get(unit, 0) + total
    return every, issued


def audit(session: Session) -> dict[str, Any]:
    """Prove the ledger's invariants; every check lists its failures (empty when it holds)."""
    checks: list[Check] = []
    computed = _computed_balances(session)

    # 1. Every posting moves one unit between accounts of that unit.
    debit_acc = Account.__table__.alias("d")
    credit_acc = Account.__table__.alias("c")
    mixed = session.execute(
        select(Posting.id, Posting.unit, debit_acc.c.unit, credit_acc.c.unit)
        .join(debit_acc, debit_acc.c.id == Posting.debit_account_id)
        .join(credit_acc, credit_acc.c.id == Posting.credit_account_id)
        .where((debit_acc.c.unit != Posting.unit) | (credit_acc.c.unit != Posting.unit))
        .limit(20)
    ).all()
    checks.append(
        Check(
            "postings_single_unit",
            not mixed,
            "each posting debits and credits accounts of its unit",
            [{"posting_id": r[0]} for r in mixed],
        )
    )

    # 2. Σ of all balances per unit is zero.
    totals, issuance_totals = _unit_totals(session)
    bad_units = [{"unit": u, "sum": t} for u, t in totals.items() if t != 0]
    checks.append(Check("sum_per_unit_is_zero", not bad_units, "Σ postings per unit = 0", bad_units))

    # 3. A member's kept balance equals the sum of its postings.
    drift = session.execute(
        select(Account.id, Account.code, Account.balance, func.coalesce(computed.c.computed, 0))
        .outerjoin(computed, computed.c.account_id == Account.id)
        .where(Account.tracks_balance.is_(True))
        .where(Account.balance != func.coalesce(computed.c.computed, 0))
        .limit(20)
    ).all()
    checks.append(
        Check(
            "member_balance_equals_postings",
            not drift,
            "kept balance = Σ postings",
            [{"account": r[1], "kept": int(r[2]), "computed": int(r[3])} for r in drift],
        )
    )

    # 4. Each posting's balance_after is the running sum of the member's postings (no lost update).
    running = _running_balance_mismatches(session)
    checks.append(Check("balance_after_is_running_sum", not running, "balance_after = running Σ", running))

    # 5. Spending never overdraws; only a refund may leave a balance negative.
    overdrawn = session.execute(
        select(Posting.id, Posting.reason, Posting.balance_after)
        .join(Account, and_(Account.id == Posting.debit_account_id, Account.tracks_balance.is_(True)))
        .where(Posting.balance_after < 0, Posting.reason != "refund")
        .limit(20)
    ).all()
    checks.append(
        Check(
            "no_overdraft_except_refund",
            not overdrawn,
            "spending never leaves a balance below 0",
            [{"posting_id": r[0], "reason": r[1], "balance_after": r[2]} for r in overdrawn],
        )
    )

    # 6. A card transaction holds exactly its earn minus its refund postings.
    tx_mismatch = _transaction_mismatches(session)
    checks.append(
        Check(
            "transaction_units_match_postings",
            not tx_mismatch,
            "units kept by a transaction = earn − refund postings",
            tx_mismatch,
        )
    )

    # 7. Every kept balance is an integer within the ledger's bound.
    checks.append(_bounded_integer_balances(session))

    postings = session.execute(select(func.count()).select_from(Posting)).scalar_one()
    accounts = session.execute(select(func.count()).select_from(Account)).scalar_one()
    return {
        "ok": all(c.ok for c in checks),
        "postings": int(postings),
        "accounts": int(accounts),
        "issued": {unit: -total for unit, total in issuance_totals.items()},
        "checks": [c.as_dict() for c in checks],
    }


_RUNNING_SQL = text(
    # One side per row (UNION ALL of credits and debits of member accounts), so both databases use
    # the posting indexes; an OR join of accounts to postings compares every pair on PostgreSQL.
    """
    SELECT id, balance_after, running FROM (
      SELECT m.id AS id, m.balance_after AS balance_after,
             SUM(m.delta) OVER (PARTITION BY m.account_id ORDER BY m.id ROWS UNBOUNDED PRECEDING) AS running
      FROM (
        SELECT p.id, p.balance_after, p.credit_account_id AS account_id, p.amount AS delta
        FROM postings p JOIN accounts a ON a.id = p.credit_account_id AND a.tracks_balance = :yes
        UNION ALL
        SELECT p.id, p.balance_after, p.debit_account_id AS account_id, -p.amount AS delta
        FROM postings p JOIN accounts a ON a.id = p.debit_account_id AND a.tracks_balance = :yes
      ) AS m
    ) AS chained
    WHERE balance_after IS NULL OR balance_after <> running
    LIMIT 20
    """
)

_TRANSACTION_SQL = text(
    """
    SELECT t.id, t.units_current,
           COALESCE(SUM(CASE WHEN p.reason = 'earn' THEN p.amount ELSE -p.amount END), 0) AS posted
    FROM card_transactions t
    LEFT JOIN postings p ON p.reference = t.id AND p.reason IN ('earn', 'refund')
    GROUP BY t.id, t.units_current
    HAVING t.units_current <> COALESCE(SUM(CASE WHEN p.reason = 'earn' THEN p.amount ELSE -p.amount END), 0)
    LIMIT 20
    """
)


def _bounded_integer_balances(session: Session) -> Check:
    """Balances beyond ±``LEDGER_BALANCE_LIMIT`` and, on SQLite (where an integer sum that overflows
    becomes a REAL), balances or ``balance_after`` stored as anything but an integer."""
    beyond = (Account.balance < -LEDGER_BALANCE_LIMIT) | (Account.balance > LEDGER_BALANCE_LIMIT)
    sqlite = session.get_bind().dialect.name == "sqlite"
    if sqlite:
        beyond = beyond | (func.typeof(Account.balance) != "integer")
    accounts = session.execute(select(Account.code, Account.balance).where(beyond).limit(20)).all()
    failures: list[dict[str, Any]] = [{"account": code, "balance": balance} for code, balance in accounts]
    if sqlite:
        not_integer = func.typeof(Posting.balance_after).not_in(["integer", "null"])
        postings = session.execute(
            select(Posting.id, Posting.balance_after).where(not_integer).limit(20)
        ).all()
        failures += [{"posting_id": pid, "balance_after": after} for pid, after in postings]
    detail = f"balances are integers within ±{LEDGER_BALANCE_LIMIT:,}"
    return Check("balances_are_bounded_integers", not failures, detail, failures)


def _running_balance_mismatches(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(_RUNNING_SQL, {"yes": True}).all()
    return [{"posting_id": r[0], "balance_after": r[1], "running": int(r[2])} for r in rows]


def _transaction_mismatches(session: Session) -> list[dict[str, Any]]:
    rows = session.execute(_TRANSACTION_SQL).all()
    return [{"transaction_id": r[0], "units_current": int(r[1]), "posted": int(r[2])} for r in rows]
