"""The earn engine: a batch of card transactions applied in one database transaction with
set-based statements. Every door uses it: ``POST /v1/transactions`` (through the process's
batcher, ``loyalty.batcher``), the JetStream consumer (each fetched batch) and the settlement
ingest (each chunk).

Per earn the result is exactly what ``service.record_transaction`` (the one-at-a-time reference
path) gives: the same checks in the same order and the same refusals, the same card transaction,
postings (keys, amounts, ``balance_after``), balances, idempotency record (scope ``transaction``,
the body's fingerprint, the stored answer), outbox events and referral bonus, and the transaction
hooks (offers) run after the earn's postings with their answer merged into the body. A test
applies the same earns both ways and compares every row.

How a batch runs (``apply_earns``):

1. one query each for the batch's idempotency keys, its members and their pending referrals;
2. the rules in Python, in batch order: a key already stored replays its answer (or 409 for another
   body), an earlier earn of the batch with the same key is replayed the same way, a refused earn
   is answered with its problem and writes nothing;
3. the touched accounts are created if new and locked in one stable order (account id; ``SELECT …
   FOR UPDATE`` on PostgreSQL, SQLite's ``BEGIN IMMEDIATE`` already serialises writers), and the
   balances are computed in batch order from the locked rows;
4. one multi-row statement per table (``executemany`` on SQLite, ``COPY`` on PostgreSQL): card
   transactions, postings, one balance update per touched account, rewarded referrals, outbox
   events; then the hooks, earn by earn; then the idempotency records with the final answers.

When hooks are installed an earn's hook must see the ledger as one-at-a-time would have left it
(an offer reward changes the member's balance, a decision reads the member's history), so the
batch is cut into *waves* in which no account is touched twice; each wave is step 3 and 4.

An earn refused once the batch holds its locks — a hook refusing it (a ``PrevenanceError``), or
the ledger's bound (``ledger_bounds``: the balance it would leave, computed from the locked rows,
beyond ±``LEDGER_BALANCE_LIMIT``) — raises ``EarnRefused``: the caller rolls the transaction back
and runs the batch again without that earn (``run_earns``, the stream, the ingest), so one refused
earn never fails the others.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from sqlalchemy import ARRAY, Engine, and_, bindparam, func, select, true
from sqlalchemy.orm import Session

from prevenance.common.idempotency import Outcome
from prevenance.common.ids import as_utc, new_ids
from prevenance.common.lookups import InQuery
from prevenance.common.money import minor_units
from prevenance.common.problems import IdempotencyConflict, InvalidInput, PrevenanceError
from prevenance.customers import service as customers
from prevenance.customers.errors import UnknownMemberInBody
from prevenance.customers.service import MemberSummary
from prevenance.db import run_in_transaction
from prevenance.loyalty import earn_accounts, ledger, ledger_bounds, programme, rules, transactions
from prevenance.loyalty import hooks as earn_hooks
from prevenance.loyalty.earn_rows import (
    ACCOUNTS,
    CARD_COLUMNS,
    CARD_TRANSACTIONS,
    EVENT_COLUMNS,
    EVENTS,
    KEY_COLUMNS,
    KEYS,
    POSTING_COLUMNS,
    POSTINGS,
    PROGRAMME_VERSIONS,
    REFERRALS,
    SCOPE,
    Writer,
    earn_texts,
    encode_json_string,
)


def transaction_fingerprint(tx: transactions.TransactionInput) -> str:
    """``TransactionInput.fingerprint()`` without ``dataclasses.asdict`` (a unit test holds them equal)."""
    moment = tx.occurred_at
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    body = {
        "id": tx.id,
        "member_ref": tx.member_ref,
        "amount": tx.amount,
        "currency": tx.currency,
        "merchant": tx.merchant,
        "category": tx.category,
        "occurred_at": moment.isoformat(),
    }
    return hashlib.sha256(orjson.dumps(body, option=orjson.OPT_SORT_KEYS, default=str)).hexdigest()


@dataclass(frozen=True, slots=True)
class EarnRequest:
    """One earn handed to the engine: the transaction and its body's fingerprint."""

    tx: transactions.TransactionInput
    fingerprint: str

    @classmethod
    def of(cls, tx: transactions.TransactionInput) -> EarnRequest:
        return cls(tx, transaction_fingerprint(tx))


# What the engine answers per earn: the outcome (new or replayed), or the refusal as raised by the
# one-at-a-time path (its problem is what the API answers).
EarnResult = Outcome | PrevenanceError


class EarnRefused(Exception):
    """The earn at ``index`` was refused after the batch's first statements (by a transaction hook,
    or by the ledger's bound on the locked balances): roll back and run the batch without it."""

    def __init__(self, index: int, error: PrevenanceError) -> None:
        super().__init__(f"earn {index} refused: {error}")
        self.index, self.error = index, error


class PlanChanged(Exception):
    """A referral changed between the batch's plan and its locks: plan the batch again."""


@dataclass(slots=True)
class _Earn:
    index: int
    request: EarnRequest
    member: MemberSummary
    product: rules.ProductRule
    amount_eur: Any
    card: tuple[Any, ...]  # CARD_COLUMNS but created_at
    unit: str
    units: int
    body: dict[str, Any] | None = None
    body_text: str | None = None  # ``body`` as stored (``json_text``), while no hook changed it


def _evaluate(
    index: int, request: EarnRequest, member: MemberSummary | None, prog: rules.Programme
) -> _Earn | PrevenanceError:
    """``transactions.record_transaction`` without its writes: the same checks, in the same order, same errors."""
    tx = request.tx
    if member is None:
        return UnknownMemberInBody(f"no member with ref {tx.member_ref!r}", field="member_ref")
    try:
        customers.ensure_not_erased(member, field="member_ref")
        rules.check_currency(tx.currency, prog)
        amount = rules.parse_amount_field(tx.amount, tx.currency)
    except PrevenanceError as error:
        return error
    if not tx.merchant.strip():
        return InvalidInput("merchant must not be blank", field="merchant")
    product = prog.products.get(member.product)
    if product is None:
        return InvalidInput(
            f"card product {member.product!r} has no earn rule in the programme", field="member_ref"
        )
    amount_eur, rate = rules.to_euros(amount, tx.currency, prog.fx_rates)
    units_per_euro = product.units_per_euro(tx.category)
    units = rules.earn_units(amount_eur, units_per_euro=units_per_euro, minimum=prog.minimum_earn)
    if units > ledger_bounds.POSTING_AMOUNT_LIMIT:  # what ``ledger.credit_member`` would refuse
        return ledger_bounds.refusal(units, product.unit)
    card = (
        tx.id,
        member.id,
        rules.to_minor(amount, minor_units(tx.currency)),
        tx.currency,
        tx.merchant,
        tx.category,
        as_utc(tx.occurred_at),
        str(rate),
        str(amount_eur),
        product.code,
        product.unit,
        units_per_euro,
        prog.minimum_earn,
        units,
        units,
        0,
    )
    return _Earn(index, request, member, product, amount_eur, card, product.unit, units)


_K = KEYS.c
_PV = PROGRAMME_VERSIONS.c
_NEWEST_PROGRAMME = (
    select(_PV.fingerprint.label("programme")).order_by(_PV.id.desc()).limit(1).subquery("newest")
)
_WANTED_KEYS = (
    func.unnest(bindparam("p_values", type_=ARRAY(_K.key.type)))
    .table_valued("key")
    .render_derived(name="wanted")
)
_STORED_KEY = (
    select(_K.key, _K.fingerprint, _K.status_code, _K.response)
    .where(_K.scope == SCOPE, _K.key == _WANTED_KEYS.c.key)
    .limit(1)
    .lateral("found")
)
_STORED_KEYS = select(_STORED_KEY).select_from(_WANTED_KEYS).join(_STORED_KEY, true()).lateral("stored")
PROGRAMME_AND_KEYS = InQuery(
    lambda condition: select(
        _NEWEST_PROGRAMME.c.programme, _K.key, _K.fingerprint, _K.status_code, _K.response
    ).select_from(_NEWEST_PROGRAMME.outerjoin(KEYS, and_(_K.scope == SCOPE, condition))),
    _K.key,
    # PostgreSQL: one probe of the (scope, key) primary key per wanted key, whatever the planner
    # believes of the table. With ``key = ANY(…)`` beside ``scope = …``, statistics that call the
    # scope rare (a table not yet analysed: a new install, a bulk load) make it scan every key of
    # the scope and filter: 3 ms a batch at 6,000 keys, growing with the table. A ``LIMIT`` keeps
    # the lateral probe from being flattened into a join the planner could hash.
    postgres=select(
        _NEWEST_PROGRAMME.c.programme,
        _STORED_KEYS.c.key,
        _STORED_KEYS.c.fingerprint,
        _STORED_KEYS.c.status_code,
        _STORED_KEYS.c.response,
    ).select_from(_NEWEST_PROGRAMME.outerjoin(_STORED_KEYS, true())),
)
"""The newest programme version's fingerprint beside the batch's stored keys, one round trip (one
row with NULL keys when none is stored; no row without a programme)."""


def apply_earns(
    session: Session, requests: Sequence[EarnRequest], *, now: datetime, hooks: bool = True
) -> list[EarnResult]:
    """Apply a batch of earns in the caller's transaction (never commits); one result per request,
    in order. Raises ``EarnRefused`` when a hook or the ledger's bound refuses an earn (roll back, run
    again without it)
    and ``PlanChanged`` when a referral changed under the batch (roll back, run again)."""
    results: list[EarnResult | None] = [None] * len(requests)
    if not requests:
        return []
    keys = list(dict.fromkeys(r.tx.id for r in requests))
    rows = list(PROGRAMME_AND_KEYS.rows(session, keys))
    prog = programme.current_with_fingerprint(session, rows[0][0] if rows else None)
    stored = {k: (fp, status, response) for _, k, fp, status, response in rows if k is not None}
    refs = list(dict.fromkeys(r.tx.member_ref for r in requests if r.tx.id not in stored))
    members = customers.list_summaries_by_refs(session, refs=refs)

    # Pass 1: what each earn does, in batch order, as the one-at-a-time path would decide it.
    earns: list[_Earn] = []
    claimed: dict[str, int] = {}  # key → the index of the batch's earn that claims it
    replays: list[tuple[int, int]] = []  # (index, index of the earlier earn it replays)
    for index, request in enumerate(requests):
        tx = request.tx
        known = stored.get(tx.id)
        first = claimed.get(tx.id)
        fingerprint = (
            known[0] if known is not None else (None if first is None else requests[first].fingerprint)
        )
        if fingerprint is not None and fingerprint != request.fingerprint:
            results[index] = IdempotencyConflict(
                f"{SCOPE} key {tx.id!r} was already used with a different body", field="id"
            )
            continue
        if known is not None:
            results[index] = Outcome(known[1], dict(known[2] or {}), replayed=True)
            continue
        if first is not None:
            replays.append((index, first))
            continue
        outcome = _evaluate(index, request, members.get(tx.member_ref), prog)
        if isinstance(outcome, PrevenanceError):
            results[index] = outcome
            continue
        earns.append(outcome)
        claimed[tx.id] = index

    hook_list = earn_hooks.transaction_hooks() if hooks else []
    if all(getattr(hook, "idle", _never_idle)(session) for hook in hook_list):
        hook_list = []  # each would answer None and write nothing: one wave, no hook call
    start = 0
    while start < len(earns):
        start += _apply_wave(session, earns[start:], now=now, hooks=hook_list)
    for earn in earns:
        assert earn.body is not None
        results[earn.index] = Outcome(201, earn.body)
    for index, first in replays:
        answer = results[first]
        assert isinstance(answer, Outcome)
        results[index] = Outcome(answer.status_code, dict(answer.body), replayed=True)
    return [cast(EarnResult, r) for r in results]


def _apply_wave(
    session: Session, earns: list[_Earn], *, now: datetime, hooks: list[earn_hooks.TransactionHook]
) -> int:
    """Write the longest prefix of ``earns`` in which (when hooks run) no account is touched twice;
    returns how many earns it wrote."""
    referee_ids = list(dict.fromkeys(e.member.id for e in earns))
    predicted = earn_accounts.pending_referrals(session, referee_ids, lock=False)
    needed: dict[str, tuple[str, int | None]] = {}
    winners: dict[int, str] = {}  # referee id → the transaction that rewards the referral
    touched: set[str] = set()
    count = 0
    for earn in earns:
        codes = [ledger.member_account_code(earn.member.id, earn.unit)]
        referral = predicted.get(earn.member.id)
        wins = referral is not None and earn.member.id not in winners
        if wins and referral is not None and referral.bonus > 0:
            codes.append(ledger.member_account_code(referral.referrer_id, referral.unit))
        if hooks and count and (touched.intersection(codes) or earn.member.id in winners):
            break
        touched.update(codes)
        count += 1
        needed.setdefault(codes[0], (earn.unit, earn.member.id))
        if earn.units > 0:
            needed.setdefault(ledger.system_account_code("issuance", earn.unit), (earn.unit, None))
        if wins and referral is not None:
            winners[earn.member.id] = earn.request.tx.id
            if referral.bonus > 0:
                needed.setdefault(
                    ledger.system_account_code("issuance", referral.unit), (referral.unit, None)
                )
                needed.setdefault(codes[1], (referral.unit, referral.referrer_id))
    wave = earns[:count]
    accounts = earn_accounts.ensure_accounts(session, needed)
    # With the referees' accounts locked no referral can be created or rewarded for them any more
    # (both take these locks first); if one was since the plan was made, plan the batch again.
    wave_referees = list(dict.fromkeys(e.member.id for e in wave))
    expected = {k: v for k, v in predicted.items() if k in set(wave_referees)}
    if session.get_bind().dialect.name == "postgresql":
        # On SQLite the prediction was already made under the write lock (``BEGIN IMMEDIATE``).
        referrals = earn_accounts.pending_referrals(session, wave_referees, lock=True)
        if referrals != expected:
            raise PlanChanged()
    else:
        referrals = expected

    writer = Writer(session)
    at = writer.time(now)
    balances = {code: balance for code, (_, balance) in accounts.items()}
    cards: list[tuple[Any, ...]] = []
    postings: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    rewarded: list[tuple[Any, ...]] = []
    unit_text = {unit: encode_json_string(unit) for unit in {e.unit for e in wave}}
    # Two events at most per earn (its own, a referral's); popped from the end, in batch order.
    event_ids = new_ids("evt", 2 * len(wave))
    event_ids.reverse()
    for earn in wave:
        tx = earn.request.tx
        member_id = earn.member.id
        occurred_at = earn.card[6]
        cards.append((*earn.card[:6], writer.time(occurred_at), *earn.card[7:], at))
        code = ledger.member_account_code(member_id, earn.unit)
        if earn.units > 0:
            balances[code] += earn.units
            if not ledger_bounds.within_limit(balances[code]):  # nothing of this wave written yet
                raise EarnRefused(earn.index, ledger_bounds.refusal(earn.units, earn.unit))
            postings.append(
                (
                    ledger.posting_key("earn", tx.id),
                    accounts[ledger.system_account_code("issuance", earn.unit)][0],
                    accounts[code][0],
                    earn.units,
                    earn.unit,
                    "earn",
                    tx.id,
                    member_id,
                    balances[code],
                    at,
                )
            )
        balance = balances[code]
        if winners.get(member_id) == tx.id:
            referral = referrals[member_id]
            rewarded.append(("rewarded", at, tx.id, referral.id, "pending"))
            if referral.bonus > 0:
                referrer = ledger.member_account_code(referral.referrer_id, referral.unit)
                balances[referrer] += referral.bonus
                if not ledger_bounds.within_limit(balances[referrer]):
                    raise EarnRefused(earn.index, ledger_bounds.refusal(referral.bonus, referral.unit))
                postings.append(
                    (
                        ledger.posting_key("referral", referral.id),
                        accounts[ledger.system_account_code("issuance", referral.unit)][0],
                        accounts[referrer][0],
                        referral.bonus,
                        referral.unit,
                        "referral",
                        referral.id,
                        referral.referrer_id,
                        balances[referrer],
                        at,
                    )
                )
            rewarded_payload: dict[str, Any] = {"id": referral.id, "referee_ref": earn.member.ref}
            rewarded_payload.update(bonus=referral.bonus, unit=referral.unit)
            events.append((event_ids.pop(), "referral.rewarded", writer.json(rewarded_payload), at))
        body: dict[str, Any] = {"id": tx.id, "member_ref": earn.member.ref, "points_earned": earn.units}
        body.update(unit=earn.unit, balance=balance)
        earn.body = body
        if writer.plain_json:
            earn.body_text, payload_text = earn_texts(
                tx, earn.member.ref, earn.units, unit_text[earn.unit], balance, occurred_at
            )
        else:
            payload = {**body, "category": tx.category, "merchant": tx.merchant}
            payload["occurred_at"] = occurred_at.isoformat()
            payload_text = writer.json(payload)
        events.append((event_ids.pop(), "points.earned", payload_text, at))

    # Written in the order the one-at-a-time path writes them, so ids (postings, events) follow
    # the batch; on PostgreSQL in one round trip (``Writer.batched``). The stored answers come
    # last: a hook may add to an answer, so with hooks they are written after the hooks ran.
    with writer.batched():
        writer.insert(CARD_TRANSACTIONS, CARD_COLUMNS, cards)
        writer.insert(POSTINGS, POSTING_COLUMNS, postings)
        changed = [
            (value, accounts[code][0]) for code, value in balances.items() if value != accounts[code][1]
        ]
        writer.update(ACCOUNTS, ("balance",), ("id",), changed)
        writer.update(
            REFERRALS, ("status", "rewarded_at", "rewarding_transaction_id"), ("id", "status"), rewarded
        )
        writer.insert(EVENTS, EVENT_COLUMNS, events)
        if not hooks:
            _store_answers(writer, wave, at)
    if hooks:
        _run_hooks(session, wave, hooks, now=now)
        _store_answers(writer, wave, at)
    return count


def _store_answers(writer: Writer, wave: list[_Earn], at: Any) -> None:
    """Each earn's answer under its key: a replay answers it."""
    writer.insert(
        KEYS,
        KEY_COLUMNS,
        [
            (SCOPE, e.request.tx.id, e.request.fingerprint, 201, e.body_text or writer.json(e.body or {}), at)
            for e in wave
        ],
    )


def _run_hooks(
    session: Session, wave: list[_Earn], hooks: list[earn_hooks.TransactionHook], *, now: datetime
) -> None:
    """Each earn's hooks, in batch order, after the wave's postings (as ``record_transaction`` runs them
    after its own); what they answer is merged into the earn's body before it is stored."""
    for earn in wave:
        tx, member = earn.request.tx, earn.member
        assert earn.body is not None
        earned = earn_hooks.EarnedTransaction(
            id=tx.id,
            member_id=member.id,
            member_ref=member.ref,
            product=earn.product.code,
            merchant=tx.merchant,
            category=tx.category,
            amount_eur=earn.amount_eur,
            points_earned=earn.units,
            unit=earn.unit,
            occurred_at=as_utc(tx.occurred_at),
            member_country=member.country,
            member_language=member.language,
            tier=earn.product.tier,
        )
        for hook in hooks:
            try:
                extra = hook(session, member_id=member.id, transaction=earned, now=now)
            except PrevenanceError as error:
                raise EarnRefused(earn.index, error) from error
            if extra:
                earn.body.update(extra)
                earn.body_text = None


_PLAN_ATTEMPTS = 8


def _never_idle(_session: Session) -> bool:
    """A hook that cannot say it has nothing to do is assumed to have work."""
    return False


def run_earns(
    engine: Engine,
    requests: Sequence[EarnRequest],
    *,
    now: Callable[[], datetime],
    hooks: bool = True,
    transact: Callable[[Engine, Callable[[Session], list[EarnResult]]], list[EarnResult]] | None = None,
) -> list[EarnResult]:
    """Apply a batch in one committed transaction (``run_in_transaction``: re-run when a concurrent
    writer won a race); an earn a hook or the ledger's bound refuses is answered with its refusal and
    the batch runs again without it. Any other error is raised: nothing of the batch was committed."""
    transact = transact or run_in_transaction
    pending = list(range(len(requests)))
    refused: dict[int, EarnResult] = {}
    attempts = 0
    while True:
        batch = [requests[i] for i in pending]
        try:
            partial = transact(engine, lambda s, b=batch: apply_earns(s, b, now=now(), hooks=hooks))  # type: ignore[misc]
        except EarnRefused as refusal:
            refused[pending.pop(refusal.index)] = refusal.error
            continue
        except PlanChanged:
            attempts += 1
            if attempts >= _PLAN_ATTEMPTS:
                raise RuntimeError("the batch's referrals kept changing under it; try again later")
            time.sleep(0.005 * attempts)
            continue
        break
    answers: list[EarnResult | None] = [None] * len(requests)
    for i, result in zip(pending, partial, strict=True):
        answers[i] = result
    for i, result in refused.items():
        answers[i] = result
    return [cast(EarnResult, a) for a in answers]
