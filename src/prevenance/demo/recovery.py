"""The demo's service recovery and goodwill, played through the real services and handlers:

- the year's detractor answers open their recovery cases (the ``survey.answered`` events are
  delivered here), the desk closes those older than two days with a deterministic mix of outcomes
  (most within the day), and the members' later answers are handed to the desk again so the report
  knows who came back a promoter; the last two days' cases stay open in the supervisor's queue;
- an emergency card delivered three hours late in Paris (promise: two hours) earns its goodwill;
- an incident (Italy) during which the affected members pay at the live campaign's
  partner: the offers they would have had are suppressed, ``incident-active``; once resolved, the
  operator grants every affected member the incident's goodwill;
- a second incident, still active, keeps offers away from its members while the demo runs.
"""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.common.problems import PrevenanceError
from prevenance.customers.tables import Member
from prevenance.db import read_session, run_in_transaction, unit_of_work
from prevenance.desk import incidents, recovery
from prevenance.desk import service as desk
from prevenance.desk.schemas import IncidentCreate
from prevenance.desk.tables import RecoveryCase
from prevenance.loyalty import service as loyalty
from prevenance.loyalty.tables import CardTransaction
from prevenance.maintenance import drain
from prevenance.views import goodwill
from prevenance.views import incidents as incident_views

OUTCOMES = (("called_back", 45), ("resolved", 30), ("goodwill_given", 12), ("customer_declined", 13))
LEFT_OPEN = timedelta(days=2)


def _deliver(engine: Engine, at: datetime) -> int:
    """Deliver the outbox until it is empty (a handler's own events, such as a grant's, included)."""
    total = 0
    while delivered := drain(engine, FrozenClock(at), deliver_events=True)["events_delivered"]:
        total += delivered
    return total


def _close_history(engine: Engine, rng: random.Random, now: datetime) -> dict[str, int]:
    counts = {"recovery_cases": 0, "recovery_closed": 0}
    with read_session(engine) as session:
        cases = session.execute(
            select(RecoveryCase.id, RecoveryCase.opened_at, RecoveryCase.status).order_by(
                RecoveryCase.opened_at
            )
        ).all()
    counts["recovery_cases"] = len(cases)
    names = [name for name, _ in OUTCOMES]
    weights = [weight for _, weight in OUTCOMES]
    for case_id, opened_at, status in cases:
        if status != "open" or opened_at > now - LEFT_OPEN:
            continue
        outcome = rng.choices(names, weights)[0]
        closed_at = opened_at + timedelta(hours=rng.choice((1, 2, 4, 6, 10, 20, 30)))
        with unit_of_work(engine) as session:
            recovery.close_case(
                session, case_id=case_id, outcome=outcome, note=None, by="demo-agent", now=closed_at
            )
        counts["recovery_closed"] += 1
    # The members' later answers, handed to the desk again (a re-delivery changes nothing else):
    # the report learns whose next answer was a promoter.
    with read_session(engine) as session:
        event_ids = list(session.scalars(select(OutboxEvent.id).where(OutboxEvent.type == "survey.answered")))
    for start in range(0, len(event_ids), 500):
        with unit_of_work(engine) as session:
            for event in session.scalars(
                select(OutboxEvent).where(OutboxEvent.id.in_(event_ids[start : start + 500]))
            ):
                recovery.on_survey_answered(session, event)
    return counts


def _late_card(engine: Engine, seed: int, member_ref: str, now: datetime) -> int:
    order_id = f"demo-{seed}-late-card"
    ordered = now - timedelta(days=3)
    order = desk.CardReplacementInput(
        id=order_id, member_ref=member_ref, city="Paris", country="FR", address="12 rue de la Paix"
    )
    with unit_of_work(engine) as session:
        desk.order_card_replacement(session, order=order, now=ordered)
    for action, at in (("dispatch", ordered + timedelta(hours=1)), ("deliver", ordered + timedelta(hours=5))):
        try:
            with unit_of_work(engine) as session:
                desk.advance_card_replacement(session, replacement_id=order_id, action=action, now=at)
        except PrevenanceError:
            return 0
    return 1


def _incident(engine: Engine, seed: int, suffix: str, since: datetime, affects: dict[str, list[str]]) -> str:
    incident_id = f"demo-{seed}-{suffix}"
    body = IncidentCreate.model_validate(
        {
            "id": incident_id,
            "title_fr": "Paiements sans contact indisponibles",
            "title_en": "Contactless payments unavailable",
            "body_fr": "Les paiements sans contact sont refusés ; insérez votre carte. Nous vous tenons informé.",
            "body_en": "Contactless payments are declined; please insert your card. We will keep you posted.",
            "since": since,
            "affects": affects,
        }
    )
    incident_views.declare(engine, body, by="demo-operator", now=since)
    return incident_id


def _pay_at_partner(engine: Engine, refs: list[str], at: datetime, seed: int) -> None:
    """Payments at the live campaign's partner by members an incident affects: their offers are
    decided and suppressed by the offers hook (when this process installed it)."""
    for n, ref in enumerate(refs):
        tx = loyalty.TransactionInput(
            id=f"demo-{seed}-incident-pay-{n}",
            member_ref=ref,
            amount="64.00",
            currency="EUR",
            merchant="Page & Platine",
            category="books",
            occurred_at=at,
        )
        record(engine, tx, at)


def record(engine: Engine, tx: loyalty.TransactionInput, at: datetime) -> None:
    run_in_transaction(engine, lambda s: loyalty.record_transaction(s, tx=tx, now=at))


def load_recovery_demo(engine: Engine, *, seed: int, now: datetime) -> dict[str, int]:
    """Play the recovery and goodwill stories (idempotent: a second load changes nothing)."""
    rng = random.Random(f"{seed}:recovery")
    _deliver(engine, now)  # the year's answers open their cases
    counts = _close_history(engine, rng, now)
    with read_session(engine) as session:
        refs = {
            (m.country, m.product): m.ref
            for m in session.scalars(
                select(Member).where(Member.ref.like(f"demo-{seed}-%")).order_by(Member.id)
            )
        }
        # The quietest first: lapsing members are the ones the live welcome-back campaign targets.
        last_paid = func.max(CardTransaction.occurred_at)
        italians = list(
            session.scalars(
                select(Member.ref)
                .join(CardTransaction, CardTransaction.member_id == Member.id, isouter=True)
                .where(Member.ref.like(f"demo-{seed}-%"), Member.country == "IT")
                .group_by(Member.id, Member.ref)
                .order_by(last_paid, Member.id)
            )
        )
    french = next((ref for (country, _), ref in sorted(refs.items()) if country == "FR"), None)
    with read_session(engine) as session:
        done = incidents.list_incidents(session, status="resolved", limit=500)
    if any(i["id"] == f"demo-{seed}-contactless" for i in done):
        return {**counts, "late_cards": 0, "incident_goodwill": 0}
    counts["late_cards"] = _late_card(engine, seed, french, now) if french else 0
    counts["incident_goodwill"] = 0
    if italians:
        since = now - timedelta(days=5)  # within the live campaign (from seven days ago)
        incident_id = _incident(engine, seed, "contactless", since, {"countries": ["IT"]})
        _pay_at_partner(engine, italians[:20], since + timedelta(hours=3), seed)
        with unit_of_work(engine) as session:
            incidents.resolve(
                session,
                incident_id=incident_id,
                body_fr="Les paiements sans contact fonctionnent de nouveau.",
                body_en="Contactless payments work again.",
                now=since + timedelta(days=1),
            )
        granted = goodwill.grant_incident_goodwill(
            engine, incident_id=incident_id, by="demo-operator", now=since + timedelta(days=1, hours=1)
        )
        counts["incident_goodwill"] = granted["granted"]
        _incident(
            engine,
            seed,
            "contactless-es",
            now - timedelta(hours=6),
            {"countries": ["ES"], "products": ["centurion"]},
        )
    _deliver(engine, now)  # the late card's goodwill, and the members told
    return counts
