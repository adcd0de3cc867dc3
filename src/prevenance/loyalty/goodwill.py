"""Goodwill: the brand makes a missed promise right in the member's own currency, at once.

A grant is keyed by its cause and member (``goodwill:<cause>:<reference>:<member id>``): the grant
row and its points posting share that key, both unique, so a grant repeated by a retried request, a
re-delivered event or a process restarted half-way through a list of members writes nothing twice.
The member's row is locked first so two grants to one member cannot both pass the monthly cap.
The form follows the programme's ``goodwill`` section (``goodwill_rules``); each grant emits
``goodwill.granted``, from which the desk tells the member (``prevenance.wiring``).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.ids import iso_z
from prevenance.common.inputs import check_month
from prevenance.common.periods import month_of
from prevenance.common.reads import Read
from prevenance.customers import service as customers
from prevenance.loyalty import goodwill_rules, ledger, programme
from prevenance.loyalty.errors import InvalidProgramme
from prevenance.loyalty.tables import GoodwillGrant

if TYPE_CHECKING:
    from prevenance.customers.tables import Member

REASON = "goodwill"


def grant_key(cause: str, reference: str, member_id: int) -> str:
    return f"goodwill:{cause}:{reference}:{member_id}"


def policy(session: Session) -> goodwill_rules.GoodwillPolicy:
    """The goodwill policy of the programme in force (its defaults when the section is absent)."""
    found = programme.current_document(session)
    section = found[1].get("goodwill") if found else None
    try:
        return goodwill_rules.parse(section)
    except goodwill_rules.GoodwillError as error:
        raise InvalidProgramme(str(error), field=error.field) from None


def body(row: GoodwillGrant, member_ref: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "key": row.key,
        "cause": row.cause,
        "reference": row.reference,
        "member_ref": member_ref,
        "form": row.form,
        "points": row.points,
        "credit": f"{Decimal(row.credit_minor) / 100:.2f}",
        "currency": row.currency,
        "cost_eur": f"{Decimal(row.cost_eur):.4f}",
        "country": row.country,
        "product": row.product,
        "team": row.team,
        "month": row.month,
        "posting_id": row.posting_id,
        "granted_by": row.granted_by,
        "granted_at": iso_z(row.granted_at),
    }


def grant(
    session: Session,
    *,
    member_id: int,
    cause: str,
    reference: str,
    team: str | None,
    by: str,
    now: datetime,
) -> dict[str, Any] | None:
    """Grant the cause's gesture to a member once (None for an erased member); the second call for
    the same cause and member returns the first grant, ``replayed`` set."""
    if cause not in goodwill_rules.CAUSES:
        raise ValueError(f"unknown goodwill cause {cause!r}")
    key = grant_key(cause, reference, member_id)
    found = session.scalar(select(GoodwillGrant).where(GoodwillGrant.key == key))
    member = customers.find_member_by_id(session, member_id=member_id)
    if member is None or customers.is_erased(member):
        return None
    if found is not None:
        return {**body(found, member.ref), "replayed": True}
    member = customers.get_member(session, ref=member.ref, for_update=True)  # the cap, serialised
    found = session.scalar(select(GoodwillGrant).where(GoodwillGrant.key == key))
    if found is not None:
        return {**body(found, member.ref), "replayed": True}
    month = month_of(now)
    spent = session.scalar(
        select(func.coalesce(func.sum(GoodwillGrant.cost_eur), 0)).where(
            GoodwillGrant.member_id == member_id, GoodwillGrant.month == month
        )
    )
    decision = goodwill_rules.decide(
        policy(session),
        cause=cause,
        country=member.country,
        product=member.product,
        spent_this_month_eur=Decimal(str(spent or 0)),
    )
    row = GoodwillGrant(
        key=key,
        cause=cause,
        reference=reference,
        member_id=member_id,
        form=decision.form,
        points=decision.points,
        credit_minor=int(decision.credit_eur * 100),
        currency="EUR",
        cost_eur=decision.cost_eur,
        country=member.country,
        product=member.product,
        team=team,
        month=month,
        granted_by=by,
        granted_at=now,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # granted by a concurrent call since the look-up: that grant stands
        found = session.scalar(select(GoodwillGrant).where(GoodwillGrant.key == key))
        assert found is not None
        return {**body(found, member.ref), "replayed": True}
    if decision.points:
        products = programme.current(session).products
        unit = products[member.product].unit if member.product in products else "points"
        result = ledger.credit_member(
            session,
            member_id=member_id,
            debit=ledger.system_account(session, name="issuance", unit=unit),
            amount=decision.points,
            reason=REASON,
            reference=reference,
            key=key,
            now=now,
        )
        row.posting_id = result.posting_id
        session.flush()
    payload = {**body(row, member.ref), "language": member.language, "unit": "points"}
    outbox.emit(session, type="goodwill.granted", payload=payload, now=now)
    return {**body(row, member.ref), "replayed": False}


_MEMBER_GRANTS = (
    select(GoodwillGrant.__table__)
    .where(GoodwillGrant.member_id == bindparam("p_member"))
    .order_by(GoodwillGrant.granted_at.desc(), GoodwillGrant.id.desc())
    .limit(bindparam("p_limit"))
)
"""Built once (the 360 asks it of every member it shows)."""


def member_grants(member: Member, *, limit: int) -> Read[list[dict[str, Any]]]:
    """A member's goodwill, newest first, as a read a view sends with others."""
    return Read(
        _MEMBER_GRANTS,
        {"p_member": member.id, "p_limit": limit},
        lambda rows: [body(row, member.ref) for row in rows],
    )


def report(session: Session, *, month: str) -> dict[str, Any]:
    """The month's goodwill: count, cost, points and credits, by cause, country and team."""
    month = check_month(month)
    rows = session.execute(
        select(
            GoodwillGrant.cause,
            GoodwillGrant.country,
            GoodwillGrant.team,
            GoodwillGrant.form,
            GoodwillGrant.points,
            GoodwillGrant.credit_minor,
            GoodwillGrant.cost_eur,
        ).where(GoodwillGrant.month == month)
    ).all()

    def total(selected: list[Any]) -> dict[str, Any]:
        granted = [r for r in selected if r.form != "capped"]
        return {
            "count": len(granted),
            "capped": len(selected) - len(granted),
            "points": sum(int(r.points) for r in granted),
            "credit_eur": f"{sum(Decimal(r.credit_minor) for r in granted) / 100:.2f}",
            "cost_eur": f"{sum((Decimal(r.cost_eur) for r in granted), Decimal(0)):.2f}",
        }

    def by(attribute: str) -> list[dict[str, Any]]:
        keys = sorted({getattr(r, attribute) or "" for r in rows})
        return [
            {"key": key, **total([r for r in rows if (getattr(r, attribute) or "") == key])} for key in keys
        ]

    return {
        "month": month,
        **total(list(rows)),
        "by_reason": by("cause"),
        "by_country": by("country"),
        "by_team": by("team"),
    }
