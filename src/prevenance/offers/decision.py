"""The decision on every earning transaction: eligibility, the holdout, the propensity score, caps
and budget, the reward exactly once; and the hook that runs it inside loyalty's earn."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, insert
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.ids import fingerprint
from prevenance.customers import service as customers
from prevenance.loyalty import service as loyalty
from prevenance.offers import features as feats
from prevenance.offers import repository as repo
from prevenance.offers import rules
from prevenance.offers.cache import current_model, live_offers
from prevenance.offers.holdout import programme_holdout_in_force
from prevenance.offers.tables import OfferDecision, OfferSuppression

HOOK_NAME = "offers"


@dataclass(frozen=True)
class OfferNote:
    """What the communications log records when an offer is made (the front line sees it)."""

    id: str
    member_id: int
    member_ref: str
    language: str
    sent_at: datetime
    subject: str
    summary: str
    template: str = "offer-made"
    channel: str = "web"
    kind: str = "marketing"


MayContact = Callable[[Session, int], bool]
Suppressor = Callable[[Session, int], str | None]
"""Why the member may receive no marketing offer right now (``incident-active``), or None."""
RecordNote = Callable[[Session, OfferNote], None]


def _offer_view(
    offer: rules.OfferSpec, row_texts: dict[str, str], decision_id: str, *, language: str
) -> dict[str, Any]:
    lang = "en" if language == "en" else "fr"
    return {
        "decision_id": decision_id,
        "offer_id": offer.id,
        "partner_merchant": offer.partner_merchant,
        "reward_kind": offer.reward.kind,
        "reward": offer.reward.as_json(),
        "language": lang,
        "title": row_texts[f"title_{lang}"],
        "text": row_texts[f"text_{lang}"],
        "status": "made",
    }


def _decision_id(offer_id: str, member_id: int, transaction_id: str) -> str:
    """Deterministic: a retried decision computes the same id (and the unique key catches it)."""
    return "ofd_" + fingerprint([offer_id, member_id, transaction_id])[:32]


# On the table, not the mapped class: a Core insert skips the ORM's bulk-insert machinery (a third
# of the statement's cost), and this runs on every offer decision.
_DECISIONS: Table = OfferDecision.__table__  # type: ignore[assignment]
_INSERT_DECISION = insert(_DECISIONS)
_SUPPRESSIONS: Table = OfferSuppression.__table__  # type: ignore[assignment]
_INSERT_SUPPRESSION = insert(_SUPPRESSIONS)


def decide(
    session: Session,
    *,
    member_id: int,
    transaction: loyalty.EarnedTransaction,
    now: datetime,
    may_contact: MayContact | None = None,
    record_note: RecordNote | None = None,
    benefits: feats.BenefitsProvider | None = None,
    suppress: Suppressor | None = None,
) -> dict[str, Any] | None:
    """Reward activated offers this payment qualifies for, then pick at most one new offer.

    Costs nothing when no offer is active or paused (the list is cached in-process). Otherwise: the member row
    is locked (decisions of one member are serialised, so caps hold under concurrent payments), the
    member's decisions are read once, and the features are computed only when an offer is eligible.
    """
    offers = live_offers(session)
    if not offers:
        return None
    by_id = {o.id: o for o in offers}
    customers.lock_shared(session, member_id=member_id)  # caps: one decision at a time per member
    decisions = repo.member_decisions(session, member_id)
    if any(
        status in ("made", "activated") and expires_at <= now for _, _, status, expires_at, _ in decisions
    ):
        repo.expire_decisions(session, member_id=member_id, now=now)  # noticed here, written once
    result: dict[str, Any] = {}
    rewards = _reward_activated(
        session, member_id=member_id, transaction=transaction, decisions=decisions, by_id=by_id, now=now
    )
    if rewards:
        result["offer_rewards"] = [r for r in rewards]
        points_after = [r["balance_after"] for r in rewards if r.get("balance_after") is not None]
        if points_after and transaction.unit == "points":
            result["balance"] = points_after[-1]
    cheap = [
        o
        for o in offers
        if o.status == "active"
        and o.valid_from <= now < o.valid_until
        and (not o.eligibility.products or transaction.product.casefold() in o.eligibility.products)
        and (not o.eligibility.categories or transaction.category.casefold() in o.eligibility.categories)
        and transaction.amount_eur >= o.eligibility.min_spend_eur
    ]
    if not cheap:
        return result or None
    used: dict[str, int] = {}
    open_offers: set[str] = set()
    for _id, offer_id, status, expires_at, _activated in decisions:
        used[offer_id] = used.get(offer_id, 0) + 1
        if status in repo.OPEN and expires_at > now:
            open_offers.add(offer_id)
    cheap = [o for o in cheap if o.id not in open_offers and used.get(o.id, 0) < o.cap_per_member]
    if not cheap:
        return result or None
    budgets = [o for o in cheap if o.budget_points is not None]
    if budgets:
        spent = repo.spent_points(session, [o.id for o in budgets])
        cheap = [
            o
            for o in cheap
            if o.budget_points is None or spent.get(o.id, 0) + o.reward.nominal_points() <= o.budget_points
        ]
        if not cheap:
            return result or None
    member_ref, country, language = (
        transaction.member_ref,
        transaction.member_country,
        transaction.member_language,
    )
    tier = transaction.tier
    history = feats.load_history(
        session,
        member_id=member_id,
        as_of=transaction.occurred_at,
        exclude_transaction=transaction.id,
        benefits=benefits,
    )
    facts = rules.TransactionFacts(
        member_ref=member_ref,
        product=transaction.product,
        tier=tier,
        country=country,
        segment=rules.segment_of(recency_days=history.recency_days, history_days=history.history_days),
        merchant=transaction.merchant,
        category=transaction.category,
        amount_eur=transaction.amount_eur,
        points_earned=transaction.points_earned,
        occurred_at=transaction.occurred_at,
    )
    eligible = [o for o in cheap if rules.is_eligible(o, facts, now)]
    if not eligible:
        return result or None
    holdout = programme_holdout_in_force(session)
    if holdout is not None and rules.in_programme_holdout(member_ref, holdout.salt, holdout.share):
        return result or None  # the programme-wide holdout: no marketing offer, no decision record
    if may_contact is not None and not may_contact(session, member_id):
        return result or None  # the member asked to be left alone: no offer, no control record
    model = current_model(session)
    scored: list[tuple[rules.OfferSpec, float, float]] = []
    for o in eligible:
        p = model.score(history.vector(merchant_key=o.merchant_key, category=o.partner_category))
        scored.append((o, p, rules.expected_value(p, o)))
    best = rules.best_offer([(o, ev) for o, _, ev in scored])
    assert best is not None
    offer, value = best
    propensity = next(p for o, p, _ in scored if o.id == offer.id)
    arm = rules.arm_of(member_ref, offer.id, offer.holdout_share)
    decision_id = _decision_id(offer.id, member_id, transaction.id)
    reason = suppress(session, member_id) if suppress is not None else None
    if reason is not None:
        # Suppressed in both arms alike, after the arm is drawn: the experiment loses the same
        # members from treatment and control, so its ROI stays unbiased.
        session.execute(
            _INSERT_SUPPRESSION,
            {
                "id": decision_id,
                "offer_id": offer.id,
                "member_id": member_id,
                "transaction_id": transaction.id,
                "arm": arm,
                "reason": reason,
                "decided_at": now,
            },
        )
        return result or None
    expires_at = min(now + timedelta(days=offer.decision_days), offer.valid_until)
    session.execute(
        _INSERT_DECISION,
        {
            "id": decision_id,
            "offer_id": offer.id,
            "member_id": member_id,
            "transaction_id": transaction.id,
            "arm": arm,
            "decided_at": now,
            "expires_at": expires_at,
            "propensity": propensity,
            "expected_value": value,
            "model_version": model.version,
            "status": "made" if arm == "treatment" else "would_have_received",
        },
    )
    if arm == "control":
        return result or None  # held out: recorded as "would have received", shown nothing
    view = _offer_view(offer, dict(offer.texts), decision_id, language=language)
    view["expires_at"] = expires_at.isoformat()
    outbox.emit(
        session,
        type="offer.made",
        payload={
            "decision_id": decision_id,
            "offer_id": offer.id,
            "member_ref": member_ref,
            "transaction_id": transaction.id,
            "propensity": round(propensity, 6),
            "expected_value": round(value, 6),
            "model_version": model.version,
        },
        now=now,
    )
    if record_note is not None:
        record_note(
            session,
            OfferNote(
                id=f"offer-made:{decision_id}",
                member_id=member_id,
                member_ref=member_ref,
                language="en" if language == "en" else "fr",
                sent_at=now,
                subject=view["title"],
                summary=view["text"],
            ),
        )
    result["offer"] = view
    return result


def _reward_activated(
    session: Session,
    *,
    member_id: int,
    transaction: loyalty.EarnedTransaction,
    decisions: list[Any],
    by_id: dict[str, rules.OfferSpec],
    now: datetime,
) -> list[dict[str, Any]]:
    """Pay the activated offers this payment qualifies for, each exactly once.

    Exactly once: the decision moves ``activated → rewarded`` by a conditional UPDATE (one winner),
    the budget by a conditional UPDATE (never above it), and the ledger posting's key is the
    decision id (unique). A payment made before the activation does not qualify.
    """
    paid: list[dict[str, Any]] = []
    for decision_id, offer_id, status, expires_at, activated_at in decisions:
        if status != "activated":
            continue
        offer = by_id.get(offer_id)
        if (
            offer is None
            or expires_at <= now
            or activated_at is None
            or transaction.occurred_at < activated_at
        ):
            continue
        facts = rules.TransactionFacts(
            member_ref=transaction.member_ref,
            product=transaction.product,
            tier="",
            country="",
            segment="",
            merchant=transaction.merchant,
            category=transaction.category,
            amount_eur=transaction.amount_eur,
            points_earned=transaction.points_earned,
            occurred_at=transaction.occurred_at,
        )
        points = rules.reward_points(offer, facts)
        if points is None:
            continue
        if not repo.claim_reward(
            session, decision_id=decision_id, points=points, transaction_id=transaction.id, now=now
        ):
            continue
        if points > 0 and not repo.spend_budget(session, offer_id=offer_id, points=points):
            repo.unclaim_reward(session, decision_id=decision_id)
            continue  # budget exhausted: the activation stays open until the offer expires
        item: dict[str, Any] = {"decision_id": decision_id, "offer_id": offer_id, "kind": offer.reward.kind}
        if offer.reward.kind == "ecode":
            item.update(sku=offer.reward.sku, points_value=points)
        else:
            balance = loyalty.award_bonus(
                session,
                member_id=member_id,
                points=points,
                reason=loyalty.OFFER_REWARD,
                reference=decision_id,
                key=f"offer:{decision_id}",
                now=now,
            )
            item.update(points=points, balance_after=balance)
        outbox.emit(
            session,
            type="offer.rewarded",
            payload={**item, "member_ref": transaction.member_ref, "transaction_id": transaction.id},
            now=now,
        )
        paid.append(item)
    return paid


def make_transaction_hook(
    *,
    may_contact: MayContact | None = None,
    record_note: RecordNote | None = None,
    benefits: feats.BenefitsProvider | None = None,
    suppress: Suppressor | None = None,
) -> loyalty.TransactionHook:
    """The loyalty transaction hook deciding offers, composed with what the caller knows of consent,
    the communications log and benefits (offers may not import the desk)."""

    def hook(
        session: Session, *, member_id: int, transaction: loyalty.EarnedTransaction, now: datetime
    ) -> dict[str, Any] | None:
        return decide(
            session,
            member_id=member_id,
            transaction=transaction,
            now=now,
            may_contact=may_contact,
            record_note=record_note,
            benefits=benefits,
            suppress=suppress,
        )

    # No live offer: the hook would answer None and write nothing for any earn (the earn engine
    # then skips it for the whole batch).
    hook.idle = lambda session: not live_offers(session)  # type: ignore[attr-defined]
    return hook


# Benefit usages for the training set, given by ``install`` (desk data: offers may not import it).
training_benefits: list[feats.BenefitEventsProvider | None] = [None]


def install(
    *,
    may_contact: MayContact | None = None,
    record_note: RecordNote | None = None,
    benefits: feats.BenefitsProvider | None = None,
    benefit_events: feats.BenefitEventsProvider | None = None,
    suppress: Suppressor | None = None,
) -> None:
    """Register the offers hook on loyalty's earn path (replacing an earlier one), and what the
    training set reads of benefit usage."""
    training_benefits[0] = benefit_events
    loyalty.register_transaction_hook(
        make_transaction_hook(
            may_contact=may_contact, record_note=record_note, benefits=benefits, suppress=suppress
        ),
        name=HOOK_NAME,
    )
