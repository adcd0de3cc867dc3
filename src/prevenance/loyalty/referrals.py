"""Member-gets-member referrals: the link, the referral code, and the bonus paid on the
referee's first earn."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, bindparam, func, select, update
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import fingerprint, new_id
from prevenance.common.periods import month_bounds
from prevenance.common.stats import wilson_bounds
from prevenance.customers import service as customers
from prevenance.customers.service import MemberSummary
from prevenance.loyalty import ledger, programme, rules
from prevenance.loyalty.errors import (
    InvalidReferral,
    InvalidReferralCode,
)
from prevenance.loyalty.rules import product_rule
from prevenance.loyalty.tables import (
    CardTransaction,
    Referral,
)

if TYPE_CHECKING:
    from prevenance.customers.tables import Member


def create_referral(
    session: Session, *, referrer_ref: str, referee_ref: str, key: str | None, now: datetime
) -> Outcome:
    """Record that a member referred another; the bonus waits for the referee's first transaction."""
    caller_key = key or f"{referrer_ref}->{referee_ref}"
    digest = fingerprint({"referrer_ref": referrer_ref, "referee_ref": referee_ref})
    return run_idempotent(
        session,
        scope="referral",
        key=caller_key,
        fingerprint=digest,
        now=now,
        produce=lambda: _refer(
            session, referrer_ref=referrer_ref, referee_ref=referee_ref, key=caller_key, now=now
        ),
    )


def _refer(session: Session, *, referrer_ref: str, referee_ref: str, key: str, now: datetime) -> Outcome:
    if referrer_ref == referee_ref:
        raise InvalidReferral("a member cannot refer themselves", field="referee_ref")
    referrer = customers.get_member_for_body(session, ref=referrer_ref, field="referrer_ref")
    referee = customers.get_member_for_body(session, ref=referee_ref, field="referee_ref")
    referral = _insert_referral(
        session, referrer=referrer, referee=referee, referral_id=key, refusal=InvalidReferral, now=now
    )
    body = {
        "id": referral.id,
        "referrer_ref": referrer.ref,
        "referee_ref": referee.ref,
        "status": "pending",
        "bonus": referral.bonus,
        "unit": referral.unit,
    }
    return Outcome(201, body)


def _insert_referral(
    session: Session,
    *,
    referrer: Member,
    referee: Member,
    referral_id: str,
    refusal: type[InvalidReferral],
    now: datetime,
) -> Referral:
    """The pending referral, once the referee is known to be new (no referrer, no transaction)."""
    field = "referral_code" if refusal is InvalidReferralCode else "referee_ref"
    # Lock the referee's accounts (which every earn updates) so that a first transaction cannot slip
    # in between the "not yet transacting" check and the insert.
    ledger.lock_member_accounts(session, member_id=referee.id)
    if session.scalars(select(Referral.id).where(Referral.referee_id == referee.id)).first() is not None:
        raise refusal(f"{referee.ref} already has a referrer", field=field)
    if session.scalars(
        select(CardTransaction.id).where(CardTransaction.member_id == referee.id).limit(1)
    ).first():
        raise refusal(f"{referee.ref} is already transacting; referral is for new customers", field=field)
    rule = product_rule(programme.current(session), referrer)
    referral = Referral(
        id=referral_id,
        referrer_id=referrer.id,
        referee_id=referee.id,
        status="pending",
        bonus=rule.referral_bonus,
        unit=rule.unit,
        created_at=now,
    )
    session.add(referral)
    session.flush()
    return referral


def get_referral_code(session: Session, *, member_ref: str, secret: str) -> dict[str, Any]:
    """The code a member shares: a new customer who enters it chooses them as referrer (consent)."""
    member = customers.get_member(session, ref=member_ref)
    rule = product_rule(programme.current(session), member)
    code = rules.referral_code(member.id, key=rules.referral_code_key(secret))
    return {"member_ref": member.ref, "referral_code": code, "bonus": rule.referral_bonus, "unit": rule.unit}


def redeem_referral_code(
    session: Session, *, referee_ref: str, code: str, key: str | None, secret: str, now: datetime
) -> Outcome:
    """Record that a new customer was referred by the owner of the code they entered.

    The answer never names the referrer nor says anything about them: a code is accepted, or
    refused (422 ``invalid-referral-code`` on ``referral_code``) because no member has it, or for
    what it says about the customer themselves (their own code, a referrer already, transacting).
    """
    normalised = rules.normalise_referral_code(code)
    # Keys live in the referee's own space (a caller cannot probe another member's requests), hashed
    # to the key column's size whatever the lengths.
    caller_key = fingerprint({"referee_ref": referee_ref, "key": key or normalised or code})
    return run_idempotent(
        session,
        scope="referral-code",
        key=caller_key,
        fingerprint=fingerprint({"referee_ref": referee_ref, "referral_code": normalised or code}),
        now=now,
        produce=lambda: _refer_by_code(
            session, referee_ref=referee_ref, code=normalised, secret=secret, now=now
        ),
    )


def _refer_by_code(
    session: Session, *, referee_ref: str, code: str | None, secret: str, now: datetime
) -> Outcome:
    referee = customers.get_member(session, ref=referee_ref)
    owner = None if code is None else rules.referral_code_owner(code, key=rules.referral_code_key(secret))
    referrer = None if owner is None else customers.find_member_by_id(session, member_id=owner)
    if referrer is None or referrer.ref.startswith("erased-"):  # an erased member refers no one
        raise InvalidReferralCode("no member has this referral code", field="referral_code")
    if referrer.id == referee.id:
        raise InvalidReferralCode("this is your own referral code", field="referral_code")
    # The id is the server's, never the caller's: a chosen id could probe other referrals' ids.
    referral = _insert_referral(
        session,
        referrer=referrer,
        referee=referee,
        referral_id=new_id("rf"),
        refusal=InvalidReferralCode,
        now=now,
    )
    body = {"id": referral.id, "referee_ref": referee.ref, "referral_code": code, "status": "pending"}
    return Outcome(201, body)


_REFERRALS: Table = Referral.__table__  # type: ignore[assignment]
_PENDING_REFERRAL = (
    select(_REFERRALS.c.id)
    .where(_REFERRALS.c.referee_id == bindparam("p_referee"), _REFERRALS.c.status == "pending")
    .limit(1)
)


def reward_referral_if_pending(
    session: Session, *, referee: Member | MemberSummary, transaction_id: str, now: datetime
) -> None:
    """Credit the referrer once: the conditional update lets exactly one transaction win."""
    if session.execute(_PENDING_REFERRAL, {"p_referee": referee.id}).first() is None:
        return  # the common case, probed cheaply; the update below still decides who wins
    won = session.execute(
        update(Referral)
        .where(Referral.referee_id == referee.id, Referral.status == "pending")
        .values(status="rewarded", rewarded_at=now, rewarding_transaction_id=transaction_id)
        .returning(Referral.id, Referral.referrer_id, Referral.bonus, Referral.unit)
    ).first()
    if won is None:
        return
    referral_id, referrer_id, bonus, unit = won
    if bonus > 0:
        ledger.post(
            session,
            debit=ledger.system_account(session, name="issuance", unit=unit),
            credit=ledger.member_account(session, member_id=referrer_id, unit=unit),
            amount=bonus,
            reason="referral",
            reference=referral_id,
            key=ledger.posting_key("referral", referral_id),
            now=now,
        )
    outbox.emit(
        session,
        type="referral.rewarded",
        payload={"id": referral_id, "referee_ref": referee.ref, "bonus": bonus, "unit": unit},
        now=now,
    )


# --- following referrals ----------------------------------------------------------------------------
#
# What a member sees of a referral is what they are entitled to: that they referred someone (or were
# referred), when, its status and the bonus, but never who the other party is. The referee chose the
# referrer by entering a code (that is the consent), not the other way round, and a referral recorded
# by staff carries no consent of either party to be shown to the other. Staff roles see both refs;
# an erased member appears only as its ``erased-…`` placeholder.


def _referral_row(referral: Referral, refs: dict[int, str], *, counterpart: bool) -> dict[str, Any]:
    return {
        "id": referral.id,
        "referrer_ref": refs.get(referral.referrer_id) if counterpart else None,
        "referee_ref": refs.get(referral.referee_id) if counterpart else None,
        "status": referral.status,
        "bonus": referral.bonus,
        "unit": referral.unit,
        "created_at": referral.created_at,
        "rewarded_at": referral.rewarded_at,
    }


def list_member_referrals(session: Session, *, member_ref: str, staff: bool) -> dict[str, Any]:
    """The member's referrals as referrer (newest first) and as referee (at most one). A member key
    (``staff`` False) sees its own side only: the other party's ref is left out."""
    member = customers.get_member(session, ref=member_ref)
    made = list(
        session.scalars(
            select(Referral)
            .where(Referral.referrer_id == member.id)
            .order_by(Referral.created_at.desc(), Referral.id)
        )
    )
    received = session.scalars(select(Referral).where(Referral.referee_id == member.id)).first()
    everyone = [r.referee_id for r in made] + ([received.referrer_id] if received else [])
    refs = {**customers.refs_of(session, member_ids=everyone), member.id: member.ref} if staff else {}
    as_referrer = [_referral_row(r, refs, counterpart=staff) for r in made]
    if not staff:
        for row in as_referrer:
            row["referrer_ref"] = member.ref
    as_referee = None
    if received is not None:
        as_referee = _referral_row(received, refs, counterpart=staff)
        as_referee["referee_ref"] = member.ref
    return {
        "member_ref": member.ref,
        "as_referrer": as_referrer,
        "as_referee": as_referee,
        "points_earned": sum(r.bonus for r in made if r.status == "rewarded" and r.unit == "points"),
    }


REFERRAL_STATUSES = ("pending", "rewarded")


def list_referrals(session: Session, *, status: str | None, month: str | None, limit: int) -> dict[str, Any]:
    """Referrals made, newest first, by status and by the month they were made in (staff)."""
    statement = select(Referral)
    if status is not None:
        statement = statement.where(Referral.status == status)
    if month is not None:
        start, end = month_bounds(month)
        statement = statement.where(Referral.created_at >= start, Referral.created_at < end)
    rows = list(session.scalars(statement.order_by(Referral.created_at.desc(), Referral.id).limit(limit + 1)))
    refs = customers.refs_of(session, member_ids=[r.referrer_id for r in rows] + [r.referee_id for r in rows])
    return {
        "referrals": [_referral_row(r, refs, counterpart=True) for r in rows[:limit]],
        "truncated": len(rows) > limit,
    }


def monthly_report(session: Session, *, month: str) -> dict[str, Any]:
    """The month's referrals: made, converted (of those made that month, how many referees have
    transacted since: a cohort, so the latest months are still filling), the conversion rate with
    its 95 % Wilson interval, and the bonuses paid that month (whatever month the referral was made)."""
    start, end = month_bounds(month)
    made_rows = session.execute(
        select(Referral.status).where(Referral.created_at >= start, Referral.created_at < end)
    ).all()
    made = len(made_rows)
    converted = sum(1 for (status,) in made_rows if status == "rewarded")
    paid = session.execute(
        select(Referral.unit, func.count(), func.coalesce(func.sum(Referral.bonus), 0))
        .where(Referral.rewarded_at >= start, Referral.rewarded_at < end)
        .group_by(Referral.unit)
    ).all()
    by_unit = {unit: (int(count), int(total)) for unit, count, total in paid}
    interval = None
    if made:
        low, high = wilson_bounds(converted, made)
        interval = {"low": round(low, 4), "high": round(high, 4), "level": 0.95, "method": "wilson"}
    return {
        "month": month,
        "made": made,
        "converted": converted,
        "conversion_rate": round(converted / made, 4) if made else None,
        "conversion_interval": interval,
        "rewarded_in_month": sum(count for count, _ in by_unit.values()),
        "points_paid": by_unit.get("points", (0, 0))[1],
        "miles_paid": by_unit.get("miles", (0, 0))[1],
    }
