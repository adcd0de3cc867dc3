"""Earning and refunding one card transaction, exactly once per transaction id (the reference
path the batch engine in ``earning`` reproduces row for row)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import Table, insert, select
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import as_utc, fingerprint, fingerprint_of
from prevenance.common.money import minor_units
from prevenance.common.problems import InvalidInput
from prevenance.customers import service as customers
from prevenance.loyalty import hooks, ledger, programme, referrals, rules
from prevenance.loyalty.errors import (
    RefundTooLarge,
    UnknownTransaction,
)
from prevenance.loyalty.hooks import EarnedTransaction
from prevenance.loyalty.rules import check_currency, parse_amount_field, product_rule
from prevenance.loyalty.tables import (
    CardTransaction,
    Refund,
)


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


# The earn path runs on every card payment: its inserts and the referral probe are Core statements
# built once (the ORM's unit of work and per-call statement building cost more than the SQL).
_TRANSACTIONS: Table = CardTransaction.__table__  # type: ignore[assignment]
_INSERT_TRANSACTION = insert(_TRANSACTIONS)


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
    member = customers.get_member_summary_for_body(session, ref=tx.member_ref, field="member_ref")
    customers.ensure_not_erased(member, field="member_ref")  # an erased member is never written to again
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
            "occurred_at": as_utc(tx.occurred_at),
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
            key=ledger.posting_key("earn", tx.id),
            now=now,
        )
        balance = result.balance_after or 0
    else:
        ledger.member_account(session, member_id=member.id, unit=product.unit)  # opened all the same
        balance = ledger.balance_of(session, member_id=member.id, unit=product.unit)
    referrals.reward_referral_if_pending(session, referee=member, transaction_id=tx.id, now=now)
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
            "occurred_at": as_utc(tx.occurred_at).isoformat(),
        },
        now=now,
    )
    installed = hooks.transaction_hooks()
    if installed:
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
            occurred_at=as_utc(tx.occurred_at),
            member_country=member.country,
            member_language=member.language,
            tier=product.tier,
        )
        for hook in installed:
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
