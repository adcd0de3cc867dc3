"""Load a campaign's treated and control members with their behaviour around ``t0``, and hand them
to ``roi.analyse``. Read-only: it runs in a read session and writes nothing.

Sums over each member's windows are computed by the database (one grouped join); the window
arithmetic is the one dialect-specific expression (``_seconds_between``). The queries name their
tables with lightweight ``table()``/``column()`` constructs: this is an analytical read across three
domains (offers decisions, the customer record, loyalty's card transactions) in one statement each,
and it must not depend on another domain's Python classes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    Integer,
    String,
    and_,
    case,
    cast,
    column,
    func,
    literal,
    select,
    table,
)
from sqlalchemy.orm import Session

from prevenance.common.base import UtcDateTime
from prevenance.common.ids import as_utc
from prevenance.common.problems import InvalidInput, NotFound
from prevenance.common.rules import FieldError
from prevenance.loyalty import service as loyalty
from prevenance.offers import rules
from prevenance.offers import service as offers
from prevenance.offers.roi import rules as roi

_offers = table(
    "offers",
    column("id", String),
    column("unit_cost_eur", String),
    column("margin_rate", String),
    column("expected_spend_eur", String),
)
_decisions = table(
    "offer_decisions",
    column("offer_id", String),
    column("member_id", Integer),
    column("arm", String),
    column("status", String),
    column("decided_at", UtcDateTime()),
    column("propensity", Float),
    column("reward_points", BigInteger),
    column("rewarded_at", UtcDateTime()),
)
_members = table("members", column("id", Integer), column("country", String), column("ref", String))
_transactions = table(
    "card_transactions",
    column("member_id", Integer),
    column("occurred_at", UtcDateTime()),
    column("amount_eur", String),
    column("amount_minor", BigInteger),
    column("refunded_minor", BigInteger),
)


class UnknownOffer(NotFound):
    """The campaign named in the path does not exist."""

    type_slug = "unknown-offer"
    title = "Unknown offer"


class ArmTooSmall(InvalidInput):
    """A group is too small for an honest interval: the answer is a refusal, not a wide guess."""

    type_slug = "arm-too-small"
    title = "Not enough members in a group"


@dataclass(frozen=True)
class Anchor:
    """A member of the campaign: its arm, its country and its first decision."""

    member_id: int
    arm: str
    country: str
    t0: datetime


def _decimal(text: str, field: str) -> Decimal:
    try:
        return Decimal(text)
    except (InvalidOperation, TypeError):
        raise InvalidInput(f"the offer's {field} {text!r} is not a decimal", field=field)


def _anchors(session: Session, *, offer_id: str, country: str | None) -> list[Anchor]:
    """Each member's first decision of the campaign. Hashing puts a member in one arm for good; if
    data ever held both, the arm of the first decision wins (intent to treat)."""
    where: list[ColumnElement[bool]] = [
        _decisions.c.offer_id == offer_id,
        _decisions.c.arm.in_(("treatment", "control")),
    ]
    if country:
        where.append(_members.c.country == country)
    rows = session.execute(
        select(
            _decisions.c.member_id,
            _decisions.c.arm,
            _members.c.country,
            func.min(_decisions.c.decided_at).label("t0"),
        )
        .join(_members, _members.c.id == _decisions.c.member_id)
        .where(*where)
        .group_by(_decisions.c.member_id, _decisions.c.arm, _members.c.country)
    ).all()
    first: dict[int, Anchor] = {}
    for member_id, arm, member_country, t0 in rows:
        anchor = Anchor(int(member_id), str(arm), str(member_country), as_utc(t0))
        known = first.get(anchor.member_id)
        if known is None or anchor.t0 < known.t0:
            first[anchor.member_id] = anchor
    return list(first.values())


def _rewarded(session: Session, *, offer_id: str, country: str | None) -> dict[int, tuple[int, int]]:
    """How many rewards each treated member actually received (decisions in ``rewarded``) and the
    points they were paid."""
    query = (
        select(_decisions.c.member_id, func.count(), func.coalesce(func.sum(_decisions.c.reward_points), 0))
        .where(
            _decisions.c.offer_id == offer_id,
            _decisions.c.arm == "treatment",
            _decisions.c.status == "rewarded",
        )
        .group_by(_decisions.c.member_id)
    )
    if country:
        query = query.join(_members, _members.c.id == _decisions.c.member_id).where(
            _members.c.country == country
        )
    return {int(member_id): (int(count), int(points)) for member_id, count, points in session.execute(query)}


def _sized_effect(session: Session, *, offer_id: str, expected_spend: Decimal) -> float | None:
    """The spend effect per treated member the campaign was sized for: each decision expected its
    member to respond with the recorded propensity and then spend ``expected_spend_eur`` more, so
    intent to treat expects mean(propensity) x expected spend."""
    mean = session.execute(
        select(func.avg(_decisions.c.propensity)).where(
            _decisions.c.offer_id == offer_id, _decisions.c.arm == "treatment"
        )
    ).scalar_one_or_none()
    return None if mean is None else float(mean) * float(expected_spend)


def _seconds_between(
    later: ColumnElement[Any], earlier: ColumnElement[Any], dialect: str
) -> ColumnElement[Any]:
    """``later − earlier`` in seconds, in SQL. SQLite stores times as text: ``julianday`` reads
    them (to about 20 µs at today's dates); PostgreSQL subtracts timestamps natively."""
    if dialect == "sqlite":
        # Rounded to the millisecond, so an instant exactly on a window edge is not moved across it
        # by the floating-point day count.
        return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)
    return func.extract("epoch", later - earlier)


def _windows(
    session: Session,
    *,
    offer_id: str,
    country: str | None,
    anchors: list[Anchor],
    before: timedelta,
    after: timedelta,
) -> dict[int, list[float]]:
    """Per member ``[spend_before, spend_after, tx_before, tx_after]``, summed in the database.
    Spend is in EUR net of refunds; a transaction counts as one visit even when refunded later.
    A transaction at ``t0`` belongs to the after window; windows are ``[t0 − before, t0)`` and
    ``[t0, t0 + after)``."""
    if not anchors:
        return {}
    low = min(a.t0 for a in anchors) - before
    high = max(a.t0 for a in anchors) + after
    where: list[ColumnElement[bool]] = [
        _decisions.c.offer_id == offer_id,
        _decisions.c.arm.in_(("treatment", "control")),
    ]
    first = select(_decisions.c.member_id, func.min(_decisions.c.decided_at).label("t0"))
    if country:
        first = first.join(_members, _members.c.id == _decisions.c.member_id)
        where.append(_members.c.country == country)
    anchor = first.where(*where).group_by(_decisions.c.member_id).subquery()
    dt = _seconds_between(_transactions.c.occurred_at, anchor.c.t0, session.get_bind().dialect.name)
    net = (
        cast(_transactions.c.amount_eur, Float)
        * (_transactions.c.amount_minor - func.coalesce(_transactions.c.refunded_minor, 0))
        / cast(_transactions.c.amount_minor, Float)
    )
    in_before = and_(dt >= -before.total_seconds(), dt < 0)
    in_after = and_(dt >= 0, dt < after.total_seconds())
    query = (
        select(
            anchor.c.member_id,
            func.sum(case((in_before, net), else_=0.0)),
            func.sum(case((in_after, net), else_=0.0)),
            func.count(case((in_before, 1))),
            func.count(case((in_after, 1))),
        )
        .join(anchor, anchor.c.member_id == _transactions.c.member_id)
        .where(_transactions.c.occurred_at >= low, _transactions.c.occurred_at < high)
        .group_by(anchor.c.member_id)
    )
    return {
        int(member_id): [float(sb or 0.0), float(sa or 0.0), float(tb), float(ta)]
        for member_id, sb, sa, tb, ta in session.execute(query)
    }


def _members_of(
    anchors: list[Anchor], totals: dict[int, list[float]], rewarded: dict[int, tuple[int, int]]
) -> list[roi.MemberWindows]:
    members = []
    for anchor in anchors:
        spend_before, spend_after, tx_before, tx_after = totals.get(anchor.member_id, [0.0, 0.0, 0.0, 0.0])
        members.append(
            roi.MemberWindows(
                arm=anchor.arm,
                country=anchor.country,
                spend_before=spend_before,
                spend_after=spend_after,
                transactions_before=int(tx_before),
                transactions_after=int(tx_after),
                rewarded=rewarded.get(anchor.member_id, (0, 0))[0] if anchor.arm == "treatment" else 0,
                reward_points=rewarded.get(anchor.member_id, (0, 0))[1] if anchor.arm == "treatment" else 0,
            )
        )
    return members


def _refusal(error: FieldError, *, country: str | None) -> InvalidInput:
    if isinstance(error, roi.ArmTooSmall):
        return ArmTooSmall(
            str(error) + (f" in {country}" if country else ""),
            field="country" if country else error.field,
            arm=error.arm,
            n=error.n,
            minimum=error.minimum,
        )
    return InvalidInput(str(error), field=error.field)


def roi_report(
    session: Session,
    *,
    offer_id: str,
    now: datetime,
    before_days: int = roi.DEFAULT_BEFORE_DAYS,
    after_days: int = roi.DEFAULT_AFTER_DAYS,
    country: str | None = None,
    min_arm: int = roi.DEFAULT_MIN_ARM,
    ci: str = "welch",
    seed: int = 0,
    replicates: int = roi.DEFAULT_REPLICATES,
    programme_holdout: bool = True,
) -> dict[str, Any]:
    """The campaign's difference in differences and ROI against its control group, overall (or for
    one country) and cut by country, with the whole programme against its holdout beside it (unless
    ``programme_holdout`` is False); 404 for an unknown offer, 422 when a group is too small."""
    offer = session.execute(
        select(
            _offers.c.id, _offers.c.unit_cost_eur, _offers.c.margin_rate, _offers.c.expected_spend_eur
        ).where(_offers.c.id == offer_id)
    ).first()
    if offer is None:
        raise UnknownOffer(f"no offer {offer_id!r}", field="offer_id")
    if country is not None:
        country = country.strip().upper()
        if len(country) != 2 or not country.isalpha():
            raise InvalidInput("country must be an ISO 3166-1 alpha-2 code such as FR", field="country")
    unit_cost = _decimal(offer.unit_cost_eur, "unit_cost_eur")
    margin_rate = _decimal(offer.margin_rate, "margin_rate")
    before, after = timedelta(days=before_days), timedelta(days=after_days)
    anchors = _anchors(session, offer_id=offer_id, country=country)
    totals = _windows(
        session, offer_id=offer_id, country=country, anchors=anchors, before=before, after=after
    )
    members = _members_of(anchors, totals, _rewarded(session, offer_id=offer_id, country=country))
    liability = loyalty.point_liability(session, now=now)
    expected_spend = _decimal(offer.expected_spend_eur or "0", "expected_spend_eur")
    sized = _sized_effect(session, offer_id=offer_id, expected_spend=expected_spend)
    params: dict[str, Any] = {
        "eur_per_point": liability["eur_per_point"],
        "sized_effect_eur": sized,
        "sized_basis_text": "mean propensity of the treated decisions x expected_spend_eur",
        "before_days": before_days,
        "after_days": after_days,
        "unit_cost_eur": unit_cost,
        "margin_rate": margin_rate,
        "min_arm": min_arm,
        "ci": ci,
        "seed": seed,
        "replicates": replicates,
    }
    try:
        report = roi.analyse(members, **params)
    except FieldError as error:
        raise _refusal(error, country=country)
    by_country = []
    for code in sorted({m.country for m in members}):
        subset = [m for m in members if m.country == code]
        try:
            cut: dict[str, Any] = {"country": code, **roi.analyse(subset, **params)}
        except roi.ArmTooSmall as error:
            cut = {
                "country": code,
                "refused": str(error),
                "treatment": {"n": sum(m.arm == "treatment" for m in subset)},
                "control": {"n": sum(m.arm == "control" for m in subset)},
            }
        cut.pop("method", None)
        by_country.append(cut)
    still_open = sum(1 for a in anchors if a.t0 + after > now)
    report["window"]["after_still_open"] = still_open
    report["liability"]["point_cost"] = liability
    return {
        "offer_id": offer_id,
        "country": country,
        "unit_cost_eur": str(unit_cost),
        "margin_rate": str(margin_rate),
        **report,
        "by_country": by_country,
        "programme_holdout": programme_holdout_report(
            session,
            now=now,
            margin_rate=margin_rate,
            eur_per_point=liability["eur_per_point"],
            min_arm=min_arm,
        )
        if programme_holdout
        else None,
    }


def programme_holdout_for(
    session: Session, *, now: datetime, margin_rate: Decimal | None = None, min_arm: int = roi.DEFAULT_MIN_ARM
) -> dict[str, Any] | None:
    """The whole programme against its holdout on its own (``GET /v1/programme-holdout``, the
    marketing screen): the margin rate is the mean of the offers' unless given."""
    if margin_rate is None:
        rates = [Decimal(r) for r in session.execute(select(_offers.c.margin_rate)).scalars()]
        margin_rate = sum(rates, Decimal(0)) / len(rates) if rates else Decimal("0.02")
    liability = loyalty.point_liability(session, now=now)
    found = programme_holdout_report(
        session, now=now, margin_rate=margin_rate, eur_per_point=liability["eur_per_point"], min_arm=min_arm
    )
    if found is not None and "refused" not in found:
        found["margin_rate"] = str(margin_rate)
    return found


def programme_holdout_report(
    session: Session,
    *,
    now: datetime,
    margin_rate: Decimal,
    eur_per_point: float,
    min_arm: int = roi.DEFAULT_MIN_ARM,
    max_days: int = 365,
) -> dict[str, Any] | None:
    """The whole programme's incremental value: every member outside the open holdout period against
    those inside, from its start to now (at most ``max_days``) and over the same length before it;
    None when no holdout period was ever started, a ``refused`` reason when an arm is too small."""
    periods = offers.programme_holdout_periods(session)
    period = offers.programme_holdout_in_force(session)
    if period is None:
        return None if not periods else {"refused": "no holdout period is open", "periods": periods}
    start = period.started_at
    days = max(1, min(max_days, int((now - start).total_seconds() // 86400)))
    length = timedelta(days=days)
    dt = _seconds_between(
        _transactions.c.occurred_at, literal(start, UtcDateTime()), session.get_bind().dialect.name
    )
    net = (
        cast(_transactions.c.amount_eur, Float)
        * (_transactions.c.amount_minor - func.coalesce(_transactions.c.refunded_minor, 0))
        / cast(_transactions.c.amount_minor, Float)
    )
    in_before = and_(dt >= -length.total_seconds(), dt < 0)
    in_after = and_(dt >= 0, dt < length.total_seconds())
    totals = {
        int(member_id): (float(sb or 0.0), float(sa or 0.0), int(tb), int(ta))
        for member_id, sb, sa, tb, ta in session.execute(
            select(
                _transactions.c.member_id,
                func.sum(case((in_before, net), else_=0.0)),
                func.sum(case((in_after, net), else_=0.0)),
                func.count(case((in_before, 1))),
                func.count(case((in_after, 1))),
            )
            .where(
                _transactions.c.occurred_at >= start - length, _transactions.c.occurred_at < start + length
            )
            .group_by(_transactions.c.member_id)
        )
    }
    members = []
    for member_id, ref, member_country in session.execute(
        select(_members.c.id, _members.c.ref, _members.c.country)
    ):
        sb, sa, tb, ta = totals.get(int(member_id), (0.0, 0.0, 0, 0))
        held = rules.in_programme_holdout(str(ref), period.salt, period.share)
        members.append(
            roi.MemberWindows(
                arm="holdout" if held else "exposed",
                country=str(member_country),
                spend_before=sb,
                spend_after=sa,
                transactions_before=tb,
                transactions_after=ta,
            )
        )
    points = session.execute(
        select(func.coalesce(func.sum(_decisions.c.reward_points), 0)).where(
            _decisions.c.status == "rewarded",
            _decisions.c.rewarded_at >= start,
            _decisions.c.rewarded_at < start + length,
        )
    ).scalar_one()
    cost = (Decimal(str(eur_per_point)) * int(points)).quantize(Decimal("0.01"))
    try:
        found = roi.programme_effect(
            members, window_days=days, margin_rate=margin_rate, cost_eur=cost, min_arm=min_arm
        )
    except roi.ArmTooSmall as error:
        return {"period": period.body(), "refused": str(error)}
    return {"period": period.body(), "reward_points": int(points), **found}
