"""Emergency card replacement: the order, its idempotent status moves and the lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from prevenance.common import outbox, reads
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import fingerprint_of, iso_z
from prevenance.common.problems import InvalidInput
from prevenance.common.reads import Read
from prevenance.customers import service as customers
from prevenance.desk import config, rules
from prevenance.desk.errors import (
    ReplacementStatusConflict,
    UnknownCardReplacement,
)
from prevenance.desk.tables import (
    CardReplacement,
)

if TYPE_CHECKING:
    from prevenance.customers.tables import Member


@dataclass(frozen=True)
class CardReplacementInput:
    id: str
    member_ref: str
    city: str
    country: str
    address: str


def _replacement_body(order: CardReplacement, now: datetime) -> dict[str, Any]:
    state = rules.replacement_state(
        ordered_at=order.ordered_at,
        due_at=order.due_at,
        delivered_at=order.delivered_at,
        now=now,
        policy=config.current().card,
    )
    return {
        "id": order.id,
        "member_ref": order.member_ref,
        "city": order.city,
        "country": order.country,
        "address": order.address,
        "city_team": order.city_team,
        "promise_hours": order.promise_hours,
        "status": order.status,
        "state": state,
        "ordered_at": iso_z(order.ordered_at),
        "due_at": iso_z(order.due_at),
        "dispatched_at": iso_z(order.dispatched_at),
        "delivered_at": iso_z(order.delivered_at),
    }


def order_card_replacement(session: Session, *, order: CardReplacementInput, now: datetime) -> Outcome:
    """Order an emergency card with the promise of its delivery city, once per order id.

    A replay answers the first response as it was (its ``state`` is that of the ordering moment);
    ``GET`` shows the state now.
    """
    return run_idempotent(
        session,
        scope="card_replacement",
        key=order.id,
        fingerprint=fingerprint_of(order),
        now=now,
        produce=lambda: _order(session, data=order, now=now),
    )


def _order(session: Session, *, data: CardReplacementInput, now: datetime) -> Outcome:
    member = customers.get_member(session, ref=data.member_ref)
    customers.ensure_not_erased(member)
    country = data.country.strip().upper()
    if not (len(country) == 2 and country.isascii() and country.isalpha()):
        raise InvalidInput("country must be an ISO 3166-1 alpha-2 code", field="country")
    city = data.city.strip()
    if not city:
        raise InvalidInput("city must not be blank", field="city")
    policy = config.current().card
    city_team = rules.has_city_team(policy, city=city, country=country)
    hours = rules.promise_hours(policy, city=city, country=country)
    order = CardReplacement(
        id=data.id,
        member_id=member.id,
        member_ref=member.ref,
        city=city,
        country=country,
        address=data.address,
        city_team=city_team,
        promise_hours=hours,
        status="ordered",
        ordered_at=now,
        due_at=now + timedelta(hours=hours),
    )
    session.add(order)
    session.flush()
    body = _replacement_body(order, now)
    outbox.emit(session, type="card_replacement.ordered", payload=body, now=now)
    return Outcome(201, body)


def get_card_replacement(session: Session, *, replacement_id: str, now: datetime) -> dict[str, Any]:
    """One order and where it stands now; 404 when unknown."""
    order = session.get(CardReplacement, replacement_id)
    if order is None:
        raise UnknownCardReplacement(f"no card replacement {replacement_id!r}", field="id")
    return _replacement_body(order, now)


def advance_card_replacement(
    session: Session, *, replacement_id: str, action: str, now: datetime
) -> dict[str, Any]:
    """Mark an order dispatched or delivered; repeating the step it is at changes nothing."""
    order = session.get(CardReplacement, replacement_id, with_for_update=True)
    if order is None:
        raise UnknownCardReplacement(f"no card replacement {replacement_id!r}", field="id")
    target = rules.next_status(order.status, action)
    if target is None:
        raise ReplacementStatusConflict(
            f"the order is {order.status}; it cannot be marked {action}ed",
            field="id",
            replacement_status=order.status,
        )
    if target != order.status:
        order.status = target
        if target == "dispatched":
            order.dispatched_at = now
        else:
            order.delivered_at = now
        session.flush()
        outbox.emit(
            session, type=f"card_replacement.{target}", payload=_replacement_body(order, now), now=now
        )
    return _replacement_body(order, now)


def list_card_replacements(
    session: Session, *, state: str, now: datetime, limit: int = 500
) -> list[dict[str, Any]]:
    """Undelivered orders that are ``at_risk``, ``breached``, ``on_track`` or any (``open``), soonest due first."""
    statement = select(CardReplacement).where(CardReplacement.status != "delivered")
    if state == "breached":
        statement = statement.where(CardReplacement.due_at < now)
    elif state in ("at_risk", "on_track"):
        statement = statement.where(CardReplacement.due_at >= now)
    rows = session.scalars(statement.order_by(CardReplacement.due_at, CardReplacement.id))
    bodies = (_replacement_body(order, now) for order in rows)
    selected = [b for b in bodies if state == "open" or b["state"] == state]
    return selected[:limit]


_MEMBER_REPLACEMENTS = (
    select(CardReplacement.__table__)
    .where(CardReplacement.member_id == bindparam("p_member"))
    .order_by(CardReplacement.ordered_at.desc())
    .limit(50)
)
"""Built once (the 360 asks for the open ones of every member it shows)."""
_OPEN_MEMBER_REPLACEMENTS = _MEMBER_REPLACEMENTS.where(CardReplacement.status != "delivered")


def list_member_card_replacements(
    session: Session, *, member_ref: str, now: datetime, open_only: bool = False
) -> list[dict[str, Any]]:
    """A member's emergency card orders, newest first."""
    member = customers.get_member(session, ref=member_ref)
    return reads.run(session, member_card_replacements(member, now=now, open_only=open_only))


def member_card_replacements(member: Member, *, now: datetime, open_only: bool) -> Read[list[dict[str, Any]]]:
    """A member's emergency card orders (the open ones only, if asked), newest first, as a read a
    view sends with others."""
    return Read(
        _OPEN_MEMBER_REPLACEMENTS if open_only else _MEMBER_REPLACEMENTS,
        {"p_member": member.id},
        lambda rows: [_replacement_body(order, now) for order in rows],
    )
