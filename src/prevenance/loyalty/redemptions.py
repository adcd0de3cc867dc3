"""Spending points: catalogue items, e-codes, transfers to partners and travel holds."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.bulk import rows_changed
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import fingerprint
from prevenance.common.problems import InvalidInput
from prevenance.customers import service as customers
from prevenance.loyalty import ledger, programme, rules
from prevenance.loyalty.errors import (
    BalanceLimitExceeded,
    HoldNotPending,
    NoCodesLeft,
    OutOfStock,
    UnknownPartnerInBody,
    UnknownRedemption,
    UnknownSku,
)
from prevenance.loyalty.rules import parse_amount_field
from prevenance.loyalty.tables import (
    CatalogueItem,
    ECode,
    Partner,
    Redemption,
)

if TYPE_CHECKING:
    from prevenance.customers.tables import Member


def redeem(session: Session, *, member_ref: str, request: dict[str, Any], now: datetime) -> Outcome:
    """Use points: catalogue, e-code, partner transfer or travel hold. Never overdraws."""
    redemption_id = str(request["id"])
    digest = fingerprint({"member_ref": member_ref, **request})
    return run_idempotent(
        session,
        scope="redemption",
        key=redemption_id,
        fingerprint=digest,
        now=now,
        produce=lambda: _redeem(session, member_ref=member_ref, request=request, now=now),
    )


def _redeem(session: Session, *, member_ref: str, request: dict[str, Any], now: datetime) -> Outcome:
    member = customers.get_member(session, ref=member_ref)
    release_expired_holds(session, now=now, member_id=member.id)
    kind = request["kind"]
    handler = {
        "catalogue": _redeem_catalogue,
        "ecode": _redeem_ecode,
        "transfer": _redeem_transfer,
        "travel": _redeem_travel,
    }[kind]
    redemption, balance, extra = handler(session, member=member, request=request, now=now)
    body = {
        "id": redemption.id,
        "kind": kind,
        "member_ref": member.ref,
        "status": redemption.status,
        "points_debited": redemption.points,
        "balance": balance,
        **extra,
    }
    outbox.emit(session, type="redemption.created", payload=body, now=now)
    return Outcome(201, body)


def _spend(
    session: Session,
    *,
    member: Member,
    points: int,
    reason: str,
    reference: str,
    credit: ledger.AccountRef,
    key: str,
    now: datetime,
) -> int:
    account = ledger.member_account(session, member_id=member.id, unit="points")
    result = ledger.post(
        session,
        debit=account,
        credit=credit,
        amount=points,
        reason=reason,
        reference=reference,
        key=key,
        now=now,
        require_funds=True,
    )
    return result.balance_after or 0


def _new_redemption(
    session: Session,
    *,
    member: Member,
    request: dict[str, Any],
    status: str,
    points: int,
    details: dict[str, Any],
    now: datetime,
    expires_at: datetime | None = None,
) -> Redemption:
    redemption = Redemption(
        id=str(request["id"]),
        member_id=member.id,
        kind=request["kind"],
        status=status,
        points=points,
        details=details,
        created_at=now,
        expires_at=expires_at,
    )
    session.add(redemption)
    session.flush()
    return redemption


def _redeem_catalogue(
    session: Session, *, member: Member, request: dict[str, Any], now: datetime
) -> tuple[Redemption, int, dict[str, Any]]:
    sku, quantity = str(request["sku"]), int(request.get("quantity") or 1)
    if quantity < 1:
        raise InvalidInput("quantity must be at least 1", field="quantity")
    item = session.get(CatalogueItem, sku)
    if item is None:
        raise UnknownSku(f"no catalogue item {sku!r}", field="sku")
    points = item.points * quantity
    redemption = _new_redemption(
        session,
        member=member,
        request=request,
        status="completed",
        points=points,
        details={"sku": sku, "quantity": quantity, "name": item.name},
        now=now,
    )
    balance = _spend(
        session,
        member=member,
        points=points,
        reason="redemption_catalogue",
        reference=redemption.id,
        credit=ledger.system_account(session, name="catalogue", unit="points"),
        key=f"redemption:{redemption.id}",
        now=now,
    )
    taken = session.execute(
        update(CatalogueItem)
        .where(CatalogueItem.sku == sku, CatalogueItem.stock >= quantity)
        .values(stock=CatalogueItem.stock - quantity)
    )
    if rows_changed(taken) != 1:
        raise OutOfStock(f"not enough stock of {sku!r} for {quantity}", field="quantity")
    return redemption, balance, {"sku": sku, "quantity": quantity}


def _redeem_ecode(
    session: Session, *, member: Member, request: dict[str, Any], now: datetime
) -> tuple[Redemption, int, dict[str, Any]]:
    partner_code = str(request["partner"])
    if session.get(Partner, partner_code) is None:
        raise UnknownPartnerInBody(f"no partner {partner_code!r}", field="partner")
    pool = select(ECode.id, ECode.points).where(
        ECode.partner_code == partner_code, ECode.redemption_id.is_(None)
    )
    if request.get("points"):
        pool = pool.where(ECode.points == int(request["points"]))
    # SKIP LOCKED: concurrent redeemers each take a different free code instead of queueing on one.
    candidate = session.execute(
        pool.order_by(ECode.points, ECode.id).limit(1).with_for_update(skip_locked=True)
    ).first()
    if candidate is None:
        raise NoCodesLeft(f"no e-code left for partner {partner_code!r}", field="partner")
    code_id, points = candidate
    redemption = _new_redemption(
        session,
        member=member,
        request=request,
        status="completed",
        points=points,
        details={"partner": partner_code},
        now=now,
    )
    balance = _spend(
        session,
        member=member,
        points=points,
        reason="redemption_ecode",
        reference=redemption.id,
        credit=ledger.system_account(session, name="ecode", unit="points"),
        key=f"redemption:{redemption.id}",
        now=now,
    )
    code = session.execute(
        update(ECode)
        .where(ECode.id == code_id, ECode.redemption_id.is_(None))
        .values(redemption_id=redemption.id, issued_at=now)
        .returning(ECode.code)
    ).scalar_one_or_none()
    if code is None:
        raise NoCodesLeft("the e-code was taken concurrently; retry", field="partner")
    redemption.details = {"partner": partner_code, "code": code}
    return redemption, balance, {"partner": partner_code, "code": code}


def _redeem_transfer(
    session: Session, *, member: Member, request: dict[str, Any], now: datetime
) -> tuple[Redemption, int, dict[str, Any]]:
    partner_code = str(request["partner"])
    partner = session.get(Partner, partner_code)
    if partner is None:
        raise UnknownPartnerInBody(f"no partner {partner_code!r}", field="partner")
    if partner.kind not in ("airline", "hotel"):
        raise InvalidInput("points transfer only to airline or hotel partners", field="partner")
    points = int(request["points"])
    try:
        units = rules.transfer_units(
            points, points_per_block=partner.points_per_block, units_per_block=partner.units_per_block
        )
    except rules.RuleViolation as error:
        raise InvalidInput(str(error), field=error.field)
    details = {"partner": partner_code, "partner_units": units}
    redemption = _new_redemption(
        session, member=member, request=request, status="completed", points=points, details=details, now=now
    )
    balance = _spend(
        session,
        member=member,
        points=points,
        reason="redemption_transfer",
        reference=redemption.id,
        credit=ledger.partner_account(session, partner_code=partner_code, unit="points"),
        key=f"redemption:{redemption.id}",
        now=now,
    )
    return redemption, balance, details


def _redeem_travel(
    session: Session, *, member: Member, request: dict[str, Any], now: datetime
) -> tuple[Redemption, int, dict[str, Any]]:
    prog = programme.current(session)
    amount = parse_amount_field(str(request["amount"]), "EUR")
    try:
        split = rules.travel_split(
            amount, points_offered=int(request["points"]), euro_per_point=prog.euro_per_point
        )
    except rules.RuleViolation as error:
        raise InvalidInput(str(error), field=error.field)
    expires_at = rules.hold_expiry(now, hold_minutes=prog.hold_minutes)
    details = {
        "booking_ref": str(request["booking_ref"]),
        "amount": str(amount),
        "points_used": split.points_used,
        "cash_due": str(split.cash_due),
        "euro_per_point": str(prog.euro_per_point),
    }
    redemption = _new_redemption(
        session,
        member=member,
        request=request,
        status="held",
        points=split.points_used,
        details=details,
        now=now,
        expires_at=expires_at,
    )
    balance = _spend(
        session,
        member=member,
        points=split.points_used,
        reason="travel_hold",
        reference=redemption.id,
        credit=ledger.system_account(session, name="travel-escrow", unit="points"),
        key=f"hold:{redemption.id}",
        now=now,
    )
    return redemption, balance, {**details, "expires_at": expires_at.isoformat()}


def _redemption_body(session: Session, redemption: Redemption, member: Member) -> dict[str, Any]:
    body = {
        "id": redemption.id,
        "kind": redemption.kind,
        "member_ref": member.ref,
        "status": redemption.status,
        "points_debited": redemption.points,
        "balance": ledger.balance_of(session, member_id=member.id, unit="points"),
        **redemption.details,
    }
    if redemption.expires_at is not None:
        body["expires_at"] = redemption.expires_at.isoformat()
    return body


def get_redemption(session: Session, *, redemption_id: str) -> dict[str, Any]:
    """A redemption as the API shows it."""
    redemption = session.get(Redemption, redemption_id)
    if redemption is None:
        raise UnknownRedemption(f"no redemption {redemption_id!r}", field="id")
    member = customers.find_member_by_id(session, member_id=redemption.member_id)
    assert member is not None
    return _redemption_body(session, redemption, member)


def _release(session: Session, redemption: Redemption, *, status: str, reason: str, now: datetime) -> None:
    """Give held points back to the member (void or expiry)."""
    redemption.status, redemption.resolved_at = status, now
    ledger.post(
        session,
        debit=ledger.system_account(session, name="travel-escrow", unit="points"),
        credit=ledger.member_account(session, member_id=redemption.member_id, unit="points"),
        amount=redemption.points,
        reason=reason,
        reference=redemption.id,
        key=f"release:{redemption.id}",
        now=now,
    )
    outbox.emit(session, type=f"redemption.{status}", payload={"id": redemption.id}, now=now)


def resolve_hold(session: Session, *, redemption_id: str, action: str, now: datetime) -> Outcome:
    """Confirm (post) or void (release) a travel hold. Repeating the same action is a no-op.

    A hold past its expiry is released here even when asked to confirm, and the confirm is refused.
    """
    redemption = session.get(Redemption, redemption_id, with_for_update=True)
    if redemption is None or redemption.kind != "travel":
        raise UnknownRedemption(f"no travel redemption {redemption_id!r}", field="id")
    member = customers.find_member_by_id(session, member_id=redemption.member_id)
    assert member is not None
    target = {"confirm": "confirmed", "void": "voided"}[action]
    if redemption.status == "held" and redemption.expires_at and rules.is_expired(redemption.expires_at, now):
        _release(session, redemption, status="expired", reason="travel_hold_expired", now=now)
    if redemption.status == target:
        return Outcome(200, _redemption_body(session, redemption, member))
    if redemption.status != "held":
        problem = HoldNotPending(
            f"the hold is {redemption.status}; it can no longer be {target}",
            field="id",
            redemption_status=redemption.status,
        )
        return Outcome(problem.status, problem.to_problem())
    if action == "confirm":
        redemption.status, redemption.resolved_at = "confirmed", now
        ledger.post(
            session,
            debit=ledger.system_account(session, name="travel-escrow", unit="points"),
            credit=ledger.system_account(session, name="travel", unit="points"),
            amount=redemption.points,
            reason="travel_confirm",
            reference=redemption.id,
            key=f"confirm:{redemption.id}",
            now=now,
        )
        outbox.emit(session, type="redemption.confirmed", payload={"id": redemption.id}, now=now)
    else:
        _release(session, redemption, status="voided", reason="travel_void", now=now)
    return Outcome(200, _redemption_body(session, redemption, member))


def release_expired_holds(
    session: Session, *, now: datetime, member_id: int | None = None, limit: int = 1000
) -> int:
    """Release travel holds not confirmed in time; returns how many were released (each in a
    savepoint: a hold the ledger's bound refuses to give back is left for a later pass)."""
    statement = select(Redemption).where(Redemption.status == "held", Redemption.expires_at <= now)
    if member_id is not None:
        statement = statement.where(Redemption.member_id == member_id)
    expired = list(session.scalars(statement.limit(limit).with_for_update(skip_locked=True)))
    released = 0
    for redemption in expired:
        try:
            with session.begin_nested():
                _release(session, redemption, status="expired", reason="travel_hold_expired", now=now)
        except BalanceLimitExceeded:
            # No room in the member's balance for the points yet (``ledger_bounds``): the hold waits
            # for a later pass, and neither the other holds nor the member's spending wait for it.
            continue
        released += 1
    return released


def list_member_redemption_states(
    session: Session, *, member_ref: str, statuses: tuple[str, ...], since: datetime | None = None
) -> list[dict[str, Any]]:
    """A member's redemptions in ``statuses`` (resolved since ``since`` when given), newest first:
    id, kind, status and times only (the chat's moments read them)."""
    member = customers.get_member(session, ref=member_ref)
    statement = select(Redemption).where(Redemption.member_id == member.id, Redemption.status.in_(statuses))
    if since is not None:
        statement = statement.where(Redemption.resolved_at >= since)
    rows = session.scalars(statement.order_by(Redemption.created_at.desc(), Redemption.id).limit(50))
    return [
        {
            "id": r.id,
            "kind": r.kind,
            "status": r.status,
            "created_at": r.created_at,
            "expires_at": r.expires_at,
            "resolved_at": r.resolved_at,
        }
        for r in rows
    ]
