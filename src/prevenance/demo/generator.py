"""Deterministic demo data, written through the service layer so the ledger is exactly what the API
would have produced.

The whole story is planned first, in memory, from ``random.Random(seed)`` (and a seeded Faker for
the names): members across FR, GB, DE, IT, ES on the five card products, who referred whom, a year
of card payments ending at the load date, refunds, and the moments members want to redeem. Times
are planned as offsets before an *anchor* (the load moment), so the plan does not depend on the
day it runs; the anchor of the first load is found again on a rerun from the first member's
``created_at``. The plan is then played in time order through ``prevenance.loyalty.service`` and
``prevenance.customers.service``, many calls per unit of work. Every write has an id derived from
the seed, and the services are idempotent by id, so running the load again adds nothing.

What a member can afford is never read back from the database: it is followed from the bodies the
services answer (a replay answers the first body again), so a rerun takes the same decisions as the
first run, and a run killed part-way and started again ends with the ledger of one clean run.
"""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from prevenance.common.problems import PrevenanceError
from prevenance.customers import rules as customers_rules
from prevenance.customers import service as customers
from prevenance.customers.tables import Member
from prevenance.db import read_session, unit_of_work
from prevenance.demo.plan import (
    CATALOGUE,
    ECODE_PARTNER,
    ECODE_VALUES,
    PARTNERS,
    POINTS_PRODUCTS,
    YEAR,
    Event,
    Person,
    plan,
)
from prevenance.loyalty import ledger
from prevenance.loyalty import service as loyalty
from prevenance.loyalty.schemas import (
    CatalogueRedemption,
    ECodeRedemption,
    TransactionCreate,
    TransferRedemption,
    TravelRedemption,
)
from prevenance.loyalty.tables import Posting

CHUNK = 2_000  # events per unit of work


class DemoMismatch(ValueError):
    """The database already holds this seed's demo at another size (its ids would clash)."""


# --- playing the plan ---------------------------------------------------------------------------


@dataclass
class _State:
    """What the loader knows from the services' answers (never read back from the database)."""

    balances: dict[int, int] = field(default_factory=dict)  # member index -> balance in its unit
    pending: dict[int, tuple[int, int]] = field(default_factory=dict)  # referee -> (referrer, bonus)
    held: dict[str, tuple[int, int]] = field(default_factory=dict)  # redemption -> (member, points)
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, by: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + by


def _chunks(events: list[Event], size: int) -> Iterator[list[Event]]:
    for start in range(0, len(events), size):
        yield events[start : start + size]


def _anchor(engine: Engine, people: list[Person]) -> datetime:
    """The load moment of the first load (so a rerun replays identical bodies), else now."""
    with read_session(engine) as session:
        first = customers.find_member(session, ref=people[0].ref)
        if first is not None:
            return first.created_at + people[0].joined_before
    return datetime.now(UTC).replace(second=0, microsecond=0)


def _setup(session: Session, *, seed: int, members: int, at: datetime, state: _State) -> None:
    """Partners, catalogue and the e-code pool (the catalogue only once: stock is live)."""
    for code, (kind, name, per_block, units) in PARTNERS.items():
        loyalty.put_partner(
            session,
            code=code,
            kind=kind,
            name=name,
            points_per_block=per_block,
            units_per_block=units,
            now=at,
        )
    existing = {item.sku for item in loyalty.list_catalogue(session)}
    for sku, (name, points, stock) in CATALOGUE.items():
        if sku not in existing:
            loyalty.put_catalogue_item(
                session, sku=sku, name=name, points=points, stock=max(3, stock * members // 1000), now=at
            )
    rng = random.Random(f"{seed}:ecodes")
    for points in ECODE_VALUES:
        size = max(10, members // (8 if points == 1_000 else 16))
        codes = [f"PP{points // 100}-{rng.getrandbits(40):010X}" for _ in range(size)]
        loaded = loyalty.load_ecodes(session, partner_code=ECODE_PARTNER, points=points, codes=codes, now=at)
        state.count("ecodes", loaded["loaded"] + loaded["skipped"])


def demo_phone(ref: str, country: str) -> str | None:
    """A valid mobile number of the member's country, derived from the ref (no draw from the plan's
    generator, so the rest of the demo is unchanged): the country's example mobile with its last six
    digits taken from a hash of the ref."""
    import phonenumbers

    example = phonenumbers.example_number_for_type(country, phonenumbers.PhoneNumberType.MOBILE)
    if example is None:
        return None
    national = str(example.national_number)
    digest = int(hashlib.sha256(ref.encode()).hexdigest(), 16)
    for attempt in range(5):
        tail = f"{(digest >> (20 * attempt)) % 1_000_000:06d}"
        candidate = f"+{example.country_code}{national[:-6]}{tail}"
        if customers_rules.normalise_phone(candidate, country=country) == candidate:
            return candidate
    return f"+{example.country_code}{national}"


def _members(session: Session, *, people: list[Person], anchor: datetime, state: _State) -> None:
    for person in people:
        data = customers.MemberData(
            person.name,
            person.email,
            person.language,
            person.country,
            person.product,
            person.city,
            demo_phone(person.ref, person.country),
        )
        customers.upsert(session, ref=person.ref, data=data, now=anchor - person.joined_before)
        state.balances[len(state.balances)] = 0
    state.count("members", len(people))


def _referrals(
    session: Session,
    *,
    referrals: list[tuple[str, int, int]],
    people: list[Person],
    anchor: datetime,
    state: _State,
) -> None:
    for key, referrer, referee in referrals:
        outcome = loyalty.create_referral(
            session,
            referrer_ref=people[referrer].ref,
            referee_ref=people[referee].ref,
            key=key,
            now=anchor - people[referee].joined_before + timedelta(minutes=5),
        )
        if outcome.status_code == 201:
            state.pending[referee] = (referrer, int(outcome.body["bonus"]))
            state.count("referrals")


def _redemption_request(event: Event, balance: int) -> dict[str, Any] | None:
    """What the member asks for, given what they can afford (None: nothing this time)."""
    kind, u, v, rid = event.data["kind"], event.data["u"], event.data["v"], event.data["id"]
    if kind == "catalogue":
        affordable = [sku for sku, (_, points, _) in CATALOGUE.items() if points <= balance]
        if not affordable:
            return None
        sku = affordable[-1 - int(u * min(3, len(affordable)))]  # one of the best they can afford
        return CatalogueRedemption(id=rid, kind="catalogue", sku=sku, quantity=1).model_dump()
    if kind == "ecode":
        fitting = [p for p in ECODE_VALUES if p <= balance]
        if not fitting:
            return None
        return ECodeRedemption(
            id=rid, kind="ecode", partner=ECODE_PARTNER, points=fitting[int(u * len(fitting))]
        ).model_dump()
    if kind == "transfer":
        partner = "skyline" if u < 0.6 else "maison"
        block = PARTNERS[partner][2]
        blocks = min(balance // block, 5 + int(v * 20))
        if blocks < 1:
            return None
        return TransferRedemption(
            id=rid, kind="transfer", partner=partner, points=blocks * block
        ).model_dump()
    if balance < 2_000:
        return None
    amount = 150 + int(u * 1_350)
    points = min(
        balance // 2, int(amount * 100 * (0.3 + 0.7 * v))
    )  # part of the trip, half the points at most
    return TravelRedemption(
        id=rid,
        kind="travel",
        booking_ref=f"TRV-{rid.rsplit('rd', 1)[-1]}",
        amount=f"{amount}.00",
        points=points,
    ).model_dump()


def _play(session: Session, event: Event, *, people: list[Person], anchor: datetime, state: _State) -> None:
    now = anchor - YEAR + timedelta(seconds=event.at)
    data = event.data
    if event.kind == "tx":
        index = data["member"]
        body = TransactionCreate(
            id=data["id"],
            member_ref=people[index].ref,
            amount=data["amount"],
            currency=data["currency"],
            merchant=data["merchant"],
            category=data["category"],
            occurred_at=now - timedelta(seconds=2),
        )
        outcome = loyalty.record_transaction(
            session, tx=loyalty.TransactionInput(**body.model_dump()), now=now
        )
        state.balances[index] = int(outcome.body["balance"])
        state.count("transactions")
        state.count("replayed", outcome.replayed)
        if index in state.pending:
            referrer, bonus = state.pending.pop(index)
            if people[referrer].product in POINTS_PRODUCTS:
                state.balances[referrer] += bonus
            state.count("referrals_rewarded")
    elif event.kind == "refund":
        outcome = loyalty.refund_transaction(
            session, transaction_id=data["tx"], refund_id=data["id"], amount=data["amount"], now=now
        )
        state.balances[data["member"]] = int(outcome.body["balance"])
        state.count("refunds")
        state.count("replayed", outcome.replayed)
    elif event.kind == "redeem":
        index = data["member"]
        request = _redemption_request(event, state.balances[index])
        if request is None:
            return
        try:
            with session.begin_nested():
                outcome = loyalty.redeem(session, member_ref=people[index].ref, request=request, now=now)
        except PrevenanceError:  # e.g. the e-code pool ran dry: the member chose nothing this time
            state.count("redemptions_refused")
            return
        if outcome.status_code != 201:
            state.count("redemptions_refused")
            return
        state.balances[index] = int(outcome.body["balance"])
        if request["kind"] == "travel":
            state.held[request["id"]] = (index, int(outcome.body["points_debited"]))
        state.count("redemptions")
        state.count(f"redemptions_{request['kind']}")
        state.count("replayed", outcome.replayed)
    elif event.kind == "resolve":
        held = state.held.pop(data["id"], None)
        if held is None:  # the hold was never placed (not enough points)
            return
        loyalty.resolve_hold(session, redemption_id=data["id"], action=data["action"], now=now)
        if data["action"] == "void":
            state.balances[held[0]] += held[1]
        state.count(f"travel_{data['action']}ed")


def load_demo(
    engine: Engine, *, members: int, seed: int, now: datetime | None = None, desk_scale: float = 0.0
) -> dict[str, int]:
    """Load (or complete, or re-check) the demo; returns counts and ``ok`` = 1 when the audit holds.

    With ``desk_scale`` > 0 it also plays a year of service-desk data at that fraction of the
    rates the sources give (``prevenance.demo.desk``)."""
    if members < 1:
        raise ValueError("members must be at least 1")
    started = time.perf_counter()
    story = plan(members=members, seed=seed)
    with read_session(engine) as session:
        loaded = session.execute(
            select(func.count()).select_from(Member).where(Member.ref.like(f"demo-{seed}-%"))
        ).scalar_one()
    if loaded and loaded != members:
        raise DemoMismatch(
            f"this database holds the demo of seed {seed} with {loaded} members, not {members}: "
            "load it with the same size, another seed, or into a fresh database"
        )
    anchor = now or _anchor(engine, story.people)
    state = _State()
    with read_session(engine) as session:
        postings_before = session.execute(select(func.count()).select_from(Posting)).scalar_one()
    with unit_of_work(engine) as session:
        _members(session, people=story.people, anchor=anchor, state=state)
        _setup(session, seed=seed, members=members, at=anchor - YEAR - timedelta(days=1), state=state)
        _referrals(session, referrals=story.referrals, people=story.people, anchor=anchor, state=state)
    for chunk in _chunks(story.events, CHUNK):
        with unit_of_work(engine) as session:
            for event in chunk:
                _play(session, event, people=story.people, anchor=anchor, state=state)
    with read_session(engine) as session:
        report = ledger.audit(session)
    summary = {
        key: state.counts.get(key, 0)
        for key in (
            "members",
            "transactions",
            "refunds",
            "referrals",
            "referrals_rewarded",
            "redemptions",
            "redemptions_catalogue",
            "redemptions_ecode",
            "redemptions_transfer",
            "redemptions_travel",
            "travel_confirmed",
            "travel_voided",
            "redemptions_refused",
            "ecodes",
            "replayed",
        )
    }
    if desk_scale > 0:
        from prevenance.demo.desk import load_desk

        summary.update(load_desk(engine, people=story.people, seed=seed, scale=desk_scale, anchor=anchor))
        from prevenance.demo.mail import load_mail_demo

        summary.update(load_mail_demo(engine, people=story.people, seed=seed, anchor=anchor))
        from prevenance.demo.voice import load_voice_demo

        summary.update({f"voice_{k}": v for k, v in load_voice_demo(engine, seed=seed, now=anchor).items()})
        from prevenance.demo.chat import load_chat_demo

        summary.update(
            {
                f"chat_{k}": v
                for k, v in load_chat_demo(engine, people=story.people, seed=seed, now=anchor).items()
            }
        )
    from prevenance.demo.offers import load_offers_demo

    summary.update({f"offers_{k}": v for k, v in load_offers_demo(engine, seed=seed, now=anchor).items()})
    if desk_scale > 0:
        from prevenance.demo.recovery import load_recovery_demo

        summary.update(load_recovery_demo(engine, seed=seed, now=anchor))
    with read_session(engine) as session:
        report = ledger.audit(session)  # again: offer rewards and the planted uplift moved points
    summary["postings"] = int(report["postings"])
    summary["postings_added"] = int(report["postings"]) - int(postings_before)
    summary["seconds"] = round(time.perf_counter() - started)
    summary["ok"] = int(bool(report["ok"]))
    return summary
