"""The ledger against a model: hypothesis drives random sequences of use cases through the service
layer (each in its own ``run_in_transaction``, as the API does) and after every step the database
must agree with a plain-Python model of what each member should hold.

Checked after every step: Σ postings per unit = 0; each member's kept balance = Σ of its postings =
the model; every earlier posting is still there, unchanged (append-only); the number of postings,
idempotency keys, redemptions and transactions is exactly what the accepted requests wrote (a
rejected or replayed request writes nothing); no spending posting leaves a balance below zero;
nothing but a refund or a spending debits a member (points never expire); ``ledger.audit`` is ok.

The engine fixture lives for the whole test function, so each hypothesis example first empties the
database (and reinstalls the programme) and restarts the clock: an example replayed by hypothesis
then meets the same world, and a broken example cannot fail the global checks of the next one.
"""

from __future__ import annotations

import collections
import dataclasses
import itertools
import os
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event as hypothesis_event
from hypothesis import note, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    MultipleResults,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    precondition,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from prevenance.common.clock import FrozenClock
from prevenance.common.idempotency import IdempotencyKey, Outcome
from prevenance.common.money import minor_units
from prevenance.common.problems import IdempotencyConflict, InvalidInput, PrevenanceError
from prevenance.customers import service as customers
from prevenance.customers.tables import Member
from prevenance.db import read_session, run_in_transaction, unit_of_work
from prevenance.loyalty import ledger, programme, service
from prevenance.loyalty.errors import (
    HoldNotPending,
    InsufficientPoints,
    InvalidReferral,
    NoCodesLeft,
    OutOfStock,
    RefundTooLarge,
)
from prevenance.loyalty.tables import (
    Account,
    CardTransaction,
    CatalogueItem,
    ECode,
    MilesExportLine,
    Posting,
    Redemption,
)
from tests.conftest import empty_tables

DOCUMENT = programme.default_document()
PRODUCTS = dict(DOCUMENT["products"])
RATES = {code: Decimal(rate) for code, rate in DOCUMENT["fx_rates"].items()}
EURO_PER_POINT = Decimal(DOCUMENT["travel"]["euro_per_point"])
HOLD = timedelta(minutes=int(DOCUMENT["travel"]["hold_minutes"]))
MINIMUM_EARN = int(DOCUMENT["minimum_earn"])
CURRENCIES = ("EUR", "EUR", "GBP", "USD", "CHF", "JPY", "KWD")
CATEGORIES = ("travel", "groceries", "books", "fuel", "dining")
SPENDING = set(ledger.SPENDING_REASONS)
EXAMPLES = int(os.environ.get("PREVENANCE_LEDGER_EXAMPLES", "40"))
STEPS = int(os.environ.get("PREVENANCE_LEDGER_STEPS", "40"))
SEEN: collections.Counter[str] = collections.Counter()


def event(name: str) -> None:
    """Count a path taken (shown with ``LEDGER_DEBUG=1 pytest -s``) and tell hypothesis."""
    SEEN[name] += 1
    hypothesis_event(name)


# --- the model's own arithmetic (written from the programme's words, not from rules.py) ----------


def unit_of(product: str) -> str:
    return str(PRODUCTS[product].get("unit", "points"))


def per_euro(product: str, category: str) -> int:
    spec = PRODUCTS[product]
    return int(spec.get("earn_per_euro", 1)) * int(spec.get("category_multipliers", {}).get(category, 1))


def earned(minor: int, currency: str, upe: int) -> int:
    """Per whole euro, and at least the minimum for any positive amount; nothing for nothing."""
    if minor <= 0:
        return 0
    euros = Decimal(minor).scaleb(-minor_units(currency)) * RATES[currency]
    return max(int(euros.to_integral_value(rounding=ROUND_FLOOR)) * upe, MINIMUM_EARN)


def text(minor: int, currency: str) -> str:
    return f"{Decimal(minor).scaleb(-minor_units(currency)):f}"


@dataclass
class Tx:
    id: str
    member: str
    currency: str
    minor: int
    upe: int
    unit: str
    units: int
    refunded: int = 0


@dataclass
class Hold:
    id: str
    member: str
    points: int
    expires_at: datetime
    status: str = "held"


@dataclass
class Done:
    """An accepted request, kept to be sent again (same body) and altered (same id, other body)."""

    label: str
    call: Callable[[Session], Outcome] = field(repr=False)
    other: Callable[[Session], Outcome] | None = field(repr=False)
    status: int = field(repr=False)
    body: dict[str, Any] = field(repr=False)


Result = Outcome | PrevenanceError


class LedgerMachine(RuleBasedStateMachine):
    engine: Engine
    start: datetime

    members = Bundle("members")
    transactions = Bundle("transactions")
    holds = Bundle("holds")

    def __init__(self) -> None:
        super().__init__()
        wipe(self.engine, now=self.start)
        self.prefix = f"h{uuid.uuid4().hex[:10]}"
        # Each example starts at the same moment, so that replaying an example replays its history.
        self.clock = FrozenClock(self.start)
        self.counter = itertools.count(1)
        self.product: dict[str, str] = {}
        self.balance: dict[tuple[str, str], int] = {}
        self.transacted: set[str] = set()
        self.referrals: dict[str, list[Any]] = {}  # referee -> [referrer, status]
        self.txs: dict[str, Tx] = {}
        self.hold_model: dict[str, Hold] = {}
        self.redemptions = 0
        self.stock: dict[str, int] = {}
        self.price: dict[str, int] = {}
        self.partners: dict[str, tuple[str, int, int]] = {}
        self.free_codes: dict[int, list[str]] = {}
        self.issued: set[str] = set()
        self.exported: dict[str, int] = {}
        self.export_files: dict[str, dict[str, int]] = {}
        self.postings = 0
        self.keys = 0
        self.seen: dict[int, tuple[Any, ...]] = {}
        self.requests: list[Done] = []
        self.audited: tuple[Any, ...] | None = None
        self.default_referrals: dict[tuple[str, str], Outcome] = {}

    # --- plumbing ------------------------------------------------------------------------------

    def new_id(self, kind: str) -> str:
        return f"{self.prefix}-{kind}{next(self.counter)}"

    def run(self, use_case: Callable[[Session], Any]) -> Any:
        try:
            return run_in_transaction(self.engine, use_case)
        except PrevenanceError as error:
            return error

    def now(self) -> datetime:
        return self.clock.now()

    def expect_refused(self, result: Result, kind: type[PrevenanceError]) -> None:
        assert isinstance(result, kind), f"expected {kind.__name__}, got {result!r}"
        event(f"refused: {kind.__name__}")

    def accepted(self, result: Result) -> Outcome:
        assert isinstance(result, Outcome), f"expected success, got {result!r}"
        assert not result.replayed
        self.keys += 1
        return result

    def points(self, member: str) -> int:
        return self.balance[(member, "points")]

    def expired_holds(self, member: str | None) -> list[Hold]:
        return [
            h
            for h in self.hold_model.values()
            if h.status == "held" and self.now() >= h.expires_at and member in (None, h.member)
        ]

    def release(self, holds: list[Hold]) -> None:
        for hold in holds:
            hold.status = "expired"
            self.balance[(hold.member, "points")] += hold.points
            self.postings += 1

    # --- set-up ----------------------------------------------------------------------------------

    @initialize()
    def catalogue_and_partners(self) -> None:
        now = self.now()
        self.price = {f"{self.prefix}-mug": 300, f"{self.prefix}-bag": 2_500}
        self.stock = {f"{self.prefix}-mug": 3, f"{self.prefix}-bag": 40}
        self.partners = {
            f"{self.prefix}-air": ("airline", 1_000, 1_000),
            f"{self.prefix}-hotel": ("hotel", 2_000, 1_000),
            f"{self.prefix}-shop": ("merchant", 1, 1),
        }
        self.free_codes = {
            500: [f"{self.prefix}-c500-{i}" for i in range(4)],
            1_500: [f"{self.prefix}-c1500-{i}" for i in range(2)],
        }

        def set_up(session: Session) -> None:
            for sku, points in self.price.items():
                service.put_catalogue_item(
                    session, sku=sku, name=sku, points=points, stock=self.stock[sku], now=now
                )
            for code, (kind, ppb, upb) in self.partners.items():
                service.put_partner(
                    session,
                    code=code,
                    kind=kind,
                    name=code,
                    points_per_block=ppb,
                    units_per_block=upb,
                    now=now,
                )
            for points, codes in self.free_codes.items():
                service.load_ecodes(
                    session, partner_code=f"{self.prefix}-shop", points=points, codes=codes, now=now
                )

        run_in_transaction(self.engine, set_up)

    def _new_member(self, product: str) -> str:
        ref = self.new_id("m")
        data = customers.MemberData(
            name="Ada Lovelace", email="ada@example.org", language="en", country="GB", product=product
        )
        run_in_transaction(self.engine, lambda s: customers.upsert(s, ref=ref, data=data, now=self.now()))
        self.product[ref] = product
        self.balance[(ref, "points")] = 0
        self.balance[(ref, "miles")] = 0
        self.exported[ref] = 0
        return ref

    @initialize(
        target=members,
        openings=st.lists(
            st.tuples(
                st.sampled_from(sorted(PRODUCTS)), st.sampled_from([0, 5_000, 100_000, 500_000, 2_000_000])
            ),
            min_size=1,
            max_size=3,
        ),
    )
    def first_members(self, openings: list[tuple[str, int]]) -> MultipleResults[str]:
        """A few members, most with an opening transaction (so that spending has something to spend)."""
        refs = []
        for product, minor in openings:
            ref = self._new_member(product)
            if minor:
                self._earn(ref, "EUR", minor, "groceries")
            refs.append(ref)
        return multiple(*refs)

    @rule(target=members, product=st.sampled_from(sorted(PRODUCTS)))
    def create_member(self, product: str) -> str:
        return self._new_member(product)

    # --- earning and refunds -------------------------------------------------------------------

    def _earn_call(self, tx: service.TransactionInput) -> Callable[[Session], Outcome]:
        return lambda s: service.record_transaction(s, tx=tx, now=self.now())

    @rule(
        target=transactions,
        member=members,
        currency=st.sampled_from(CURRENCIES),
        minor=st.one_of(st.integers(1, 250), st.integers(1, 400_000)),
        category=st.sampled_from(CATEGORIES),
    )
    def earn(self, member: str, currency: str, minor: int, category: str) -> str:
        return self._earn(member, currency, minor, category)

    @rule(target=transactions, member=members, euros=st.integers(1, 3_000), travel=st.booleans())
    def earn_in_euros(self, member: str, euros: int, travel: bool) -> str:
        return self._earn(member, "EUR", euros * 100, "travel" if travel else "groceries")

    def _earn(self, member: str, currency: str, minor: int, category: str) -> str:
        tx_id = self.new_id("t")
        tx = service.TransactionInput(
            id=tx_id,
            member_ref=member,
            amount=text(minor, currency),
            currency=currency,
            merchant="Le Comptoir",
            category=category,
            occurred_at=self.now() - timedelta(hours=2),
        )
        other = dataclasses.replace(tx, amount=text(minor + 1, currency))
        outcome = self.accepted(self.run(self._earn_call(tx)))
        product = self.product[member]
        unit, upe = unit_of(product), per_euro(product, category)
        units = earned(minor, currency, upe)
        assert units >= 1, "with every transaction you always earn something"
        self.balance[(member, unit)] += units
        self.postings += 1
        self.txs[tx_id] = Tx(tx_id, member, currency, minor, upe, unit, units)
        self.transacted.add(member)
        assert (outcome.status_code, outcome.body) == (
            201,
            {
                "id": tx_id,
                "member_ref": member,
                "points_earned": units,
                "unit": unit,
                "balance": self.balance[(member, unit)],
            },
        )
        referral = self.referrals.get(member)
        if referral is not None and referral[1] == "pending":
            referrer = referral[0]
            self.balance[(referrer, unit_of(self.product[referrer]))] += int(
                PRODUCTS[self.product[referrer]].get("referral_bonus", 5000)
            )
            self.postings += 1
            referral[1] = "rewarded"
            event("referral bonus credited")
        self.remember(f"earn {tx_id}", self._earn_call(tx), self._earn_call(other), outcome)
        return tx_id

    @rule(
        member=members,
        bad=st.sampled_from(["-5", "0", "1.234", "abc", "unknown-member", "XYZ", "JPY-decimals"]),
    )
    def earn_refused(self, member: str, bad: str) -> None:
        body: dict[str, Any] = {
            "id": self.new_id("t"),
            "member_ref": member,
            "amount": "10.00",
            "currency": "EUR",
            "merchant": "Le Comptoir",
            "category": "books",
            "occurred_at": self.now(),
        }
        if bad == "unknown-member":
            body["member_ref"] = self.new_id("nobody")
        elif bad == "XYZ":
            body["currency"] = "XYZ"
        elif bad == "JPY-decimals":
            body.update(currency="JPY", amount="100.5")
        else:
            body["amount"] = bad
        tx = service.TransactionInput(**body)
        self.expect_refused(self.run(self._earn_call(tx)), InvalidInput)

    def _refund_call(self, tx_id: str, refund_id: str, amount: str) -> Callable[[Session], Outcome]:
        return lambda s: service.refund_transaction(
            s, transaction_id=tx_id, refund_id=refund_id, amount=amount, now=self.now()
        )

    @rule(
        tx_id=transactions,
        how=st.sampled_from(["partial", "all but a little", "full", "too much"]),
        share=st.integers(1, 999),
    )
    def refund(self, tx_id: str, how: str, share: int) -> None:
        self._refund(tx_id, how, share)

    @rule(tx_id=transactions)
    def refund_in_full(self, tx_id: str) -> None:
        self._refund(tx_id, "full", 1)

    def _refund(self, tx_id: str, how: str, share: int) -> None:
        tx = self.txs[tx_id]
        left = tx.minor - tx.refunded
        if how == "partial" and left >= 2:
            minor = min(left - 1, max(1, left * share // 1000))
        elif how == "all but a little" and left > share % 250 + 1:
            minor = left - (share % 250 + 1)
        elif how == "full" and left >= 1:
            minor = left
        else:
            minor = left + share
        refund_id = self.new_id("r")
        call = self._refund_call(tx_id, refund_id, text(minor, tx.currency))
        result = self.run(call)
        if minor > left:
            self.expect_refused(result, RefundTooLarge)
            return
        outcome = self.accepted(result)
        keeps = earned(left - minor, tx.currency, tx.upe)
        reversed_units = tx.units - keeps
        assert reversed_units >= 0
        tx.refunded += minor
        tx.units = keeps
        if not reversed_units:
            event("refund too small to reverse a unit")
        if reversed_units:
            self.postings += 1
            self.balance[(tx.member, tx.unit)] -= reversed_units
        if self.balance[(tx.member, tx.unit)] < 0:
            event("refund left a negative balance")
        assert (outcome.status_code, outcome.body) == (
            201,
            {
                "id": refund_id,
                "transaction_id": tx_id,
                "points_reversed": reversed_units,
                "unit": tx.unit,
                "balance": self.balance[(tx.member, tx.unit)],
            },
        )
        other = self._refund_call(tx_id, refund_id, text(minor + 1, tx.currency))
        self.remember(f"refund {refund_id}", call, other, outcome)

    # --- redemptions -----------------------------------------------------------------------------

    def _redeem_call(self, member: str, request: dict[str, Any]) -> Callable[[Session], Outcome]:
        return lambda s: service.redeem(s, member_ref=member, request=request, now=self.now())

    def _redeem(
        self,
        member: str,
        request: dict[str, Any],
        other: dict[str, Any],
        cost: int | None,
        refusal: type[PrevenanceError] | None = None,
    ) -> Outcome | None:
        """Send a redemption; ``cost`` None means a refusal other than points is expected."""
        result = self.run(self._redeem_call(member, request))
        expired = self.expired_holds(member)
        available = self.points(member) + sum(h.points for h in expired)
        if refusal is None and cost is not None and cost > available:
            refusal = InsufficientPoints
        if refusal is not None:
            # The whole use case rolled back: even the release of this member's expired holds.
            if self.points(member) < 0:
                event("redemption refused while a refund left the balance negative")
            if expired:
                event("refused redemption kept the expired holds (rolled back)")
            self.expect_refused(result, refusal)
            return None
        assert cost is not None
        outcome = self.accepted(result)
        event(f"accepted: {request['kind']}")
        if expired:
            event("redemption released the member's expired holds first")
        self.release(expired)
        self.balance[(member, "points")] -= cost
        assert self.points(member) >= 0, "a redemption never overdraws"
        self.postings += 1
        self.redemptions += 1
        body = outcome.body
        assert outcome.status_code == 201
        assert (body["id"], body["kind"], body["member_ref"]) == (request["id"], request["kind"], member)
        assert (body["points_debited"], body["balance"]) == (cost, self.points(member))
        self.remember(
            f"redeem {request['kind']} {request['id']}",
            self._redeem_call(member, request),
            self._redeem_call(member, other),
            outcome,
        )
        return outcome

    @rule(member=members, which=st.sampled_from(["mug", "bag"]), quantity=st.integers(1, 3))
    def redeem_catalogue(self, member: str, which: str, quantity: int) -> None:
        sku = f"{self.prefix}-{which}"
        request = {"id": self.new_id("d"), "kind": "catalogue", "sku": sku, "quantity": quantity}
        cost = self.price[sku] * quantity
        refusal = None
        if cost <= self.points(member) + sum(h.points for h in self.expired_holds(member)):
            refusal = OutOfStock if self.stock[sku] < quantity else None
        outcome = self._redeem(member, request, {**request, "quantity": quantity + 1}, cost, refusal)
        if outcome is not None:
            self.stock[sku] -= quantity

    @rule(member=members, points=st.sampled_from([None, 500, 1_500]))
    def redeem_ecode(self, member: str, points: int | None) -> None:
        request = {
            "id": self.new_id("d"),
            "kind": "ecode",
            "partner": f"{self.prefix}-shop",
            "points": points,
        }
        other = {**request, "points": 777}
        pools = [p for p in sorted(self.free_codes) if self.free_codes[p] and points in (None, p)]
        if not pools:
            self._redeem(member, request, other, None, NoCodesLeft)
            return
        price = pools[0]
        outcome = self._redeem(member, request, other, price)
        if outcome is not None:
            code = outcome.body["code"]
            assert code in self.free_codes[price], f"{code} is not a free code of {price} points"
            assert code not in self.issued, f"e-code {code} handed out twice"
            self.free_codes[price].remove(code)
            self.issued.add(code)

    @rule(
        member=members,
        partner=st.sampled_from(["air", "hotel", "shop"]),
        blocks=st.integers(1, 6),
        ragged=st.booleans(),
    )
    def redeem_transfer(self, member: str, partner: str, blocks: int, ragged: bool) -> None:
        code = f"{self.prefix}-{partner}"
        kind, ppb, upb = self.partners[code]
        points = blocks * ppb + (ppb // 2 if ragged else 0)
        request = {"id": self.new_id("d"), "kind": "transfer", "partner": code, "points": points}
        other = {**request, "points": points + ppb}
        if kind == "merchant" or points % ppb:
            self._redeem(member, request, other, None, InvalidInput)
            return
        outcome = self._redeem(member, request, other, points)
        if outcome is not None:
            assert outcome.body["partner_units"] == points // ppb * upb

    @rule(target=holds, member=members, minor=st.integers(100, 150_000), offered=st.integers(1, 60_000))
    def redeem_travel(self, member: str, minor: int, offered: int) -> str:
        hold_id = self.new_id("v")
        request = {
            "id": hold_id,
            "kind": "travel",
            "booking_ref": f"PNR{hold_id[-6:]}",
            "amount": text(minor, "EUR"),
            "points": offered,
        }
        amount = Decimal(minor).scaleb(-2)
        used = min(offered, int((amount / EURO_PER_POINT).to_integral_value(rounding=ROUND_CEILING)))
        outcome = self._redeem(member, request, {**request, "points": offered + 1}, used)
        if outcome is not None:
            due = max(Decimal(0), amount - used * EURO_PER_POINT).quantize(Decimal("0.01"), ROUND_HALF_UP)
            assert outcome.body["status"] == "held"
            assert (outcome.body["points_used"], Decimal(outcome.body["cash_due"])) == (used, due)
            self.hold_model[hold_id] = Hold(hold_id, member, used, self.now() + HOLD)
        return hold_id

    @rule(hold_id=holds, action=st.sampled_from(["confirm", "void"]))
    def resolve_hold(self, hold_id: str, action: str) -> None:
        result = self.run(
            lambda s: service.resolve_hold(s, redemption_id=hold_id, action=action, now=self.now())
        )
        hold = self.hold_model.get(hold_id)
        if hold is None:  # the hold was refused when requested
            assert isinstance(result, PrevenanceError) and result.status == 404, result
            return
        assert isinstance(result, Outcome), result
        if hold.status == "held" and self.now() >= hold.expires_at:
            self.release([hold])
            event("hold expired at confirm/void")
        target = {"confirm": "confirmed", "void": "voided"}[action]
        if hold.status == target:
            assert result.status_code == 200
        elif hold.status != "held":
            assert result.status_code == HoldNotPending.status, result
            assert result.body["redemption_status"] == hold.status
            return
        else:
            assert result.status_code == 200, result
            hold.status = target
            self.postings += 1
            if action == "void":
                self.balance[(hold.member, "points")] += hold.points
        assert result.body["status"] == target
        assert result.body["balance"] == self.points(hold.member)

    # --- referral ------------------------------------------------------------------------------

    @rule(referrer=members, referee=members, with_key=st.booleans())
    def refer(self, referrer: str, referee: str, with_key: bool) -> None:
        key = self.new_id("k") if with_key else None

        def call(referee_ref: str) -> Callable[[Session], Outcome]:
            return lambda s: service.create_referral(
                s, referrer_ref=referrer, referee_ref=referee_ref, key=key, now=self.now()
            )

        result = self.run(call(referee))
        default = self.default_referrals.get((referrer, referee))
        if key is None and default is not None:
            # Without a caller key, the pair is the key: the first answer is replayed.
            assert isinstance(result, Outcome) and result.replayed, result
            assert (result.status_code, result.body) == (default.status_code, default.body)
            return
        if referrer == referee or referee in self.referrals or referee in self.transacted:
            self.expect_refused(result, InvalidReferral)
            return
        outcome = self.accepted(result)
        unit = unit_of(self.product[referrer])
        bonus = int(PRODUCTS[self.product[referrer]].get("referral_bonus", 5000))
        assert outcome.status_code == 201
        assert (outcome.body["status"], outcome.body["bonus"], outcome.body["unit"]) == (
            "pending",
            bonus,
            unit,
        )
        self.referrals[referee] = [referrer, "pending"]
        if key is None:
            self.default_referrals[(referrer, referee)] = outcome
        other = call(self.new_id("m")) if key else None
        self.remember(f"referral {referrer}->{referee}", call(referee), other, outcome)

    # --- replays -------------------------------------------------------------------------------

    def remember(
        self,
        label: str,
        call: Callable[[Session], Outcome],
        other: Callable[[Session], Outcome] | None,
        outcome: Outcome,
    ) -> None:
        self.requests.append(Done(label, call, other, outcome.status_code, outcome.body))

    @precondition(lambda self: self.requests)
    @rule(data=st.data())
    def replay_same_body(self, data: st.DataObject) -> None:
        request = data.draw(st.sampled_from(self.requests), label="request")
        result = self.run(request.call)
        assert isinstance(result, Outcome), result
        assert result.replayed, f"{request.label} was not replayed"
        event(f"replayed: {request.label.split()[0]}")
        assert (result.status_code, result.body) == (request.status, request.body), request.label

    @precondition(lambda self: any(r.other for r in self.requests))
    @rule(data=st.data())
    def replay_other_body(self, data: st.DataObject) -> None:
        request = data.draw(st.sampled_from([r for r in self.requests if r.other]), label="request")
        assert request.other is not None
        self.expect_refused(self.run(request.other), IdempotencyConflict)

    # --- time ----------------------------------------------------------------------------------

    @rule(
        minutes=st.sampled_from([0, 1, 10, 29, 31, 45, 24 * 60, 400 * 24 * 60]),
        then=st.sampled_from(["nothing", "maintenance", "maintenance", "export miles"]),
    )
    def time_passes(self, minutes: int, then: str) -> None:
        """Time only ever releases travel holds (maintenance pass); it never takes points away."""
        self.clock.advance(timedelta(minutes=minutes))
        if then == "maintenance":
            self.maintenance_pass()
        elif then == "export miles":
            self.export_miles()

    @rule(hold_id=holds, then=st.sampled_from(["maintenance", "nothing"]))
    def hold_left_to_expire(self, hold_id: str, then: str) -> None:
        """Let a hold's time run out (then the maintenance pass, or the next use case, releases it)."""
        hold = self.hold_model.get(hold_id)
        if hold is not None and hold.expires_at > self.now():
            self.clock.advance(hold.expires_at - self.now())
        if then == "maintenance":
            self.maintenance_pass()

    def maintenance_pass(self) -> None:
        run_in_transaction(self.engine, lambda s: service.release_expired_holds(s, now=self.now()))
        if self.expired_holds(None):
            event("maintenance released expired holds")
        self.release(self.expired_holds(None))

    def export_miles(self) -> None:
        day = self.now().date()
        files = run_in_transaction(
            self.engine, lambda s: service.export_miles(s, export_date=day, now=self.now())
        )
        ours = {
            ref: miles
            for file in files
            for ref, miles in file["members"]
            if ref.startswith(self.prefix + "-")
        }
        if day.isoformat() in self.export_files:
            # The date was exported before: the same file again, nothing new sent.
            assert ours == self.export_files.get(day.isoformat(), {})
            return
        expected = {}
        for ref in self.product:
            owed = self.balance[(ref, "miles")] - self.exported[ref]
            if owed:
                expected[ref] = owed
            self.exported[ref] = self.balance[(ref, "miles")]
        assert ours == expected
        if expected:
            event("miles exported")
        self.export_files[day.isoformat()] = ours

    # --- the invariants --------------------------------------------------------------------------

    @invariant()
    def database_agrees_with_model(self) -> None:
        like = f"{self.prefix}-%"
        with read_session(self.engine) as s:
            ids = dict(s.execute(select(Member.ref, Member.id).where(Member.ref.like(like))).all())
            assert set(ids) == set(self.product)
            refs = {member_id: ref for ref, member_id in ids.items()}

            # The member's balance (kept on its account) = the model.
            account = {
                row.id: (row.member_id, row.unit, row.balance)
                for row in s.execute(
                    select(Account.id, Account.member_id, Account.unit, Account.balance).where(
                        Account.member_id.in_(list(ids.values()) or [-1])
                    )
                )
            }
            kept_balances = {(ref, unit): 0 for ref in ids for unit in ("points", "miles")}
            kept_balances.update({(refs[m], unit): int(b) for m, unit, b in account.values()})
            assert kept_balances == self.balance
            rows = s.execute(
                select(
                    Posting.id,
                    Posting.idempotency_key,
                    Posting.debit_account_id,
                    Posting.credit_account_id,
                    Posting.amount,
                    Posting.unit,
                    Posting.reason,
                    Posting.reference,
                    Posting.balance_after,
                ).where(Posting.reference.like(like))
            ).all()
            postings = {row[0]: tuple(row) for row in rows}
            summed = {account_id: 0 for account_id in account}
            for _, _, debit, credit, amount, unit, reason, _, balance_after in postings.values():
                assert amount > 0 and isinstance(amount, int)
                for side in (debit, credit):
                    if side in account:
                        assert unit == account[side][1], (
                            f"a {unit} posting touched a {account[side][1]} account"
                        )
                if debit in account:
                    summed[debit] -= amount
                    assert reason == "refund" or reason in SPENDING, f"{reason} took units from a member"
                    if reason in SPENDING:
                        assert balance_after >= 0, "a spending posting overdrew an account"
                if credit in account:
                    summed[credit] += amount
            for account_id, (_, _, kept) in account.items():
                assert summed[account_id] == kept, (account_id, summed[account_id], kept)

            # Append-only: every posting seen before is still there, unchanged; nothing extra.
            for posting_id, seen in self.seen.items():
                assert postings.get(posting_id) == seen, f"posting {posting_id} changed or vanished"
            self.seen = postings
            assert len(postings) == self.postings, (len(postings), self.postings)

            # Rejected and replayed requests wrote nothing.
            keys = s.execute(
                select(func.count()).select_from(IdempotencyKey).where(IdempotencyKey.key.like(like))
            ).scalar_one()
            assert keys == self.keys, (keys, self.keys)
            statuses = dict(
                s.execute(select(Redemption.id, Redemption.status).where(Redemption.id.like(like))).all()
            )
            assert len(statuses) == self.redemptions
            for hold in self.hold_model.values():
                assert statuses[hold.id] == hold.status, (hold.id, statuses[hold.id], hold.status)
            txs = {
                row[0]: (row[1], row[2])
                for row in s.execute(
                    select(
                        CardTransaction.id, CardTransaction.units_current, CardTransaction.refunded_minor
                    ).where(CardTransaction.id.like(like))
                )
            }
            assert txs == {t.id: (t.units, t.refunded) for t in self.txs.values()}
            stock = dict(
                s.execute(
                    select(CatalogueItem.sku, CatalogueItem.stock).where(CatalogueItem.sku.like(like))
                ).all()
            )
            assert stock == self.stock
            issued = s.execute(
                select(ECode.code).where(
                    ECode.partner_code == f"{self.prefix}-shop", ECode.redemption_id.is_not(None)
                )
            ).scalars()
            assert sorted(issued) == sorted(self.issued)
            exported_twice = s.execute(
                select(MilesExportLine.posting_id)
                .group_by(MilesExportLine.posting_id)
                .having(func.count() > 1)
            ).all()
            assert not exported_twice

            # Σ postings per unit = 0, counted on the accounts' own units.
            per_account = (
                select(
                    Account.unit.label("unit"),
                    case(
                        (Posting.credit_account_id == Account.id, Posting.amount), else_=-Posting.amount
                    ).label("delta"),
                )
                .join(
                    Posting,
                    (Posting.credit_account_id == Account.id) | (Posting.debit_account_id == Account.id),
                )
                .subquery()
            )
            totals = s.execute(
                select(per_account.c.unit, func.sum(per_account.c.delta)).group_by(per_account.c.unit)
            )
            assert all(int(total) == 0 for _, total in totals), "Σ postings per unit is not 0"
            # The full audit, whenever the ledger moved (a step that wrote no posting and changed no
            # balance, as the checks above prove, cannot change its verdict).
            state = (frozenset(postings), tuple(sorted(account.items())))
            if state != self.audited:
                report = ledger.audit(s)
                assert report["ok"], [c for c in report["checks"] if not c["ok"]]
                self.audited = state

    def teardown(self) -> None:
        note(f"prefix {self.prefix}: {self.postings} postings, balances {self.balance}")
        SEEN["examples"] += 1
        SEEN["postings"] += self.postings


def wipe(engine: Engine, *, now: datetime) -> None:
    """Empty every table and reinstall the shipped programme."""
    with engine.begin() as connection:
        empty_tables(connection)
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=now)


@pytest.mark.slow
def test_ledger_invariants_hold_over_random_histories(engine: Engine, clock: FrozenClock) -> None:
    machine = type(
        "LedgerMachine",
        (LedgerMachine,),
        {"engine": engine, "start": clock.now()},
    )
    run_state_machine_as_test(
        machine,
        settings=settings(max_examples=EXAMPLES, stateful_step_count=STEPS, deadline=None),
    )
    if os.environ.get("LEDGER_DEBUG"):
        print(sorted(SEEN.items()))


# --- the same guarantees, spelled out once as plain scenarios -----------------------------------


def _member(engine: Engine, clock: FrozenClock, ref: str, product: str = "gold") -> None:
    data = customers.MemberData(
        name="Jean Moulin", email="jean@example.fr", language="fr", country="FR", product=product
    )
    run_in_transaction(engine, lambda s: customers.upsert(s, ref=ref, data=data, now=clock.now()))


def _earn(engine: Engine, clock: FrozenClock, tx_id: str, ref: str, amount: str) -> Outcome:
    tx = service.TransactionInput(
        id=tx_id,
        member_ref=ref,
        amount=amount,
        currency="EUR",
        merchant="Fnac",
        category="books",
        occurred_at=clock.now(),
    )
    return run_in_transaction(engine, lambda s: service.record_transaction(s, tx=tx, now=clock.now()))


def _points(engine: Engine, ref: str) -> int:
    with read_session(engine) as s:
        return int(service.get_balance(s, member_ref=ref)["points"])


def test_refund_of_spent_points_goes_negative_and_redemptions_wait(
    engine: Engine, clock: FrozenClock
) -> None:
    _member(engine, clock, "N1")
    now = clock.now()
    run_in_transaction(
        engine, lambda s: service.put_catalogue_item(s, sku="pen", name="Pen", points=100, stock=10, now=now)
    )
    _earn(engine, clock, "T1", "N1", "150.00")

    def buy(redemption_id: str) -> Callable[[Session], Outcome]:
        request = {"id": redemption_id, "kind": "catalogue", "sku": "pen", "quantity": 1}
        return lambda s: service.redeem(s, member_ref="N1", request=request, now=clock.now())

    run_in_transaction(engine, buy("D1"))
    refund = run_in_transaction(
        engine,
        lambda s: service.refund_transaction(
            s, transaction_id="T1", refund_id="R1", amount="150.00", now=now
        ),
    )
    assert refund.body["balance"] == -100 == _points(engine, "N1")
    with pytest.raises(InsufficientPoints):
        run_in_transaction(engine, buy("D2"))
    _earn(engine, clock, "T2", "N1", "150.00")
    assert _points(engine, "N1") == 50
    with pytest.raises(InsufficientPoints):
        run_in_transaction(engine, buy("D2"))
    _earn(engine, clock, "T3", "N1", "50.00")
    assert run_in_transaction(engine, buy("D2")).body["balance"] == 0
    with read_session(engine) as s:
        assert ledger.audit(s)["ok"]


def test_points_never_expire_with_time(engine: Engine, clock: FrozenClock) -> None:
    """Without an expiry policy (the default), neither time nor the daily expiry run takes a point."""
    _member(engine, clock, "E1")
    _earn(engine, clock, "T1", "E1", "1234.56")
    for _ in range(12):
        clock.advance(timedelta(days=365))
        run_in_transaction(engine, lambda s: service.release_expired_holds(s, now=clock.now()))
        assert service.expire(engine, as_of=clock.now().date(), now=clock.now()).points_expired == 0
    assert _points(engine, "E1") == 1234
    with read_session(engine) as s:
        reasons = set(s.execute(select(Posting.reason)).scalars())
    assert reasons == {"earn"}


def test_held_points_cannot_be_spent_twice(engine: Engine, clock: FrozenClock) -> None:
    _member(engine, clock, "H1")
    _earn(engine, clock, "T1", "H1", "1000.00")
    now = clock.now()
    run_in_transaction(
        engine, lambda s: service.put_catalogue_item(s, sku="pen", name="Pen", points=300, stock=10, now=now)
    )

    def redeem(request: dict[str, Any]) -> Outcome:
        return run_in_transaction(
            engine, lambda s: service.redeem(s, member_ref="H1", request=request, now=now)
        )

    def resolve(hold_id: str, action: str) -> Outcome:
        return run_in_transaction(
            engine, lambda s: service.resolve_hold(s, redemption_id=hold_id, action=action, now=now)
        )

    trip = {"id": "V1", "kind": "travel", "booking_ref": "PNR1", "amount": "8.00", "points": 800}
    assert redeem(trip).body["balance"] == 200
    with pytest.raises(InsufficientPoints):
        redeem({"id": "D1", "kind": "catalogue", "sku": "pen", "quantity": 1})
    with pytest.raises(InsufficientPoints):
        redeem({**trip, "id": "V2", "points": 300})
    assert resolve("V1", "confirm").status_code == 200
    assert resolve("V1", "confirm").status_code == 200  # the same action again is a no-op
    voided_after_confirm = resolve("V1", "void")
    assert voided_after_confirm.status_code == 409, "a confirmed hold cannot also be given back"
    assert _points(engine, "H1") == 200
    assert [p.reason for p in _postings(engine, "V1")] == ["travel_hold", "travel_confirm"]


def test_an_unconfirmed_hold_releases_itself_once(engine: Engine, clock: FrozenClock) -> None:
    _member(engine, clock, "H2")
    _earn(engine, clock, "T1", "H2", "500.00")
    trip = {"id": "V1", "kind": "travel", "booking_ref": "PNR2", "amount": "4.00", "points": 400}
    run_in_transaction(engine, lambda s: service.redeem(s, member_ref="H2", request=trip, now=clock.now()))
    hold_minutes = HOLD.total_seconds() / 60
    clock.advance(timedelta(minutes=hold_minutes - 1))
    assert run_in_transaction(engine, lambda s: service.release_expired_holds(s, now=clock.now())) == 0
    assert _points(engine, "H2") == 100
    clock.advance(timedelta(minutes=1))
    assert run_in_transaction(engine, lambda s: service.release_expired_holds(s, now=clock.now())) == 1
    assert run_in_transaction(engine, lambda s: service.release_expired_holds(s, now=clock.now())) == 0
    late = run_in_transaction(
        engine, lambda s: service.resolve_hold(s, redemption_id="V1", action="confirm", now=clock.now())
    )
    assert late.status_code == 409 and late.body["redemption_status"] == "expired"
    assert _points(engine, "H2") == 500
    assert [p.reason for p in _postings(engine, "V1")] == ["travel_hold", "travel_hold_expired"]

    # Expired but not yet swept: the late confirm itself releases it (once) and is refused.
    run_in_transaction(
        engine, lambda s: service.redeem(s, member_ref="H2", request={**trip, "id": "V2"}, now=clock.now())
    )
    clock.advance(HOLD)
    for _ in range(2):
        late = run_in_transaction(
            engine, lambda s: service.resolve_hold(s, redemption_id="V2", action="confirm", now=clock.now())
        )
        assert late.status_code == 409 and late.body["redemption_status"] == "expired"
    assert _points(engine, "H2") == 500
    assert [p.reason for p in _postings(engine, "V2")] == ["travel_hold", "travel_hold_expired"]


def _postings(engine: Engine, reference: str) -> list[Posting]:
    with read_session(engine) as s:
        return list(s.scalars(select(Posting).where(Posting.reference == reference).order_by(Posting.id)))


SOURCE = Path(service.__file__).resolve().parents[1]
WRITES_TO_POSTINGS = re.compile(
    r"(update|delete)\(\s*(Posting|_POSTINGS)\b|\b(UPDATE\s+postings|DELETE\s+FROM\s+postings)\b",
    re.IGNORECASE,
)


def test_no_code_path_updates_or_deletes_a_posting() -> None:
    """Postings are append-only: no statement in the package updates or deletes one."""
    offenders = [
        f"{path.relative_to(SOURCE)}:{number}: {line.strip()}"
        for path in SOURCE.rglob("*.py")
        if "migrations" not in path.parts
        for number, line in enumerate(path.read_text("utf-8").splitlines(), start=1)
        if WRITES_TO_POSTINGS.search(line)
    ]
    assert not offenders, offenders
