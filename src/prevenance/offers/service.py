"""Use cases of the offers domain: the catalogue, the decision on every transaction (with the
holdout), activation, the reward exactly once, and training the propensity model.

Never commits: the request, CLI command, consumer or earn transaction around it does. Offers may
not import the desk (contact preferences, communications log, benefits): the composition layer
(``wiring.install_offer_hook``) passes those in as callables to ``make_transaction_hook``.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, Table, insert
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.ids import as_utc, fingerprint
from prevenance.common.problems import InvalidInput
from prevenance.customers import service as customers
from prevenance.loyalty import service as loyalty
from prevenance.offers import features as feats
from prevenance.offers import model as modelling
from prevenance.offers import repository as repo
from prevenance.offers import rules
from prevenance.offers.errors import (
    BudgetBelowSpent,
    NoTrainingData,
    OfferEnded,
    OfferNotAvailable,
    UnknownOffer,
)
from prevenance.offers.tables import Offer, OfferDecision, OfferModel

HOOK_NAME = "offers"
ACTIVE_TTL_SECONDS = 5.0
MODEL_TTL_SECONDS = 30.0

# --- in-process caches -------------------------------------------------------------------------


class _PerEngine:
    """A value per engine, kept ``ttl`` seconds: the hot path must not query when nothing changed.

    Keyed weakly by the engine object, so a disposed test database never lends its offers to the
    next one; writers in this process invalidate at once, other processes see changes within ``ttl``.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._values: weakref.WeakKeyDictionary[Engine, tuple[float, Any]] = weakref.WeakKeyDictionary()

    def get(self, engine: Engine) -> tuple[bool, Any]:
        with self._lock:
            hit = self._values.get(engine)
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def put(self, engine: Engine, value: Any) -> None:
        with self._lock:
            self._values[engine] = (time.monotonic() + self.ttl, value)

    def clear(self, engine: Engine | None = None) -> None:
        with self._lock:
            if engine is None:
                self._values.clear()
            else:
                self._values.pop(engine, None)


_ACTIVE = _PerEngine(ACTIVE_TTL_SECONDS)
_MODEL = _PerEngine(MODEL_TTL_SECONDS)


def _engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def invalidate_caches(session: Session | None = None) -> None:
    """Forget the cached active offers and model (of one session's engine, or all)."""
    engine = _engine_of(session) if session is not None else None
    _ACTIVE.clear(engine)
    _MODEL.clear(engine)


def spec_of(row: Offer) -> rules.OfferSpec:
    """An offer row parsed for the decision."""
    return rules.OfferSpec(
        id=row.id,
        partner_merchant=row.partner_merchant,
        partner_category=row.partner_category,
        reward=rules.parse_reward(row.reward_kind, row.reward),
        eligibility=rules.parse_eligibility(row.eligibility),
        cap_per_member=row.cap_per_member,
        budget_points=row.budget_points,
        unit_cost_eur=Decimal(row.unit_cost_eur),
        margin_rate=Decimal(row.margin_rate),
        expected_spend_eur=Decimal(row.expected_spend_eur),
        holdout_share=Decimal(row.holdout_share),
        decision_days=row.decision_days,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        status=row.status,
        texts={
            "title_fr": row.title_fr,
            "title_en": row.title_en,
            "text_fr": row.text_fr,
            "text_en": row.text_en,
        },
    )


def live_offers(session: Session) -> list[rules.OfferSpec]:
    """The active and paused offers, from the in-process cache (one query per ``ACTIVE_TTL_SECONDS``
    at most): paused ones still pay the activations made before the pause."""
    engine = _engine_of(session)
    found, value = _ACTIVE.get(engine)
    if found:
        return list(value)
    specs = [spec_of(row) for row in repo.live_offers(session)]
    _ACTIVE.put(engine, tuple(specs))
    return specs


def current_model(session: Session) -> rules.LogisticModel:
    """The newest trained model (cached), or the prior when none was trained yet."""
    engine = _engine_of(session)
    found, value = _MODEL.get(engine)
    if found:
        model: rules.LogisticModel = value
        return model
    row = repo.latest_model(session)
    loaded = _model_of(row) if row is not None else rules.prior_model(feats.FEATURES)
    _MODEL.put(engine, loaded)
    return loaded


def _model_of(row: OfferModel) -> rules.LogisticModel:
    c = row.coefficients
    return rules.LogisticModel(
        version=row.version,
        features=tuple(row.features),
        intercept=float(c["intercept"]),
        weights=tuple(float(w) for w in c["weights"]),
        means=tuple(float(m) for m in c["means"]),
        scales=tuple(float(s) for s in c["scales"]),
        metrics=row.metrics,
    )


# --- catalogue ---------------------------------------------------------------------------------


def _text(data: dict[str, Any], name: str, limit: int) -> str:
    value = data.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"{name} must be non-blank text", field=name)
    if len(value) > limit:
        raise InvalidInput(f"{name} must be at most {limit} characters", field=name)
    return value.strip()


def _validated(offer_id: str, data: dict[str, Any]) -> dict[str, Any]:
    """Check an offer definition; every refusal names its field (422, nothing written)."""
    if not offer_id or len(offer_id) > 200:
        raise InvalidInput("offer id must be 1-200 characters", field="id")
    try:
        reward = rules.parse_reward(str(data.get("reward_kind")), data.get("reward") or {})
        eligibility = rules.parse_eligibility(data.get("eligibility") or {})
        numbers = {
            name: rules.parse_decimal(data.get(name, default), field=name, low=Decimal(0), high=high)
            for name, default, high in (
                ("unit_cost_eur", None, None),
                ("margin_rate", None, Decimal(1)),
                ("expected_spend_eur", "100", None),
                ("holdout_share", "0.10", Decimal("0.9")),
            )
        }
    except rules.RuleViolation as error:
        raise InvalidInput(str(error), field=error.field)
    valid_from, valid_until = as_utc(data["valid_from"]), as_utc(data["valid_until"])
    if valid_until <= valid_from:
        raise InvalidInput("valid_until must be after valid_from", field="valid_until")
    cap = int(data.get("cap_per_member") or 1)
    if cap < 1:
        raise InvalidInput("cap_per_member must be at least 1", field="cap_per_member")
    days = int(data.get("decision_days") or 30)
    if not 1 <= days <= 366:
        raise InvalidInput("decision_days must be between 1 and 366", field="decision_days")
    budget = data.get("budget_points")
    if budget is not None and int(budget) < 0:
        raise InvalidInput("budget_points must be positive", field="budget_points")
    category = data.get("partner_category")
    return {
        "partner_merchant": _text(data, "partner_merchant", 200),
        "partner_category": category.strip().casefold()
        if isinstance(category, str) and category.strip()
        else None,
        "reward_kind": reward.kind,
        "reward": reward.as_json(),
        "eligibility": eligibility.as_json(),
        "cap_per_member": cap,
        "budget_points": None if budget is None else int(budget),
        "unit_cost_eur": str(numbers["unit_cost_eur"]),
        "margin_rate": str(numbers["margin_rate"]),
        "expected_spend_eur": str(numbers["expected_spend_eur"]),
        "holdout_share": str(numbers["holdout_share"]),
        "decision_days": days,
        "valid_from": valid_from,
        "valid_until": valid_until,
        "title_fr": _text(data, "title_fr", 200),
        "title_en": _text(data, "title_en", 200),
        "text_fr": _text(data, "text_fr", 2000),
        "text_en": _text(data, "text_en", 2000),
    }


def offer_body(row: Offer) -> dict[str, Any]:
    """An offer as the API shows it to staff."""
    return {
        "id": row.id,
        "partner_merchant": row.partner_merchant,
        "partner_category": row.partner_category,
        "reward_kind": row.reward_kind,
        "reward": row.reward,
        "eligibility": row.eligibility,
        "cap_per_member": row.cap_per_member,
        "budget_points": row.budget_points,
        "spent_points": row.spent_points,
        "unit_cost_eur": row.unit_cost_eur,
        "margin_rate": row.margin_rate,
        "expected_spend_eur": row.expected_spend_eur,
        "holdout_share": row.holdout_share,
        "decision_days": row.decision_days,
        "valid_from": row.valid_from.isoformat(),
        "valid_until": row.valid_until.isoformat(),
        "title_fr": row.title_fr,
        "title_en": row.title_en,
        "text_fr": row.text_fr,
        "text_en": row.text_en,
        "status": row.status,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def put_offer(
    session: Session, *, offer_id: str, data: dict[str, Any], now: datetime
) -> tuple[dict[str, Any], int]:
    """Create (201) or replace (200) an offer; the same definition again changes nothing (200).

    The definition's fingerprint is stored: a repeat is recognised without comparing field by field.
    An ended offer stays ended (409); what it already spent is kept.
    """
    values = _validated(offer_id, data)
    digest = fingerprint({k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()})
    row = repo.offer(session, offer_id, for_update=True)
    if row is not None and row.fingerprint == digest:
        return offer_body(row), 200
    if row is not None and row.status == "ended":
        raise OfferEnded(f"offer {offer_id!r} has ended and cannot be changed", field="id")
    if row is not None and values["budget_points"] is not None and values["budget_points"] < row.spent_points:
        raise BudgetBelowSpent(
            f"the offer already spent {row.spent_points} points",
            field="budget_points",
            spent=row.spent_points,
        )
    created = row is None
    if row is None:
        row = Offer(id=offer_id, spent_points=0, status="active", created_at=now)
        session.add(row)
    for name, value in values.items():
        setattr(row, name, value)
    row.fingerprint, row.updated_at = digest, now
    session.flush()
    invalidate_caches(session)
    outbox.emit(session, type="offer.defined", payload={"id": offer_id, "created": created}, now=now)
    return offer_body(row), 201 if created else 200


def get_offer_or_raise(session: Session, *, offer_id: str) -> Offer:
    """The offer with this id; 404 when unknown."""
    row = repo.offer(session, offer_id)
    if row is None:
        raise UnknownOffer(f"no offer {offer_id!r}", field="id")
    return row


def get_offer(session: Session, *, offer_id: str) -> dict[str, Any]:
    """An offer with how many decisions each arm holds."""
    row = get_offer_or_raise(session, offer_id=offer_id)
    return {**offer_body(row), "decisions": repo.decision_counts(session, offer_id)}


def list_offers(session: Session, *, status: str | None = None) -> list[dict[str, Any]]:
    """Every offer (or those of one status), by id."""
    return [offer_body(row) for row in repo.offers(session, status=status)]


def set_status(session: Session, *, offer_id: str, status: str, now: datetime) -> dict[str, Any]:
    """Pause, resume or end an offer. Ending is final; repeating a change is a no-op."""
    if status not in rules.STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(rules.STATUSES)}", field="status")
    row = repo.offer(session, offer_id, for_update=True)
    if row is None:
        raise UnknownOffer(f"no offer {offer_id!r}", field="id")
    if row.status == status:
        return offer_body(row)
    if row.status == "ended":
        raise OfferEnded(f"offer {offer_id!r} has ended", field="id")
    row.status, row.updated_at = status, now
    session.flush()
    invalidate_caches(session)
    outbox.emit(session, type=f"offer.{status}", payload={"id": offer_id}, now=now)
    return offer_body(row)


# --- the decision on every transaction ---------------------------------------------------------


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


def decide(
    session: Session,
    *,
    member_id: int,
    transaction: loyalty.EarnedTransaction,
    now: datetime,
    may_contact: MayContact | None = None,
    record_note: RecordNote | None = None,
    benefits: feats.BenefitsProvider | None = None,
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
        )

    return hook


# Benefit usages for the training set, given by ``install`` (desk data: offers may not import it).
_training_benefits: list[feats.BenefitEventsProvider | None] = [None]


def install(
    *,
    may_contact: MayContact | None = None,
    record_note: RecordNote | None = None,
    benefits: feats.BenefitsProvider | None = None,
    benefit_events: feats.BenefitEventsProvider | None = None,
) -> None:
    """Register the offers hook on loyalty's earn path (replacing an earlier one), and what the
    training set reads of benefit usage."""
    _training_benefits[0] = benefit_events
    loyalty.register_transaction_hook(
        make_transaction_hook(may_contact=may_contact, record_note=record_note, benefits=benefits),
        name=HOOK_NAME,
    )


# --- the member's side -------------------------------------------------------------------------


def _member_view(decision: OfferDecision, offer: Offer, *, language: str, now: datetime) -> dict[str, Any]:
    lang = "en" if language == "en" else "fr"
    status = decision.status
    if status in ("made", "activated") and decision.expires_at <= now:
        status = "expired"
    return {
        "decision_id": decision.id,
        "offer_id": offer.id,
        "partner_merchant": offer.partner_merchant,
        "reward_kind": offer.reward_kind,
        "reward": offer.reward,
        "language": lang,
        "title": offer.title_en if lang == "en" else offer.title_fr,
        "text": offer.text_en if lang == "en" else offer.text_fr,
        "status": status,
        "decided_at": decision.decided_at.isoformat(),
        "expires_at": decision.expires_at.isoformat(),
        "activated_at": decision.activated_at.isoformat() if decision.activated_at else None,
        "rewarded_at": decision.rewarded_at.isoformat() if decision.rewarded_at else None,
        "reward_points": decision.reward_points,
    }


def list_active_member_offers(
    session: Session, *, member_ref: str, language: str | None, now: datetime, limit: int = 20
) -> dict[str, Any]:
    """The offers a member can still use, in the language asked (else the member's)."""
    member = customers.get_or_raise(session, ref=member_ref)
    lang = language if language in ("fr", "en") else member.language
    rows = repo.member_offers(session, member_id=member.id, now=now, limit=limit)
    return {
        "member_ref": member.ref,
        "language": lang,
        "items": [_member_view(d, o, language=lang, now=now) for d, o in rows],
    }


def list_member_offers(session: Session, *, member_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """The member's offers of every status, newest first, with both languages (for the 360 view)."""
    rows = repo.member_offers(session, member_id=member_id, now=None, limit=limit)
    items = []
    for decision, offer in rows:
        items.append(
            {
                "decision_id": decision.id,
                "offer_id": offer.id,
                "partner_merchant": offer.partner_merchant,
                "reward_kind": offer.reward_kind,
                "title_fr": offer.title_fr,
                "title_en": offer.title_en,
                "status": decision.status,
                "decided_at": decision.decided_at.isoformat(),
                "expires_at": decision.expires_at.isoformat(),
                "activated_at": decision.activated_at.isoformat() if decision.activated_at else None,
                "rewarded_at": decision.rewarded_at.isoformat() if decision.rewarded_at else None,
                "reward_points": decision.reward_points,
            }
        )
    return items


def activate(
    session: Session, *, member_ref: str, offer_id: str, now: datetime
) -> tuple[dict[str, Any], bool]:
    """Activate the offer made to this member; activating again returns it unchanged (replayed).

    409 when the offer was never made to the member (or only held back as control), has expired,
    was already used, or the campaign has ended.
    """
    member = customers.get_or_raise(session, ref=member_ref)
    offer = get_offer_or_raise(session, offer_id=offer_id)
    decision = repo.latest_treatment(session, member_id=member.id, offer_id=offer_id)
    if decision is None:
        raise OfferNotAvailable(f"offer {offer_id!r} was not made to {member_ref}", field="offer_id")
    if decision.status == "activated":
        return _member_view(decision, offer, language=member.language, now=now), True
    if offer.status == "ended":
        raise OfferNotAvailable(f"offer {offer_id!r} has ended", field="offer_id", offer_status="ended")
    if decision.status != "made" or not repo.activate(session, decision_id=decision.id, now=now):
        session.refresh(decision)
        status = "expired" if decision.status == "made" else decision.status
        if decision.status == "activated":  # a concurrent activation won: same answer
            return _member_view(decision, offer, language=member.language, now=now), True
        raise OfferNotAvailable(
            f"offer {offer_id!r} is {status} for {member_ref}", field="offer_id", decision_status=status
        )
    session.refresh(decision)
    outbox.emit(
        session,
        type="offer.accepted",
        payload={"decision_id": decision.id, "offer_id": offer_id, "member_ref": member.ref},
        now=now,
    )
    return _member_view(decision, offer, language=member.language, now=now), False


# --- training ----------------------------------------------------------------------------------


def train_model(
    session: Session, *, now: datetime, progress: modelling.Progress | None = None, l2: float = 1.0
) -> dict[str, Any]:
    """Build the training set from the history, fit, store the next model version and use it."""
    targets = [
        modelling.Target(row.partner_merchant.strip().casefold(), row.partner_category)
        for row in repo.offers(session)
    ]
    try:
        data = modelling.build_training_set(
            session, targets=targets, now=now, progress=progress, benefit_events=_training_benefits[0]
        )
        fitted, metrics = modelling.train(data, l2=l2)
    except ValueError as error:
        raise NoTrainingData(str(error))
    if progress:
        progress("fit", 1, 1)
    version = repo.next_model_version(session)
    row = OfferModel(
        version=version,
        created_at=now,
        features=list(fitted.features),
        coefficients={
            "intercept": fitted.intercept,
            "weights": list(fitted.weights),
            "means": list(fitted.means),
            "scales": list(fitted.scales),
        },
        metrics=metrics,
    )
    session.add(row)
    session.flush()
    invalidate_caches(session)
    return model_body(row)


def model_body(row: OfferModel) -> dict[str, Any]:
    return {
        "version": row.version,
        "created_at": row.created_at.isoformat(),
        "features": row.features,
        "coefficients": row.coefficients,
        "metrics": row.metrics,
    }


def list_models(session: Session) -> list[dict[str, Any]]:
    """Every stored model version, newest first."""
    return [model_body(row) for row in repo.models(session)]
