"""Every query of the offers domain. The member-facing reads are scoped to one member in the query."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from prevenance.common.bulk import rows_changed
from prevenance.offers.tables import Offer, OfferDecision, OfferModel

OPEN = ("made", "activated", "would_have_received")
_DECISIONS: Table = OfferDecision.__table__  # type: ignore[assignment]
_OFFERS: Table = Offer.__table__  # type: ignore[assignment]

# The decision path's statements, built once (they run on every transaction while offers are live).
_MEMBER_DECISIONS = select(
    _DECISIONS.c.id,
    _DECISIONS.c.offer_id,
    _DECISIONS.c.status,
    _DECISIONS.c.expires_at,
    _DECISIONS.c.activated_at,
).where(_DECISIONS.c.member_id == bindparam("p_member"))
_CLAIM_REWARD = (
    update(_DECISIONS)
    .where(_DECISIONS.c.id == bindparam("p_id"), _DECISIONS.c.status == "activated")
    .values(
        status="rewarded",
        rewarded_at=bindparam("p_now"),
        reward_points=bindparam("p_points"),
        reward_transaction_id=bindparam("p_tx"),
    )
)
_SPEND_BUDGET = (
    update(_OFFERS)
    .where(
        _OFFERS.c.id == bindparam("p_offer"),
        or_(
            _OFFERS.c.budget_points.is_(None),
            _OFFERS.c.spent_points + bindparam("p_points") <= _OFFERS.c.budget_points,
        ),
    )
    .values(spent_points=_OFFERS.c.spent_points + bindparam("p_points"))
)


def offer(session: Session, offer_id: str, *, for_update: bool = False) -> Offer | None:
    return session.get(Offer, offer_id, with_for_update=for_update)


def offers(session: Session, *, status: str | None = None) -> list[Offer]:
    statement = select(Offer).order_by(Offer.id)
    if status:
        statement = statement.where(Offer.status == status)
    return list(session.scalars(statement))


def live_offers(session: Session) -> list[Offer]:
    """Active and paused offers: a paused one decides nothing but still pays its activations."""
    return list(
        session.scalars(select(Offer).where(Offer.status.in_(("active", "paused"))).order_by(Offer.id))
    )


def spent_points(session: Session, offer_ids: Sequence[str]) -> dict[str, int]:
    rows = session.execute(select(Offer.id, Offer.spent_points).where(Offer.id.in_(offer_ids)))
    return {r[0]: int(r[1]) for r in rows}


def member_decisions(session: Session, member_id: int) -> list[Any]:
    return list(session.execute(_MEMBER_DECISIONS, {"p_member": member_id}).all())


def expire_decisions(session: Session, *, member_id: int, now: datetime) -> int:
    """Close the member's offers whose time ran out (treatment only: control rows stay as recorded)."""
    result = session.execute(
        update(OfferDecision)
        .where(
            OfferDecision.member_id == member_id,
            OfferDecision.status.in_(("made", "activated")),
            OfferDecision.expires_at <= now,
        )
        .values(status="expired")
    )
    return rows_changed(result)


def claim_reward(
    session: Session, *, decision_id: str, points: int, transaction_id: str, now: datetime
) -> bool:
    """Move an activated decision to rewarded; the row count says whether this transaction won.

    On PostgreSQL the UPDATE locks the row and re-checks ``status`` on the newest version, so of two
    concurrent qualifying transactions exactly one sees ``activated``.
    """
    result = session.execute(
        _CLAIM_REWARD, {"p_id": decision_id, "p_now": now, "p_points": points, "p_tx": transaction_id}
    )
    return rows_changed(result) == 1


def unclaim_reward(session: Session, *, decision_id: str) -> None:
    """Undo ``claim_reward`` in the same transaction (the budget refused it)."""
    session.execute(
        update(OfferDecision)
        .where(OfferDecision.id == decision_id)
        .values(status="activated", rewarded_at=None, reward_points=None, reward_transaction_id=None)
    )


def spend_budget(session: Session, *, offer_id: str, points: int) -> bool:
    """Take ``points`` from the budget unless that would exceed it (conditional UPDATE)."""
    result = session.execute(_SPEND_BUDGET, {"p_offer": offer_id, "p_points": points})
    return rows_changed(result) == 1


def activate(session: Session, *, decision_id: str, now: datetime) -> bool:
    result = session.execute(
        update(OfferDecision)
        .where(
            OfferDecision.id == decision_id, OfferDecision.status == "made", OfferDecision.expires_at > now
        )
        .values(status="activated", activated_at=now)
    )
    return rows_changed(result) == 1


def latest_treatment(session: Session, *, member_id: int, offer_id: str) -> OfferDecision | None:
    """The member's newest decision of this offer, treatment arm only (controls are never shown)."""
    return session.scalars(
        select(OfferDecision)
        .where(
            OfferDecision.member_id == member_id,
            OfferDecision.offer_id == offer_id,
            OfferDecision.arm == "treatment",
        )
        .order_by(OfferDecision.decided_at.desc(), OfferDecision.id.desc())
        .limit(1)
    ).first()


_MEMBER_OFFERS = (
    select(OfferDecision, Offer)
    .join(Offer, Offer.id == OfferDecision.offer_id)
    .where(OfferDecision.member_id == bindparam("p_member"), OfferDecision.arm == "treatment")
    .order_by(OfferDecision.decided_at.desc(), OfferDecision.id.desc())
    .limit(bindparam("p_limit"))
)
"""Built once (the 360 and the member's offers ask it on every call)."""
MEMBER_OFFER_LINES = (
    select(
        OfferDecision.id.label("decision_id"),
        Offer.id.label("offer_id"),
        Offer.partner_merchant,
        Offer.reward_kind,
        Offer.title_fr,
        Offer.title_en,
        OfferDecision.status,
        OfferDecision.decided_at,
        OfferDecision.expires_at,
        OfferDecision.activated_at,
        OfferDecision.rewarded_at,
        OfferDecision.reward_points,
    )
    .join(Offer, Offer.id == OfferDecision.offer_id)
    .where(OfferDecision.member_id == bindparam("p_member"), OfferDecision.arm == "treatment")
    .order_by(OfferDecision.decided_at.desc(), OfferDecision.id.desc())
    .limit(bindparam("p_limit"))
)
"""The 360's lines of ``_MEMBER_OFFERS``: the columns it shows, as rows (``common.reads``)."""
_USABLE_MEMBER_OFFERS = _MEMBER_OFFERS.where(
    OfferDecision.status.in_(("made", "activated")),
    OfferDecision.expires_at > bindparam("p_now"),
    Offer.status != "ended",
)


def member_offers(
    session: Session, *, member_id: int, now: datetime, limit: int
) -> list[tuple[OfferDecision, Offer]]:
    """Offers made to a member that are still usable at ``now``, newest first."""
    params = {"p_member": member_id, "p_limit": limit, "p_now": now}
    return [(r[0], r[1]) for r in session.execute(_USABLE_MEMBER_OFFERS, params).all()]


def decision_counts(session: Session, offer_id: str) -> dict[str, dict[str, int]]:
    rows = session.execute(
        select(OfferDecision.arm, OfferDecision.status, func.count())
        .where(OfferDecision.offer_id == offer_id)
        .group_by(OfferDecision.arm, OfferDecision.status)
    ).all()
    counts: dict[str, dict[str, int]] = {}
    for arm, status, n in rows:
        counts.setdefault(arm, {})[status] = int(n)
    return counts


def latest_model(session: Session) -> OfferModel | None:
    return session.scalars(select(OfferModel).order_by(OfferModel.version.desc()).limit(1)).first()


def next_model_version(session: Session) -> int:
    return int(session.execute(select(func.coalesce(func.max(OfferModel.version), 0))).scalar_one()) + 1


def models(session: Session) -> list[OfferModel]:
    return list(session.scalars(select(OfferModel).order_by(OfferModel.version.desc())))
