"""The member's side: the offers made to a member, and activating one."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.reads import Read
from prevenance.customers import service as customers
from prevenance.offers import repository as repo
from prevenance.offers import rules
from prevenance.offers.catalogue import get_offer_row
from prevenance.offers.errors import (
    OfferNotAvailable,
)
from prevenance.offers.holdout import programme_holdout_in_force
from prevenance.offers.tables import Offer, OfferDecision


def _held_out(session: Session, member_ref: str) -> bool:
    """Whether the programme-wide holdout in force keeps this member away from marketing offers.

    The decision makes a held-out member no offer; an offer made before the period began and not
    yet activated is not theirs to see or activate either while it runs (or the member would still
    receive a marketing offer, and be paid for it, inside the group the programme is measured
    against). One activated before the period still pays (``docs/offers-methods.md``).
    """
    period = programme_holdout_in_force(session)
    return period is not None and rules.in_programme_holdout(member_ref, period.salt, period.share)


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
    member = customers.get_member(session, ref=member_ref)
    lang = language if language in ("fr", "en") else member.language
    rows = repo.member_offers(session, member_id=member.id, now=now, limit=limit)
    if rows and _held_out(session, member.ref):
        rows = [(d, o) for d, o in rows if d.status != "made"]
    return {
        "member_ref": member.ref,
        "language": lang,
        "items": [_member_view(d, o, language=lang, now=now) for d, o in rows],
    }


def member_offers(member_id: int, *, limit: int) -> Read[list[dict[str, Any]]]:
    """The member's offers of every status, newest first, with both languages: the 360's part
    (``common.reads``)."""
    return Read(repo.MEMBER_OFFER_LINES, {"p_member": member_id, "p_limit": limit}, _offer_lines)


def _offer_lines(rows: Sequence[Any]) -> list[dict[str, Any]]:
    return [
        {
            "decision_id": row.decision_id,
            "offer_id": row.offer_id,
            "partner_merchant": row.partner_merchant,
            "reward_kind": row.reward_kind,
            "title_fr": row.title_fr,
            "title_en": row.title_en,
            "status": row.status,
            "decided_at": row.decided_at.isoformat(),
            "expires_at": row.expires_at.isoformat(),
            "activated_at": row.activated_at.isoformat() if row.activated_at else None,
            "rewarded_at": row.rewarded_at.isoformat() if row.rewarded_at else None,
            "reward_points": row.reward_points,
        }
        for row in rows
    ]


def activate(
    session: Session, *, member_ref: str, offer_id: str, now: datetime
) -> tuple[dict[str, Any], bool]:
    """Activate the offer made to this member; activating again returns it unchanged (replayed).

    409 when the offer was never made to the member (or only held back as control), has expired,
    was already used, or the campaign has ended.
    """
    member = customers.get_member(session, ref=member_ref)
    offer = get_offer_row(session, offer_id=offer_id)
    decision = repo.latest_treatment(session, member_id=member.id, offer_id=offer_id)
    if decision is None:
        raise OfferNotAvailable(f"offer {offer_id!r} was not made to {member_ref}", field="offer_id")
    if decision.status == "activated":
        return _member_view(decision, offer, language=member.language, now=now), True
    if offer.status == "ended":
        raise OfferNotAvailable(f"offer {offer_id!r} has ended", field="offer_id", offer_status="ended")
    if decision.status == "made" and _held_out(session, member.ref):
        raise OfferNotAvailable(
            f"offer {offer_id!r} is not available to {member_ref} during the programme holdout",
            field="offer_id",
            decision_status="held_out",
        )
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
