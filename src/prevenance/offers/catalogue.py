"""The offer catalogue: create or replace an offer (idempotent by id), read, list, pause and end."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.ids import as_utc, fingerprint
from prevenance.common.problems import InvalidInput, as_invalid_input
from prevenance.offers import repository as repo
from prevenance.offers import rules
from prevenance.offers.cache import invalidate_caches
from prevenance.offers.errors import (
    BudgetBelowSpent,
    OfferEnded,
    UnknownOffer,
)
from prevenance.offers.tables import Offer


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
    with as_invalid_input():
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


def get_offer_row(session: Session, *, offer_id: str) -> Offer:
    """The offer with this id; 404 when unknown."""
    row = repo.offer(session, offer_id)
    if row is None:
        raise UnknownOffer(f"no offer {offer_id!r}", field="id")
    return row


def get_offer(session: Session, *, offer_id: str) -> dict[str, Any]:
    """An offer with how many decisions each arm holds."""
    row = get_offer_row(session, offer_id=offer_id)
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
