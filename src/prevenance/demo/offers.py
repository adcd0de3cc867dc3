"""Demo offers over the demo year, with control groups and a planted uplift for the ROI to find.

Four campaigns (ids ``demo-<seed>-…``), written through ``offers.service.put_offer``:

- ``books-bonus``: 200 bonus points at Page & Platine (books), from 150 to 60 days before ``now``;
- ``dining-x2``: double points on dining (partner Deliveroo, 300 points at most), 120 to 30 days before;
- ``fuel-ecode``: a fuel e-code at Shell, 200 to 100 days before — the **null campaign** (no uplift);
- ``welcome-back``: live from 7 days before to 60 days after ``now``, for lapsing members (no history).

For each past campaign, every demo member with a payment in the first two thirds of its window who
did not ask to be left alone is decided on their first such payment (the triggering transaction),
with the real holdout rule (SHA-256 of member and campaign, 10 %) and the live propensity model or
its prior: control → ``would_have_received``, treatment → ``made``. 40 % of the treated activate
within three days. **Planted uplift** (books and dining only): every treated member pays extra at the
partner in the 60 days after the decision, 8 % of what they spent (everywhere) in those 60 days, in
one to three payments recorded through ``loyalty.service.record_transaction`` (so the ledger and
its audit hold); the first extra payment after an activation earns the reward (bonus points, or the
multiplier's extra) through ``loyalty.service.award_bonus``, exactly as the live path pays it, and
the campaign's ``spent_points`` follows. Control members get no extra payment, so
difference-in-differences on spend should find about +8 % for treated members (and nothing for the
fuel campaign). A **programme-wide holdout** of 5 % of the members (salt ``demo-<seed>``) opens 205
days before ``now``, before the first campaign: its members receive no offer at all, so the ROI
screen can set the whole programme against it. Deterministic in ``seed``; a rerun finds its
decisions and adds nothing.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Float, cast, insert, select, update
from sqlalchemy.orm import Session

from prevenance.common.bulk import rows_changed
from prevenance.customers.tables import Member
from prevenance.db import read_session, unit_of_work
from prevenance.desk import service as desk
from prevenance.loyalty import ledger
from prevenance.loyalty import service as loyalty
from prevenance.loyalty.tables import CardTransaction
from prevenance.offers import rules
from prevenance.offers import service as offers
from prevenance.offers.features import load_history
from prevenance.offers.tables import Offer, OfferDecision

Progress = Callable[[str, int, int], None]
UPLIFT = Decimal("0.08")
PROGRAMME_HOLDOUT = Decimal("0.05")
HOLDOUT_DAYS_BEFORE_NOW = 205
POST_DAYS = 60
ACTIVATION_RATE = 0.4


def _campaigns(seed: int, now: datetime) -> list[tuple[str, dict[str, Any], bool]]:
    """(id, definition, planted uplift?) of each demo campaign."""
    day = timedelta(days=1)

    def texts(fr: str, en: str, body_fr: str, body_en: str) -> dict[str, str]:
        return {"title_fr": fr, "title_en": en, "text_fr": body_fr, "text_en": body_en}

    return [
        (
            f"demo-{seed}-books-bonus",
            {
                "partner_merchant": "Page & Platine",
                "partner_category": "books",
                "reward_kind": "bonus_points",
                "reward": {"points": 200},
                "unit_cost_eur": "2.00",
                "margin_rate": "0.06",
                "expected_spend_eur": "80",
                "budget_points": 2_000_000,
                "valid_from": now - 150 * day,
                "valid_until": now - 60 * day,
                **texts(
                    "200 points chez Page & Platine",
                    "200 points at Page & Platine",
                    "Activez l'offre, puis réglez un achat chez Page & Platine avec votre carte.",
                    "Activate the offer, then pay at Page & Platine with your card.",
                ),
            },
            True,
        ),
        (
            f"demo-{seed}-dining-x2",
            {
                "partner_merchant": "Deliveroo",
                "partner_category": "dining",
                "reward_kind": "category_multiplier",
                "reward": {"category": "dining", "multiplier": "2", "max_points": 300},
                "unit_cost_eur": "1.50",
                "margin_rate": "0.04",
                "expected_spend_eur": "120",
                "budget_points": 3_000_000,
                "valid_from": now - 120 * day,
                "valid_until": now - 30 * day,
                **texts(
                    "Points doublés au restaurant",
                    "Double points on dining",
                    "Activez l'offre : votre prochain repas réglé par carte rapporte deux fois plus.",
                    "Activate the offer: your next meal paid by card earns twice the points.",
                ),
            },
            True,
        ),
        (
            f"demo-{seed}-fuel-ecode",
            {
                "partner_merchant": "Shell",
                "partner_category": "fuel",
                "reward_kind": "ecode",
                "reward": {"sku": "SHELL-10EUR", "points": 1000},
                "unit_cost_eur": "10.00",
                "margin_rate": "0.02",
                "expected_spend_eur": "60",
                "budget_points": None,
                "valid_from": now - 200 * day,
                "valid_until": now - 100 * day,
                **texts(
                    "Un bon carburant de 10 €",
                    "A €10 fuel voucher",
                    "Activez l'offre et faites le plein chez Shell : un e-code de 10 € vous attend.",
                    "Activate the offer and fill up at Shell: a €10 e-code awaits you.",
                ),
            },
            False,
        ),
        (
            f"demo-{seed}-welcome-back",
            {
                "partner_merchant": "Page & Platine",
                "partner_category": "books",
                "reward_kind": "bonus_points",
                "reward": {"points": 300},
                "eligibility": {"segments": ["lapsing"]},
                "unit_cost_eur": "3.00",
                "margin_rate": "0.06",
                "expected_spend_eur": "80",
                "budget_points": 500_000,
                "valid_from": now - 7 * day,
                "valid_until": now + 60 * day,
                **texts(
                    "Content de vous revoir : 300 points",
                    "Welcome back: 300 points",
                    "Revenez chez Page & Platine : 300 points après activation.",
                    "Come back to Page & Platine: 300 points once activated.",
                ),
            },
            False,
        ),
    ]


def _payments(
    session: Session, start: datetime, end: datetime
) -> dict[int, list[tuple[str, datetime, float]]]:
    """Each member's payments (id, time, EUR) in ``[start, end)``, in time order."""
    rows = session.execute(
        select(
            CardTransaction.member_id,
            CardTransaction.id,
            CardTransaction.occurred_at,
            cast(CardTransaction.amount_eur, Float),
        )
        .where(CardTransaction.occurred_at >= start, CardTransaction.occurred_at < end)
        .order_by(CardTransaction.member_id, CardTransaction.occurred_at, CardTransaction.id)
    ).all()
    out: dict[int, list[tuple[str, datetime, float]]] = defaultdict(list)
    for member_id, tx_id, at, amount in rows:
        out[member_id].append((tx_id, at, float(amount)))
    return out


def load_offers_demo(
    engine: Engine, *, seed: int, now: datetime, progress: Progress | None = None
) -> dict[str, int]:
    """Load the demo campaigns, their decisions, activations, rewards and planted uplift."""
    rng = random.Random(f"{seed}:offers")
    counts: dict[str, int] = defaultdict(int)
    campaigns = _campaigns(seed, now)
    with unit_of_work(engine) as session:
        ledger.ensure_system_accounts(session)
        for offer_id, definition, _ in campaigns:
            body, _ = offers.put_offer(
                session, offer_id=offer_id, data=dict(definition), now=now - timedelta(days=210)
            )
            if definition["valid_until"] <= now and body["status"] != "ended":
                # A past campaign is ended at once: a live offers hook (if this process has one)
                # then neither decides nor pays on the demo's own payments; the demo does both.
                offers.set_status(session, offer_id=offer_id, status="ended", now=definition["valid_until"])
        members = {m.id: m for m in session.scalars(select(Member).where(Member.ref.like(f"demo-{seed}-%")))}
        quiet = {mid for mid in members if not desk.may_send_marketing(session, member_id=mid)}
        if not offers.programme_holdout_periods(session):
            # The programme-wide holdout opens before the first campaign: its members get no offer.
            offers.start_programme_holdout(
                session,
                share=str(PROGRAMME_HOLDOUT),
                now=now - timedelta(days=HOLDOUT_DAYS_BEFORE_NOW),
                by="demo",
                salt=f"demo-{seed}",
            )
        period = offers.programme_holdout_in_force(session)
        if period is not None:
            quiet |= {
                mid
                for mid, m in members.items()
                if rules.in_programme_holdout(m.ref, period.salt, period.share)
            }
    for index, (offer_id, definition, planted) in enumerate(campaigns):
        start, end = definition["valid_from"], definition["valid_until"]
        if end > now:
            continue  # the live campaign decides on live payments
        if progress:
            progress("offers", index, len(campaigns))
        with read_session(engine) as session:
            if session.scalar(select(OfferDecision.id).where(OfferDecision.offer_id == offer_id).limit(1)):
                counts["campaigns_already_loaded"] += 1
                continue
            decide_by = start + (end - start) * 2 / 3
            window = _payments(session, start, decide_by)
            after = _payments(session, start, decide_by + timedelta(days=POST_DAYS))
            spec = replace(offers.spec_of(offers.get_offer_row(session, offer_id=offer_id)), status="active")
            model = offers.current_model(session)
        for member_id, payments in sorted(window.items()):
            member = members.get(member_id)
            if member is None or member_id in quiet:
                continue
            tx_id, decided_at, _ = payments[0]
            with unit_of_work(engine) as session:
                _decide(
                    session,
                    rng=rng,
                    spec=spec,
                    model=model,
                    member=member,
                    tx_id=tx_id,
                    decided_at=decided_at,
                    later=[p for p in after.get(member_id, []) if p[1] > decided_at],
                    planted=planted,
                    counts=counts,
                )
    with read_session(engine) as session:
        report = ledger.audit(session)
    if progress:
        progress("offers", len(campaigns), len(campaigns))
    counts["ok"] = int(bool(report["ok"]))
    return dict(counts)


def _decide(
    session: Session,
    *,
    rng: random.Random,
    spec: rules.OfferSpec,
    model: rules.LogisticModel,
    member: Member,
    tx_id: str,
    decided_at: datetime,
    later: list[tuple[str, datetime, float]],
    planted: bool,
    counts: dict[str, int],
) -> None:
    history = load_history(session, member_id=member.id, as_of=decided_at, exclude_transaction=tx_id)
    propensity = model.score(history.vector(merchant_key=spec.merchant_key, category=spec.partner_category))
    arm = rules.arm_of(member.ref, spec.id, spec.holdout_share)
    decision_id = f"dd_{spec.id}_{member.id}"
    activated = arm == "treatment" and rng.random() < ACTIVATION_RATE
    activated_at = decided_at + timedelta(hours=rng.uniform(1, 72)) if activated else None
    session.execute(
        insert(OfferDecision),
        {
            "id": decision_id,
            "offer_id": spec.id,
            "member_id": member.id,
            "transaction_id": tx_id,
            "arm": arm,
            "decided_at": decided_at,
            "expires_at": min(decided_at + timedelta(days=spec.decision_days), spec.valid_until),
            "propensity": propensity,
            "expected_value": rules.expected_value(propensity, spec),
            "model_version": model.version,
            "status": "would_have_received" if arm == "control" else ("activated" if activated else "made"),
            "activated_at": activated_at,
        },
    )
    counts[f"decisions_{arm}"] += 1
    counts["activated"] += int(activated)
    if arm == "control" or not planted:
        return
    post_end = decided_at + timedelta(days=POST_DAYS)
    spent_after = sum(amount for _, at, amount in later if at <= post_end)
    extra = Decimal(str(spent_after)) * UPLIFT
    if extra < 1:
        return
    pieces = rng.randint(1, 3)
    for piece in range(pieces):
        at = decided_at + timedelta(days=rng.uniform(4, POST_DAYS - 1))
        amount = (extra / pieces).quantize(Decimal("0.01"))
        if amount <= 0:
            continue
        tx = loyalty.TransactionInput(
            id=f"{decision_id}-uplift-{piece}",
            member_ref=member.ref,
            amount=str(amount),
            currency="EUR",
            merchant=spec.partner_merchant,
            category=spec.partner_category or "other",
            occurred_at=at,
        )
        outcome = loyalty.record_transaction(session, tx=tx, now=at)
        counts["uplift_transactions"] += 1
        if activated_at is None or at < activated_at or at > decided_at + timedelta(days=spec.decision_days):
            continue
        facts = rules.TransactionFacts(
            member_ref=member.ref,
            product=member.product,
            tier="",
            country=member.country,
            segment="",
            merchant=tx.merchant,
            category=tx.category,
            amount_eur=amount,
            points_earned=int(outcome.body.get("points_earned", 0)),
            occurred_at=at,
        )
        points = rules.reward_points(spec, facts)
        if points is None:
            continue
        won = session.execute(
            update(OfferDecision)
            .where(OfferDecision.id == decision_id, OfferDecision.status == "activated")
            .values(status="rewarded", rewarded_at=at, reward_points=points, reward_transaction_id=tx.id)
        )
        if rows_changed(won) != 1:
            continue
        session.execute(
            update(Offer).where(Offer.id == spec.id).values(spent_points=Offer.spent_points + points)
        )
        if spec.reward.kind != "ecode":
            loyalty.award_bonus(
                session,
                member_id=member.id,
                points=points,
                reason=loyalty.OFFER_REWARD,
                reference=decision_id,
                key=f"offer:{decision_id}",
                now=at,
            )
        counts["rewarded"] += 1
