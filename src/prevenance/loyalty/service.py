"""Use cases of the rewards programme. Each runs inside the caller's unit of work and never
commits; each write claims its idempotency key first (see ``common.idempotency``)."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import as_utc, fingerprint, fingerprint_of, new_id
from prevenance.common.money import AmountError, minor_units, parse_amount
from prevenance.common.problems import InvalidInput
from prevenance.customers import service as customers
from prevenance.customers.service import MemberSummary
from prevenance.customers.tables import Member
from prevenance.loyalty import ledger, programme, rules
from prevenance.loyalty.errors import (
    HoldNotPending,
    InvalidReferral,
    InvalidReferralCode,
    NoCodesLeft,
    OutOfStock,
    RefundTooLarge,
    UnknownPartner,
    UnknownPartnerInBody,
    UnknownRedemption,
    UnknownSku,
    UnknownTransaction,
)
from prevenance.loyalty.tables import (
    Account,
    CardTransaction,
    CatalogueItem,
    ECode,
    MilesExport,
    MilesExportLine,
    Partner,
    Posting,
    Redemption,
    Referral,
    Refund,
)

# --- transaction hooks (higher domains act on each payment without loyalty importing them) -----


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


# --- earning -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TransactionInput:
    """A card transaction as the network or a settlement file reports it."""

    id: str
    member_ref: str
    amount: str
    currency: str
    merchant: str
    category: str
    occurred_at: datetime

    def fingerprint(self) -> str:
        return fingerprint_of(self)


_utc = as_utc  # kept under this name: the ingest uses it


# Above this an amount is a typing error, and its minor units or points would overflow a 64-bit column.
MAX_AMOUNT = Decimal(10) ** 12


def parse_amount_field(text: str, currency: str, field: str = "amount") -> Decimal:
    try:
        value = parse_amount(text, currency)
    except AmountError as error:
        raise InvalidInput(str(error), field=field)
    if value >= MAX_AMOUNT:
        raise InvalidInput(f"amount must be below {MAX_AMOUNT:,} {currency}", field=field)
    return value


def check_currency(currency: str, prog: rules.Programme) -> None:
    if not (len(currency) == 3 and currency.isalpha() and currency.isupper()):
        raise InvalidInput("currency must be an ISO 4217 code such as EUR", field="currency")
    if currency not in prog.fx_rates:
        raise InvalidInput(f"no exchange rate configured for {currency}", field="currency")


def product_rule(prog: rules.Programme, member: Member | MemberSummary) -> rules.ProductRule:
    rule = prog.products.get(member.product)
    if rule is None:
        raise InvalidInput(
            f"card product {member.product!r} has no earn rule in the programme", field="member_ref"
        )
    return rule


# The earn path runs on every card payment: its inserts and the referral probe are Core statements
# built once (the ORM's unit of work and per-call statement building cost more than the SQL).
_TRANSACTIONS: Table = CardTransaction.__table__  # type: ignore[assignment]
_INSERT_TRANSACTION = insert(_TRANSACTIONS)
_REFERRALS: Table = Referral.__table__  # type: ignore[assignment]
_PENDING_REFERRAL = (
    select(_REFERRALS.c.id)
    .where(_REFERRALS.c.referee_id == bindparam("p_referee"), _REFERRALS.c.status == "pending")
    .limit(1)
)


def record_transaction(session: Session, *, tx: TransactionInput, now: datetime) -> Outcome:
    """Earn points (or miles) for a card transaction, exactly once per transaction id."""
    return run_idempotent(
        session,
        scope="transaction",
        key=tx.id,
        fingerprint=tx.fingerprint(),
        now=now,
        produce=lambda: _earn(session, tx=tx, now=now),
    )


def _earn(session: Session, *, tx: TransactionInput, now: datetime) -> Outcome:
    prog = programme.current(session)
    member = customers.get_summary_for_body_or_raise(session, ref=tx.member_ref, field="member_ref")
    check_currency(tx.currency, prog)
    amount = parse_amount_field(tx.amount, tx.currency)
    if not tx.merchant.strip():
        raise InvalidInput("merchant must not be blank", field="merchant")
    product = product_rule(prog, member)
    amount_eur, rate = rules.to_euros(amount, tx.currency, prog.fx_rates)
    units_per_euro = product.units_per_euro(tx.category)
    units = rules.earn_units(amount_eur, units_per_euro=units_per_euro, minimum=prog.minimum_earn)
    session.execute(
        _INSERT_TRANSACTION,
        {
            "id": tx.id,
            "member_id": member.id,
            "amount_minor": rules.to_minor(amount, minor_units(tx.currency)),
            "currency": tx.currency,
            "merchant": tx.merchant,
            "category": tx.category,
            "occurred_at": _utc(tx.occurred_at),
            "fx_rate": str(rate),
            "amount_eur": str(amount_eur),
            "product": product.code,
            "unit": product.unit,
            "units_per_euro": units_per_euro,
            "minimum_earn": prog.minimum_earn,
            "units_earned": units,
            "units_current": units,
            "refunded_minor": 0,
            "created_at": now,
        },
    )
    if units > 0:  # the posting returns the new balance
        issuance = ledger.system_account(session, name="issuance", unit=product.unit)
        result = ledger.credit_member(
            session,
            member_id=member.id,
            debit=issuance,
            amount=units,
            reason="earn",
            reference=tx.id,
            key=f"earn:{tx.id}",
            now=now,
        )
        balance = result.balance_after or 0
    else:
        ledger.member_account(session, member_id=member.id, unit=product.unit)  # opened all the same
        balance = ledger.balance_of(session, member_id=member.id, unit=product.unit)
    _reward_referral_if_pending(session, referee=member, transaction_id=tx.id, now=now)
    body = {
        "id": tx.id,
        "member_ref": member.ref,
        "points_earned": units,
        "unit": product.unit,
        "balance": balance,
    }
    outbox.emit(
        session,
        type="points.earned",
        payload={
            **body,
            "category": tx.category,
            "merchant": tx.merchant,
            "occurred_at": _utc(tx.occurred_at).isoformat(),
        },
        now=now,
    )
    if _TRANSACTION_HOOKS:
        earned = EarnedTransaction(
            id=tx.id,
            member_id=member.id,
            member_ref=member.ref,
            product=product.code,
            merchant=tx.merchant,
            category=tx.category,
            amount_eur=amount_eur,
            points_earned=units,
            unit=product.unit,
            occurred_at=_utc(tx.occurred_at),
            member_country=member.country,
            member_language=member.language,
            tier=product.tier,
        )
        for hook in list(_TRANSACTION_HOOKS.values()):
            extra = hook(session, member_id=member.id, transaction=earned, now=now)
            if extra:
                body.update(extra)  # before run_idempotent stores the body: a replay returns the same
    return Outcome(201, body)


def refund_transaction(
    session: Session, *, transaction_id: str, refund_id: str, amount: str, now: datetime
) -> Outcome:
    """Refund part of a transaction; it keeps exactly what its remaining amount would earn."""
    digest = fingerprint({"transaction_id": transaction_id, "id": refund_id, "amount": amount})
    return run_idempotent(
        session,
        scope="refund",
        key=refund_id,
        fingerprint=digest,
        now=now,
        produce=lambda: _refund(
            session, transaction_id=transaction_id, refund_id=refund_id, amount=amount, now=now
        ),
    )


def _refund(session: Session, *, transaction_id: str, refund_id: str, amount: str, now: datetime) -> Outcome:
    tx = session.scalars(
        select(CardTransaction).where(CardTransaction.id == transaction_id).with_for_update()
    ).first()
    if tx is None:
        raise UnknownTransaction(f"no transaction {transaction_id!r}", field="transaction_id")
    value = parse_amount_field(amount, tx.currency)
    digits = minor_units(tx.currency)
    refund_minor = rules.to_minor(value, digits)
    if tx.refunded_minor + refund_minor > tx.amount_minor:
        left = Decimal(tx.amount_minor - tx.refunded_minor).scaleb(-digits)
        raise RefundTooLarge(
            f"refunds would exceed the transaction amount; {left} {tx.currency} left", field="amount"
        )
    units_left = rules.units_after_refunds(
        amount_minor=tx.amount_minor,
        refunded_minor=tx.refunded_minor + refund_minor,
        minor_digits=digits,
        fx_rate=Decimal(tx.fx_rate),
        units_per_euro=tx.units_per_euro,
        minimum=tx.minimum_earn,
    )
    reversed_units = tx.units_current - units_left
    tx.refunded_minor += refund_minor
    tx.units_current = units_left
    session.add(
        Refund(
            id=refund_id,
            transaction_id=tx.id,
            amount_minor=refund_minor,
            units_reversed=reversed_units,
            created_at=now,
        )
    )
    session.flush()
    balance = ledger.balance_of(session, member_id=tx.member_id, unit=tx.unit)
    if reversed_units > 0:
        # A refund may leave the balance negative: the points may already have been spent.
        result = ledger.post(
            session,
            debit=ledger.member_account(session, member_id=tx.member_id, unit=tx.unit),
            credit=ledger.system_account(session, name="issuance", unit=tx.unit),
            amount=reversed_units,
            reason="refund",
            reference=tx.id,
            key=f"refund:{refund_id}",
            now=now,
        )
        balance = result.balance_after or 0
    body = {
        "id": refund_id,
        "transaction_id": tx.id,
        "points_reversed": reversed_units,
        "unit": tx.unit,
        "balance": balance,
    }
    outbox.emit(session, type="points.refunded", payload=body, now=now)
    return Outcome(201, body)


# --- balances and movements --------------------------------------------------------------------


def get_balance(session: Session, *, member_ref: str) -> dict[str, Any]:
    """A member's points and miles."""
    member = customers.get_or_raise(session, ref=member_ref)
    return {
        "member_ref": member.ref,
        "points": ledger.balance_of(session, member_id=member.id, unit="points"),
        "miles": ledger.balance_of(session, member_id=member.id, unit="miles"),
    }


def _encode_cursor(posting_id: int) -> str:
    return base64.urlsafe_b64encode(f"p:{posting_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        prefix, _, number = text.partition(":")
        if prefix != "p":
            raise ValueError
        return int(number)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput("cursor is not one this API gave out", field="cursor")


def list_movements(session: Session, *, member_ref: str, limit: int, cursor: str | None) -> dict[str, Any]:
    """The member's postings, newest first, cursor-paginated; each says why and for what."""
    member = customers.get_or_raise(session, ref=member_ref)
    statement = select(Posting).where(Posting.member_id == member.id)
    if cursor:
        statement = statement.where(Posting.id < _decode_cursor(cursor))
    rows = list(session.scalars(statement.order_by(Posting.id.desc()).limit(limit + 1)))
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
    member = customers.get_or_raise(session, ref=member_ref)
    statement = (
        select(Posting)
        .where(Posting.member_id == member.id)
        .order_by(Posting.created_at.desc(), Posting.id.desc())
        .limit(limit)
    )
    return _movement_items(session, member.id, list(session.scalars(statement)))


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


# --- catalogue, partners, e-codes --------------------------------------------------------------


def put_catalogue_item(
    session: Session, *, sku: str, name: str, points: int, stock: int, now: datetime
) -> tuple[CatalogueItem, bool]:
    """Create or replace a catalogue item."""
    item = session.get(CatalogueItem, sku, with_for_update=True)
    created = item is None
    if item is None:
        item = CatalogueItem(sku=sku)
        session.add(item)
    item.name, item.points, item.stock, item.updated_at = name, points, stock, now
    session.flush()
    return item, created


def list_catalogue(session: Session) -> list[CatalogueItem]:
    """Every catalogue item, by SKU."""
    return list(session.scalars(select(CatalogueItem).order_by(CatalogueItem.sku)))


def get_catalogue_item(session: Session, *, sku: str) -> CatalogueItem | None:
    """The catalogue item with this SKU, or None."""
    return session.get(CatalogueItem, sku)


def put_partner(
    session: Session,
    *,
    code: str,
    kind: str,
    name: str,
    points_per_block: int,
    units_per_block: int,
    now: datetime,
) -> tuple[Partner, bool]:
    """Create or replace a partner."""
    partner = session.get(Partner, code, with_for_update=True)
    created = partner is None
    if partner is None:
        partner = Partner(code=code)
        session.add(partner)
    partner.kind, partner.name, partner.updated_at = kind, name, now
    partner.points_per_block, partner.units_per_block = points_per_block, units_per_block
    session.flush()
    return partner, created


def list_partners(session: Session) -> list[Partner]:
    """Every partner, by code."""
    return list(session.scalars(select(Partner).order_by(Partner.code)))


def load_ecodes(
    session: Session, *, partner_code: str, points: int, codes: list[str], now: datetime
) -> dict[str, Any]:
    """Add codes to a partner's pool; a code already loaded is skipped, so loading is idempotent."""
    if session.get(Partner, partner_code) is None:
        raise UnknownPartner(f"no partner {partner_code!r}", field="code")
    existing = set(
        session.scalars(select(ECode.code).where(ECode.partner_code == partner_code, ECode.code.in_(codes)))
    )
    fresh = list(dict.fromkeys(c for c in codes if c not in existing))
    session.add_all(ECode(partner_code=partner_code, points=points, code=c, loaded_at=now) for c in fresh)
    session.flush()
    available = session.execute(
        select(func.count())
        .select_from(ECode)
        .where(ECode.partner_code == partner_code, ECode.points == points, ECode.redemption_id.is_(None))
    ).scalar_one()
    return {
        "partner": partner_code,
        "points": points,
        "loaded": len(fresh),
        "skipped": len(codes) - len(fresh),
        "available": int(available),
    }


# --- redemptions -------------------------------------------------------------------------------


def redeem(session: Session, *, member_ref: str, request: dict[str, Any], now: datetime) -> Outcome:
    """Use points: catalogue, e-code, partner transfer or travel hold. Never overdraws."""
    redemption_id = str(request["id"])
    digest = fingerprint({"member_ref": member_ref, **request})
    return run_idempotent(
        session,
        scope="redemption",
        key=redemption_id,
        fingerprint=digest,
        now=now,
        produce=lambda: _redeem(session, member_ref=member_ref, request=request, now=now),
    )


def _redeem(session: Session, *, member_ref: str, request: dict[str, Any], now: datetime) -> Outcome:
    member = customers.get_or_raise(session, ref=member_ref)
    release_expired_holds(session, now=now, member_id=member.id)
    kind = request["kind"]
    handler = {
        "catalogue": _redeem_catalogue,
        "ecode": _redeem_ecode,
        "transfer": _redeem_transfer,
        "travel": _redeem_travel,
    }[kind]
    redemption, balance, extra = handler(session, member=member, request=request, now=now)
    body = {
        "id": redemption.id,
        "kind": kind,
        "member_ref": member.ref,
        "status": redemption.status,
        "points_debited": redemption.points,
        "balance": balance,
        **extra,
    }
    outbox.emit(session, type="redemption.created", payload=body, now=now)
    return Outcome(201, body)


def _spend(
    session: Session,
    *,
    member: Member,
    points: int,
    reason: str,
    reference: str,
    credit: ledger.AccountRef,
    key: str,
    now: datetime,
) -> int:
    account = ledger.member_account(session, member_id=member.id, unit="points")
    result = ledger.post(
        session,
        debit=account,
        credit=credit,
        amount=points,
        reason=reason,
        reference=reference,
        key=key,
        now=now,
        require_funds=True,
    )
    return result.balance_after or 0


def _new_redemption(
    session: Session,
    *,
    member: Member,
    request: dict[str, Any],
    status: str,
    points: int,
    details: dict[str, Any],
    now: datetime,
    expires_at: datetime | None = None,
) -> Redemption:
    redemption = Redemption(
        id=str(request["id"]),
        member_id=member.id,
        kind=request["kind"],
        status=status,
        points=points,
        details=details,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(redemption)
    session.flush()
    return redemption


def _redeem_catalogue(
    session: Session, *, member: Member, request: dict[str, Any], now: datetime
) -> tuple[Redemption, int, dict[str, Any]]:
    sku, quantity = str(request["sku"]), int(request.get("quantity") or 1)
    if quantity < 1:
        raise InvalidInput("quantity must be at least 1", field="quantity")
    item = session.get(CatalogueItem, sku)
    if item is None:
        raise UnknownSku(f"no catalogue item {sku!r}", field="sku")
    points = item.points * quantity
    redemption = _new_redemption(
        session,
        member=member,
        request=request,
        status="completed",
        points=points,
        details={"sku": sku, "quantity": quantity, "name": item.name},
        now=now,
    )
    balance = _spend(
        session,
        member=member,
        points=points,
        reason="redemption_catalogue",
        reference=redemption.id,
        credit=ledger.system_account(session, name="catalogue", unit="points"),
        key=f"redemption:{redemption.id}",
        now=now,
    )
    taken = session.execute(
        update(CatalogueItem)
        .where(CatalogueItem.sku == sku, CatalogueItem.stock >= quantity)
        .values(stock=CatalogueItem.stock - quantity)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise OutOfStock(f"not enough stock of {sku!r} for {quantity}", field="quantity")
    return redemption, balance, {"sku": sku, "quantity": quantity}


def _redeem_ecode(
    session: Session, *, member: Member, request: dict[str, Any], now: datetime
) -> tuple[Redemption, int, dict[str, Any]]:
    partner_code = str(request["partner"])
    if session.get(Partner, partner_code) is None:
        raise UnknownPartnerInBody(f"no partner {partner_code!r}", field="partner")
    pool = select(ECode.id, ECode.points).where(
        ECode.partner_code == partner_code, ECode.redemption_id.is_(None)
    )
    if request.get("points"):
        pool = pool.where(ECode.points == int(request["points"]))
    # SKIP LOCKED: concurrent redeemers each take a different free code instead of queueing on one.
    candidate = session.execute(
        pool.order_by(ECode.points, ECode.id).limit(1).with_for_update(skip_locked=True)
    ).first()
    if candidate is None:
        raise NoCodesLeft(f"no e-code left for partner {partner_code!r}", field="partner")
    code_id, points = candidate
    redemption = _new_redemption(
        session,
        member=member,
        request=request,
        status="completed",
        points=points,
        details={"partner": partner_code},
        now=now,
    )
    balance = _spend(
        session,
        member=member,
        points=points,
        reason="redemption_ecode",
        reference=redemption.id,
        credit=ledger.system_account(session, name="ecode", unit="points"),
        key=f"redemption:{redemption.id}",
        now=now,
    )
    code = session.execute(
        update(ECode)
        .where(ECode.id == code_id, ECode.redemption_id.is_(None))
        .values(redemption_id=redemption.id, issued_at=now)
        .returning(ECode.code)
    ).scalar_one_or_none()
    if code is None:
        raise NoCodesLeft("the e-code was taken concurrently; retry", field="partner")
    redemption.details = {"partner": partner_code, "code": code}
    return redemption, balance, {"partner": partner_code, "code": code}


def _redeem_transfer(
    session: Session, *, member: Member, request: dict[str, Any], now: datetime
) -> tuple[Redemption, int, dict[str, Any]]:
    partner_code = str(request["partner"])
    partner = session.get(Partner, partner_code)
    if partner is None:
        raise UnknownPartnerInBody(f"no partner {partner_code!r}", field="partner")
    if partner.kind not in ("airline", "hotel"):
        raise InvalidInput("points transfer only to airline or hotel partners", field="partner")
    points = int(request["points"])
    try:
        units = rules.transfer_units(
            points, points_per_block=partner.points_per_block, units_per_block=partner.units_per_block
        )
    except rules.RuleViolation as error:
        raise InvalidInput(str(error), field=error.field)
    details = {"partner": partner_code, "partner_units": units}
    redemption = _new_redemption(
        session, member=member, request=request, status="completed", points=points, details=details, now=now
    )
    balance = _spend(
        session,
        member=member,
        points=points,
        reason="redemption_transfer",
        reference=redemption.id,
        credit=ledger.partner_account(session, partner_code=partner_code, unit="points"),
        key=f"redemption:{redemption.id}",
        now=now,
    )
    return redemption, balance, details


def _redeem_travel(
    session: Session, *, member: Member, request: dict[str, Any], now: datetime
) -> tuple[Redemption, int, dict[str, Any]]:
    prog = programme.current(session)
    amount = parse_amount_field(str(request["amount"]), "EUR")
    try:
        split = rules.travel_split(
            amount, points_offered=int(request["points"]), euro_per_point=prog.euro_per_point
        )
    except rules.RuleViolation as error:
        raise InvalidInput(str(error), field=error.field)
    expires_at = rules.hold_expiry(now, hold_minutes=prog.hold_minutes)
    details = {
        "booking_ref": str(request["booking_ref"]),
        "amount": str(amount),
        "points_used": split.points_used,
        "cash_due": str(split.cash_due),
        "euro_per_point": str(prog.euro_per_point),
    }
    redemption = _new_redemption(
        session,
        member=member,
        request=request,
        status="held",
        points=split.points_used,
        details=details,
        now=now,
        expires_at=expires_at,
    )
    balance = _spend(
        session,
        member=member,
        points=split.points_used,
        reason="travel_hold",
        reference=redemption.id,
        credit=ledger.system_account(session, name="travel-escrow", unit="points"),
        key=f"hold:{redemption.id}",
        now=now,
    )
    return redemption, balance, {**details, "expires_at": expires_at.isoformat()}


def _redemption_body(session: Session, redemption: Redemption, member: Member) -> dict[str, Any]:
    body = {
        "id": redemption.id,
        "kind": redemption.kind,
        "member_ref": member.ref,
        "status": redemption.status,
        "points_debited": redemption.points,
        "balance": ledger.balance_of(session, member_id=member.id, unit="points"),
        **redemption.details,
    }
    if redemption.expires_at is not None:
        body["expires_at"] = redemption.expires_at.isoformat()
    return body


def get_redemption(session: Session, *, redemption_id: str) -> dict[str, Any]:
    """A redemption as the API shows it."""
    redemption = session.get(Redemption, redemption_id)
    if redemption is None:
        raise UnknownRedemption(f"no redemption {redemption_id!r}", field="id")
    member = customers.get_by_id(session, member_id=redemption.member_id)
    assert member is not None
    return _redemption_body(session, redemption, member)


def _release(session: Session, redemption: Redemption, *, status: str, reason: str, now: datetime) -> None:
    """Give held points back to the member (void or expiry)."""
    redemption.status, redemption.resolved_at = status, now
    ledger.post(
        session,
        debit=ledger.system_account(session, name="travel-escrow", unit="points"),
        credit=ledger.member_account(session, member_id=redemption.member_id, unit="points"),
        amount=redemption.points,
        reason=reason,
        reference=redemption.id,
        key=f"release:{redemption.id}",
        now=now,
    )
    outbox.emit(session, type=f"redemption.{status}", payload={"id": redemption.id}, now=now)


def resolve_hold(session: Session, *, redemption_id: str, action: str, now: datetime) -> Outcome:
    """Confirm (post) or void (release) a travel hold. Repeating the same action is a no-op.

    A hold past its expiry is released here even when asked to confirm, and the confirm is refused.
    """
    redemption = session.get(Redemption, redemption_id, with_for_update=True)
    if redemption is None or redemption.kind != "travel":
        raise UnknownRedemption(f"no travel redemption {redemption_id!r}", field="id")
    member = customers.get_by_id(session, member_id=redemption.member_id)
    assert member is not None
    target = {"confirm": "confirmed", "void": "voided"}[action]
    if redemption.status == "held" and redemption.expires_at and rules.is_expired(redemption.expires_at, now):
        _release(session, redemption, status="expired", reason="travel_hold_expired", now=now)
    if redemption.status == target:
        return Outcome(200, _redemption_body(session, redemption, member))
    if redemption.status != "held":
        problem = HoldNotPending(
            f"the hold is {redemption.status}; it can no longer be {target}",
            field="id",
            redemption_status=redemption.status,
        )
        return Outcome(problem.status, problem.to_problem())
    if action == "confirm":
        redemption.status, redemption.resolved_at = "confirmed", now
        ledger.post(
            session,
            debit=ledger.system_account(session, name="travel-escrow", unit="points"),
            credit=ledger.system_account(session, name="travel", unit="points"),
            amount=redemption.points,
            reason="travel_confirm",
            reference=redemption.id,
            key=f"confirm:{redemption.id}",
            now=now,
        )
        outbox.emit(session, type="redemption.confirmed", payload={"id": redemption.id}, now=now)
    else:
        _release(session, redemption, status="voided", reason="travel_void", now=now)
    return Outcome(200, _redemption_body(session, redemption, member))


def release_expired_holds(
    session: Session, *, now: datetime, member_id: int | None = None, limit: int = 1000
) -> int:
    """Release travel holds not confirmed in time; returns how many were released."""
    statement = select(Redemption).where(Redemption.status == "held", Redemption.expires_at <= now)
    if member_id is not None:
        statement = statement.where(Redemption.member_id == member_id)
    expired = list(session.scalars(statement.limit(limit).with_for_update(skip_locked=True)))
    for redemption in expired:
        _release(session, redemption, status="expired", reason="travel_hold_expired", now=now)
    return len(expired)


# --- referral ----------------------------------------------------------------------------------


def create_referral(
    session: Session, *, referrer_ref: str, referee_ref: str, key: str | None, now: datetime
) -> Outcome:
    """Record that a member referred another; the bonus waits for the referee's first transaction."""
    caller_key = key or f"{referrer_ref}->{referee_ref}"
    digest = fingerprint({"referrer_ref": referrer_ref, "referee_ref": referee_ref})
    return run_idempotent(
        session,
        scope="referral",
        key=caller_key,
        fingerprint=digest,
        now=now,
        produce=lambda: _refer(
            session, referrer_ref=referrer_ref, referee_ref=referee_ref, key=caller_key, now=now
        ),
    )


def _refer(session: Session, *, referrer_ref: str, referee_ref: str, key: str, now: datetime) -> Outcome:
    if referrer_ref == referee_ref:
        raise InvalidReferral("a member cannot refer themselves", field="referee_ref")
    referrer = customers.get_for_body_or_raise(session, ref=referrer_ref, field="referrer_ref")
    referee = customers.get_for_body_or_raise(session, ref=referee_ref, field="referee_ref")
    referral = _insert_referral(
        session, referrer=referrer, referee=referee, referral_id=key, refusal=InvalidReferral, now=now
    )
    body = {
        "id": referral.id,
        "referrer_ref": referrer.ref,
        "referee_ref": referee.ref,
        "status": "pending",
        "bonus": referral.bonus,
        "unit": referral.unit,
    }
    return Outcome(201, body)


def _insert_referral(
    session: Session,
    *,
    referrer: Member,
    referee: Member,
    referral_id: str,
    refusal: type[InvalidReferral],
    now: datetime,
) -> Referral:
    """The pending referral, once the referee is known to be new (no referrer, no transaction)."""
    field = "referral_code" if refusal is InvalidReferralCode else "referee_ref"
    # Lock the referee's accounts (which every earn updates) so that a first transaction cannot slip
    # in between the "not yet transacting" check and the insert.
    ledger.lock_member_accounts(session, member_id=referee.id)
    if session.scalars(select(Referral.id).where(Referral.referee_id == referee.id)).first() is not None:
        raise refusal(f"{referee.ref} already has a referrer", field=field)
    if session.scalars(
        select(CardTransaction.id).where(CardTransaction.member_id == referee.id).limit(1)
    ).first():
        raise refusal(f"{referee.ref} is already transacting; referral is for new customers", field=field)
    rule = product_rule(programme.current(session), referrer)
    referral = Referral(
        id=referral_id,
        referrer_id=referrer.id,
        referee_id=referee.id,
        status="pending",
        bonus=rule.referral_bonus,
        unit=rule.unit,
        created_at=now,
    )
    session.add(referral)
    session.flush()
    return referral


def get_referral_code(session: Session, *, member_ref: str, secret: str) -> dict[str, Any]:
    """The code a member shares: a new customer who enters it chooses them as referrer (consent)."""
    member = customers.get_or_raise(session, ref=member_ref)
    rule = product_rule(programme.current(session), member)
    code = rules.referral_code(member.id, key=rules.referral_code_key(secret))
    return {"member_ref": member.ref, "referral_code": code, "bonus": rule.referral_bonus, "unit": rule.unit}


def redeem_referral_code(
    session: Session, *, referee_ref: str, code: str, key: str | None, secret: str, now: datetime
) -> Outcome:
    """Record that a new customer was referred by the owner of the code they entered.

    The answer never names the referrer nor says anything about them: a code is accepted, or
    refused (422 ``invalid-referral-code`` on ``referral_code``) because no member has it, or for
    what it says about the customer themselves (their own code, a referrer already, transacting).
    """
    normalised = rules.normalise_referral_code(code)
    # Keys live in the referee's own space (a caller cannot probe another member's requests), hashed
    # to the key column's size whatever the lengths.
    caller_key = fingerprint({"referee_ref": referee_ref, "key": key or normalised or code})
    return run_idempotent(
        session,
        scope="referral-code",
        key=caller_key,
        fingerprint=fingerprint({"referee_ref": referee_ref, "referral_code": normalised or code}),
        now=now,
        produce=lambda: _refer_by_code(
            session, referee_ref=referee_ref, code=normalised, secret=secret, now=now
        ),
    )


def _refer_by_code(
    session: Session, *, referee_ref: str, code: str | None, secret: str, now: datetime
) -> Outcome:
    referee = customers.get_or_raise(session, ref=referee_ref)
    owner = None if code is None else rules.referral_code_owner(code, key=rules.referral_code_key(secret))
    referrer = None if owner is None else customers.get_by_id(session, member_id=owner)
    if referrer is None or referrer.ref.startswith("erased-"):  # an erased member refers no one
        raise InvalidReferralCode("no member has this referral code", field="referral_code")
    if referrer.id == referee.id:
        raise InvalidReferralCode("this is your own referral code", field="referral_code")
    # The id is the server's, never the caller's: a chosen id could probe other referrals' ids.
    referral = _insert_referral(
        session,
        referrer=referrer,
        referee=referee,
        referral_id=new_id("rf"),
        refusal=InvalidReferralCode,
        now=now,
    )
    body = {"id": referral.id, "referee_ref": referee.ref, "referral_code": code, "status": "pending"}
    return Outcome(201, body)


def _reward_referral_if_pending(
    session: Session, *, referee: Member | MemberSummary, transaction_id: str, now: datetime
) -> None:
    """Credit the referrer once: the conditional update lets exactly one transaction win."""
    if session.execute(_PENDING_REFERRAL, {"p_referee": referee.id}).first() is None:
        return  # the common case, probed cheaply; the update below still decides who wins
    won = session.execute(
        update(Referral)
        .where(Referral.referee_id == referee.id, Referral.status == "pending")
        .values(status="rewarded", rewarded_at=now, rewarding_transaction_id=transaction_id)
        .returning(Referral.id, Referral.referrer_id, Referral.bonus, Referral.unit)
    ).first()
    if won is None:
        return
    referral_id, referrer_id, bonus, unit = won
    if bonus > 0:
        ledger.post(
            session,
            debit=ledger.system_account(session, name="issuance", unit=unit),
            credit=ledger.member_account(session, member_id=referrer_id, unit=unit),
            amount=bonus,
            reason="referral",
            reference=referral_id,
            key=f"referral:{referral_id}",
            now=now,
        )
    outbox.emit(
        session,
        type="referral.rewarded",
        payload={"id": referral_id, "referee_ref": referee.ref, "bonus": bonus, "unit": unit},
        now=now,
    )


# --- co-brand miles owed to airline partners ---------------------------------------------------


def export_miles(session: Session, *, export_date: date, now: datetime) -> list[dict[str, Any]]:
    """The miles each airline partner is owed up to the end of ``export_date``, per member.

    Each miles posting is sent once: a line's primary key is the posting id. Exporting a date
    again returns that date's stored lines and adds nothing.
    """
    prog = programme.current(session)
    miles_partners = {
        rule.code: rule.miles_partner for rule in prog.products.values() if rule.unit == "miles"
    }
    fallback = next(iter(miles_partners.values()), None)
    end = datetime.combine(export_date + timedelta(days=1), time.min, tzinfo=UTC)
    pending = session.execute(
        select(Posting.id, Posting.amount, Posting.credit_account_id, Member.ref, Member.product, Account.id)
        .join(Member, Member.id == Posting.member_id)
        .join(Account, (Account.member_id == Member.id) & (Account.unit == "miles"))
        .outerjoin(MilesExportLine, MilesExportLine.posting_id == Posting.id)
        .where(Posting.unit == "miles", Posting.created_at < end, MilesExportLine.posting_id.is_(None))
        .order_by(Posting.id)
    ).all()
    by_partner: dict[str, list[tuple[int, str, int]]] = {}
    for posting_id, amount, credit_id, ref, product, account_id in pending:
        partner = miles_partners.get(product) or fallback
        if partner is None:
            continue
        signed = amount if credit_id == account_id else -amount
        by_partner.setdefault(partner, []).append((posting_id, ref, signed))
    partners = set(by_partner) | set(filter(None, miles_partners.values()))
    files = []
    for partner in sorted(partners):
        existing = session.scalars(
            select(MilesExport).where(
                MilesExport.partner_code == partner, MilesExport.export_date == export_date.isoformat()
            )
        ).first()
        if existing is None:
            lines = by_partner.get(partner, [])
            existing = MilesExport(
                partner_code=partner,
                export_date=export_date.isoformat(),
                created_at=now,
                line_count=len(lines),
                total_miles=sum(m for _, _, m in lines),
            )
            session.add(existing)
            session.flush()
            session.add_all(
                MilesExportLine(posting_id=pid, export_id=existing.id, member_ref=ref, miles=miles)
                for pid, ref, miles in lines
            )
            session.flush()
        per_member = session.execute(
            select(MilesExportLine.member_ref, func.sum(MilesExportLine.miles))
            .where(MilesExportLine.export_id == existing.id)
            .group_by(MilesExportLine.member_ref)
            .order_by(MilesExportLine.member_ref)
        ).all()
        files.append(
            {
                "partner": partner,
                "export_date": export_date.isoformat(),
                "export_id": existing.id,
                "total_miles": existing.total_miles,
                "postings": existing.line_count,
                "members": [(ref, int(total)) for ref, total in per_member if total],
            }
        )
    return files


def list_member_ids_at_merchant(
    session: Session, *, merchant: str, start: datetime | None, end: datetime | None
) -> list[int]:
    """Ids of the members with a card transaction at ``merchant`` (exact name, case-insensitive)
    that occurred in ``[start, end)`` (an open bound does not restrict)."""
    statement = select(CardTransaction.member_id).where(
        func.lower(CardTransaction.merchant) == merchant.lower()
    )
    if start is not None:
        statement = statement.where(CardTransaction.occurred_at >= _utc(start))
    if end is not None:
        statement = statement.where(CardTransaction.occurred_at < _utc(end))
    return list(session.scalars(statement.distinct()))


def point_liability(session: Session, *, now: datetime) -> dict[str, Any]:
    """What a point issued now costs the brand (``rules.point_cost``), from the redemptions of the
    programme's liability window (default 365 days) that went through (completed or confirmed)."""
    current = programme.current_document(session)
    document = current[1] if current else programme.default_document()
    liability = dict(document.get("liability") or {})
    days = int(liability.get("window_days", rules.DEFAULT_LIABILITY["window_days"]))
    rows = session.execute(
        select(Redemption.kind, Redemption.points, Redemption.details).where(
            Redemption.status.in_(("completed", "confirmed")),
            Redemption.created_at >= now - timedelta(days=days),
            Redemption.created_at < now,
        )
    ).all()
    lines = [
        rules.RedeemedLine(
            kind=str(kind),
            key=str((details or {}).get("sku") or (details or {}).get("partner") or "") or None,
            points=int(points),
            quantity=int((details or {}).get("quantity") or 1),
        )
        for kind, points, details in rows
    ]
    found = rules.point_cost(
        lines, liability=liability, euro_per_point=programme.current(session).euro_per_point
    )
    return {**found, "window_days": days, "as_of": now.isoformat()}
