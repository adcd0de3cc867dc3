"""Use cases of the service desk. Each runs inside the caller's unit of work and never commits;
each write claims its idempotency key first (see ``common.idempotency``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Subquery, Table, bindparam, func, insert, select
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import as_utc, fingerprint, fingerprint_of, new_id
from prevenance.common.problems import IdempotencyConflict, InvalidInput
from prevenance.customers import service as customers
from prevenance.desk import config, rules
from prevenance.desk.errors import (
    BenefitNotEntitled,
    CallbackAlreadyCompleted,
    CaseOfAnotherMember,
    ContactOfAnotherMember,
    ReplacementStatusConflict,
    UnknownBenefit,
    UnknownCallback,
    UnknownCardReplacement,
    UnknownCase,
    UnknownCaseInBody,
    UnknownContact,
    UnknownContactInBody,
    UnknownReason,
)
from prevenance.desk.tables import (
    BenefitExplanation,
    BenefitUsage,
    Callback,
    CardReplacement,
    Case,
    Communication,
    Contact,
    ContactPreference,
    Incident,
    IncidentNotice,
)

if TYPE_CHECKING:
    from prevenance.customers.tables import Member

_CHUNK = 1000  # members per IN list: well under SQLite's and PostgreSQL's parameter limits


_utc = as_utc


def _iso(moment: datetime | None) -> str | None:
    """UTC as the response models write it (``…Z``), so a POST's raw answer and a GET agree."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment is not None else None


def _chunks(items: Sequence[int]) -> Iterable[Sequence[int]]:
    for start in range(0, len(items), _CHUNK):
        yield items[start : start + _CHUNK]


# --- reasons ------------------------------------------------------------------------------------


def list_reasons() -> list[dict[str, str]]:
    """The configured two-level reason taxonomy, leaves only, with French and English labels."""
    return [asdict(reason) for reason in config.current().reasons.values()]


def _labels(code: str) -> tuple[str, str]:
    reason = config.current().reasons.get(code)
    return (reason.label_fr, reason.label_en) if reason else (code, code)


# --- contacts and cases -------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactInput:
    """One interaction as the agent's desktop or a telephony system reports it."""

    id: str
    member_ref: str
    channel: str
    direction: str
    agent: str
    team: str
    reason: str
    started_at: datetime
    ended_at: datetime
    notes: str
    outcome: str
    case_id: str | None = None

    def fingerprint(self) -> str:
        return fingerprint_of(self)


def _contact_body(contact: Contact, member_ref: str) -> dict[str, Any]:
    label_fr, label_en = _labels(contact.reason)
    return {
        "id": contact.id,
        "member_ref": member_ref,
        "case_id": contact.case_id,
        "channel": contact.channel,
        "direction": contact.direction,
        "agent": contact.agent,
        "team": contact.team,
        "reason": contact.reason,
        "reason_label_fr": label_fr,
        "reason_label_en": label_en,
        "started_at": _iso(contact.started_at),
        "ended_at": _iso(contact.ended_at),
        "notes": contact.notes,
        "outcome": contact.outcome,
    }


def _case_body(case: Case, member_ref: str, contacts: list[Contact] | None = None) -> dict[str, Any]:
    return {
        "id": case.id,
        "member_ref": member_ref,
        "reason": case.reason,
        "status": case.status,
        "owner": case.owner,
        "country": case.country,
        "contact_count": case.contact_count,
        "first_contact_id": case.first_contact_id,
        "opened_at": _iso(case.opened_at),
        "resolved_at": _iso(case.resolved_at),
        "contacts": [_contact_body(c, member_ref) for c in contacts or []],
    }


def log_contact(session: Session, *, contact: ContactInput, now: datetime) -> Outcome:
    """Log a contact and file it in its case (a new one unless ``case_id`` names one), once per id."""
    return run_idempotent(
        session,
        scope="contact",
        key=contact.id,
        fingerprint=contact.fingerprint(),
        now=now,
        produce=lambda: _log_contact(session, data=contact, now=now),
    )


def _log_contact(session: Session, *, data: ContactInput, now: datetime) -> Outcome:
    if data.reason not in config.current().reasons:
        raise UnknownReason(
            f"unknown contact reason {data.reason!r}; see GET /v1/contact-reasons", field="reason"
        )
    started, ended = _utc(data.started_at), _utc(data.ended_at)
    if ended < started:
        raise InvalidInput("ended_at must not be before started_at", field="ended_at")
    member = customers.get_for_body_or_raise(session, ref=data.member_ref, field="member_ref")
    if data.case_id is not None:
        # Locked: two contacts filed in one case at once must both count.
        case = session.get(Case, data.case_id, with_for_update=True)
        if case is None:
            raise UnknownCaseInBody(f"no case {data.case_id!r}", field="case_id")
        if case.member_id != member.id:
            raise CaseOfAnotherMember(f"case {case.id!r} is another member's", field="case_id")
    else:
        case = Case(
            id=new_id("case"),
            member_id=member.id,
            reason=data.reason,
            country=member.country,
            status="open",
            owner=data.agent,
            contact_count=0,
            first_contact_id=data.id,
            opened_at=started,
            updated_at=now,
        )
        session.add(case)
        session.flush()
    contact = Contact(
        id=data.id,
        member_id=member.id,
        case_id=case.id,
        channel=data.channel,
        direction=data.direction,
        agent=data.agent,
        team=data.team,
        reason=data.reason,
        started_at=started,
        ended_at=ended,
        notes=data.notes,
        outcome=data.outcome,
        created_at=now,
    )
    session.add(contact)
    case.contact_count += 1
    case.updated_at = now
    if data.outcome == "resolved":
        case.status, case.resolved_at = "resolved", ended
    elif case.status == "resolved":
        case.status, case.resolved_at = "open", None  # the matter came back: the case reopens
    session.flush()
    body = _contact_body(contact, member.ref)
    outbox.emit(
        session,
        type="contact.closed",
        payload={**body, "case_status": case.status, "country": case.country, "language": member.language},
        now=now,
    )
    return Outcome(201, body)


def get_contact(session: Session, *, contact_id: str) -> dict[str, Any]:
    """One contact; 404 when unknown."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise UnknownContact(f"no contact {contact_id!r}", field="id")
    member = customers.get_by_id(session, member_id=contact.member_id)
    assert member is not None
    return _contact_body(contact, member.ref)


def list_member_contacts(session: Session, *, member_ref: str, limit: int = 50) -> dict[str, Any]:
    """A member's contacts, newest first."""
    member = customers.get_or_raise(session, ref=member_ref)
    rows = session.scalars(
        select(Contact)
        .where(Contact.member_id == member.id)
        .order_by(Contact.started_at.desc(), Contact.id.desc())
        .limit(limit)
    )
    return {"member_ref": member.ref, "items": [_contact_body(c, member.ref) for c in rows]}


def _case_contacts(session: Session, case_id: str) -> list[Contact]:
    return list(
        session.scalars(
            select(Contact).where(Contact.case_id == case_id).order_by(Contact.started_at, Contact.id)
        )
    )


def get_case(session: Session, *, case_id: str) -> dict[str, Any]:
    """A case with its contacts in order; 404 when unknown."""
    case = session.get(Case, case_id)
    if case is None:
        raise UnknownCase(f"no case {case_id!r}", field="id")
    member = customers.get_by_id(session, member_id=case.member_id)
    assert member is not None
    return _case_body(case, member.ref, _case_contacts(session, case.id))


def resolve_case(session: Session, *, case_id: str, owner: str | None, now: datetime) -> dict[str, Any]:
    """Resolve an open case without a new contact; resolving a resolved case changes nothing.

    A case resolved this way was not resolved at its first contact (that contact ended otherwise),
    so it never counts towards first-contact resolution.
    """
    case = session.get(Case, case_id, with_for_update=True)
    if case is None:
        raise UnknownCase(f"no case {case_id!r}", field="id")
    member = customers.get_by_id(session, member_id=case.member_id)
    assert member is not None
    if case.status != "resolved":
        case.status, case.resolved_at, case.updated_at = "resolved", now, now
        if owner:
            case.owner = owner
        session.flush()
        outbox.emit(
            session,
            type="case.resolved",
            payload={"id": case.id, "member_ref": member.ref, "owner": case.owner},
            now=now,
        )
    return _case_body(case, member.ref, _case_contacts(session, case.id))


def list_member_cases(
    session: Session, *, member_ref: str, status: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """A member's cases, newest first (without their contacts)."""
    member = customers.get_or_raise(session, ref=member_ref)
    statement = select(Case).where(Case.member_id == member.id)
    if status is not None:
        statement = statement.where(Case.status == status)
    rows = session.scalars(statement.order_by(Case.opened_at.desc(), Case.id.desc()).limit(limit))
    return [_case_body(case, member.ref) for case in rows]


# --- first-contact resolution -------------------------------------------------------------------


def fcr_report(session: Session, *, by: str, month: str | None, now: datetime) -> dict[str, Any]:
    """First-contact resolution of the cases opened in ``month`` (or ever), grouped by ``by``.

    Cases are grouped by their first contact's agent, team, channel and reason, the member's
    country when the case opened, or the month it opened. A case whose repeat window is still open
    is reported as undetermined, not counted either way.
    """
    if by not in rules.FCR_DIMENSIONS:
        raise InvalidInput(f"by must be one of {', '.join(rules.FCR_DIMENSIONS)}", field="by")
    window = config.current().fcr_window
    # Plain columns, not ORM objects: a month at desk volumes is some 100,000 cases.
    statement = select(
        Case.id,
        Case.member_id,
        Case.status,
        Case.contact_count,
        Case.resolved_at,
        Case.country,
        Contact.agent,
        Contact.team,
        Contact.channel,
        Contact.reason,
        Contact.outcome,
        Contact.started_at,
    ).join(Contact, Contact.id == Case.first_contact_id)
    if month is not None:
        try:
            start, end = rules.month_bounds(month)
        except rules.RuleViolation as error:
            raise InvalidInput(str(error), field=error.field)
        statement = statement.where(Case.opened_at >= start, Case.opened_at < end)
    cases = list(session.execute(statement))
    repeats = _same_reason_contacts(session, cases, window=window)
    successes: dict[str, int] = defaultdict(int)
    counted: dict[str, int] = defaultdict(int)
    undetermined = 0
    for case in cases:
        facts = rules.CaseFacts(
            status=case.status,
            contacts=case.contact_count,
            first_outcome=case.outcome,
            first_started_at=case.started_at,
            resolved_at=case.resolved_at,
        )
        others = [at for at, case_id in repeats.get((case.member_id, case.reason), ()) if case_id != case.id]
        verdict = rules.first_contact_resolved(facts, same_reason_contacts=others, window=window, now=now)
        if verdict is None:
            undetermined += 1
            continue
        key = case.started_at.strftime("%Y-%m") if by == "month" else str(getattr(case, by))
        counted[key] += 1
        successes[key] += int(verdict)
    rows = [_rate_row(key, successes[key], counted[key]) for key in sorted(counted)]
    return {
        "by": by,
        "month": month,
        "window_days": window.days,
        "undetermined": undetermined,
        "overall": _rate_row("all", sum(successes.values()), sum(counted.values())),
        "rows": rows,
    }


def _same_reason_contacts(
    session: Session, cases: Sequence[Any], *, window: timedelta
) -> dict[tuple[int, str], list[tuple[datetime, str]]]:
    """Start times (and cases) of the contacts that could make a candidate case a repeat."""
    candidates = [case for case in cases if case.contact_count == 1 and case.status == "resolved"]
    if not candidates:
        return {}
    earliest = min(case.started_at for case in candidates)
    latest = max((case.resolved_at or case.started_at) for case in candidates) + window
    member_ids = sorted({case.member_id for case in candidates})
    found: dict[tuple[int, str], list[tuple[datetime, str]]] = defaultdict(list)
    for chunk in _chunks(member_ids):
        rows = session.execute(
            select(Contact.member_id, Contact.reason, Contact.started_at, Contact.case_id).where(
                Contact.member_id.in_(chunk), Contact.started_at > earliest, Contact.started_at <= latest
            )
        )
        for member_id, reason, started_at, case_id in rows:
            found[(member_id, reason)].append((started_at, case_id))
    return found


def reason_report(session: Session, *, month: str) -> dict[str, Any]:
    """Why customers contact us in ``month``: volume by reason, channel and country, against the
    previous month, with the repeat-contact rate, the reasons that grow and the avoidable share.

    A contact is a repeat when the member contacted again on the same reason within the FCR
    window (looked for up to a window past the month's end). A contact is avoidable when its
    reason's answer is available in self-care (``self_care`` in the taxonomy), or when a proactive
    notice would have prevented it: the member was affected by an incident active at the time, on
    a reason the incident explains, and had not yet been sent its notice.
    """
    try:
        start, end = rules.month_bounds(month)
        previous = rules.previous_month(month)
    except rules.RuleViolation as error:
        raise InvalidInput(str(error), field=error.field)
    previous_start, _ = rules.month_bounds(previous)
    settings = config.current()
    window = settings.fcr_window
    rows = session.execute(
        select(Contact.member_id, Contact.reason, Contact.channel, Contact.started_at, Case.country)
        .join(Case, Case.id == Contact.case_id)
        .where(Contact.started_at >= previous_start, Contact.started_at < end + window)
        .order_by(Contact.member_id, Contact.reason, Contact.started_at)
    ).all()
    by_member_reason: dict[tuple[int, str], list[datetime]] = defaultdict(list)
    for row in rows:
        by_member_reason[(row.member_id, row.reason)].append(row.started_at)
    repeats: set[tuple[int, str, datetime]] = set()
    for (member_id, reason), starts in by_member_reason.items():
        for started, again in zip(starts, rules.repeated(starts, window=window), strict=True):
            if again:
                repeats.add((member_id, reason, started))
    current = [row for row in rows if start <= row.started_at < end]
    unwarned = _unwarned_incident_contacts(session, current, start=start, end=end)
    before: dict[str, int] = defaultdict(int)
    for row in rows:
        if row.started_at < start:
            before[row.reason] += 1
    days, previous_days = (end - start).days, (start - previous_start).days
    grouped: dict[str, list[Any]] = defaultdict(list)
    for row in current:
        grouped[row.reason].append(row)
    reasons: list[dict[str, Any]] = []
    for code, items in grouped.items():
        taxon = settings.reasons.get(code)
        repeated_n = sum((r.member_id, r.reason, r.started_at) in repeats for r in items)
        self_care = bool(taxon and taxon.self_care)
        proactive_n = sum((r.member_id, r.reason, r.started_at) in unwarned for r in items)
        reasons.append(
            {
                "reason": code,
                "label_fr": taxon.label_fr if taxon else code,
                "label_en": taxon.label_en if taxon else code,
                "contacts": len(items),
                "previous": before.get(code, 0),
                "growth_z": round(
                    rules.growth_z(
                        len(items), before.get(code, 0), current_days=days, previous_days=previous_days
                    ),
                    3,
                ),
                "growing": rules.is_growing(
                    len(items), before.get(code, 0), current_days=days, previous_days=previous_days
                ),
                "avoidable": self_care,
                "avoidable_contacts": len(items) if self_care else proactive_n,
                "avoidable_by_notice": proactive_n,
                "repeat": _rate_row(code, repeated_n, len(items)),
                "channels": dict(sorted(_count(r.channel for r in items).items())),
                "countries": dict(sorted(_count(r.country for r in items).items())),
            }
        )
    reasons.sort(key=lambda r: (-r["contacts"], r["reason"]))
    self_care_n = sum(r["contacts"] for r in reasons if r["avoidable"])
    avoidable = sum(r["avoidable_contacts"] for r in reasons)
    by_notice = sum(r["avoidable_by_notice"] for r in reasons)
    all_repeats = sum(r["repeat"]["successes"] for r in reasons)
    return {
        "month": month,
        "previous_month": previous,
        "window_days": window.days,
        "contacts": len(current),
        "previous_contacts": sum(before.values()),
        "repeat": _rate_row("all", all_repeats, len(current)),
        "avoidable": _rate_row("all", avoidable, len(current)),
        "avoidable_self_care": _rate_row("self_care", self_care_n, len(current)),
        "avoidable_by_notice": _rate_row("proactive_notice", by_notice, len(current)),
        "by_channel": dict(sorted(_count(r.channel for r in current).items())),
        "by_country": dict(sorted(_count(r.country for r in current).items())),
        "growing": [r["reason"] for r in reasons if r["growing"]],
        "reasons": reasons,
    }


def _unwarned_incident_contacts(
    session: Session, contacts: Sequence[Any], *, start: datetime, end: datetime
) -> set[tuple[int, str, datetime]]:
    """The contacts (member, reason, start) a proactive notice would have prevented: made while an
    incident affecting the member was active, on a reason it explains (none listed: any), before
    the member's initial notice was sent (or when it never was)."""
    incidents = session.execute(
        select(Incident.id, Incident.since, Incident.resolved_at, Incident.affects).where(
            Incident.since < end, (Incident.resolved_at.is_(None)) | (Incident.resolved_at >= start)
        )
    ).all()
    if not incidents or not contacts:
        return set()
    member_ids = sorted({row.member_id for row in contacts})
    notices: dict[tuple[str, int], datetime | None] = {}
    for chunk in _chunks(member_ids):
        for notice in session.execute(
            select(IncidentNotice.incident_id, IncidentNotice.member_id, IncidentNotice.sent_at).where(
                IncidentNotice.kind == "initial",
                IncidentNotice.incident_id.in_([incident.id for incident in incidents]),
                IncidentNotice.member_id.in_(chunk),
            )
        ):
            notices[(notice.incident_id, notice.member_id)] = notice.sent_at
    windows = [
        rules.IncidentWindow(
            incident.id,
            incident.since,
            incident.resolved_at,
            frozenset((incident.affects or {}).get("reasons", [])),
        )
        for incident in incidents
    ]
    found: set[tuple[int, str, datetime]] = set()
    for row in contacts:
        for window in windows:
            key = (window.incident_id, row.member_id)
            if key in notices and rules.notice_would_have_prevented(
                window, reason=row.reason, contact_at=row.started_at, notice_sent_at=notices[key]
            ):
                found.add((row.member_id, row.reason, row.started_at))
                break
    return found


def _count(values: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = defaultdict(int)
    for value in values:
        counts[value] += 1
    return counts


def _rate_row(key: str, successes: int, n: int) -> dict[str, Any]:
    rate = rules.wilson(successes, n)
    return {
        "key": key,
        "value": rate.value,
        "n": rate.n,
        "successes": successes,
        "ci_low": rate.ci_low,
        "ci_high": rate.ci_high,
    }


# --- emergency card replacement -----------------------------------------------------------------


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
        "ordered_at": _iso(order.ordered_at),
        "due_at": _iso(order.due_at),
        "dispatched_at": _iso(order.dispatched_at),
        "delivered_at": _iso(order.delivered_at),
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
        fingerprint=fingerprint(asdict(order)),
        now=now,
        produce=lambda: _order(session, data=order, now=now),
    )


def _order(session: Session, *, data: CardReplacementInput, now: datetime) -> Outcome:
    member = customers.get_or_raise(session, ref=data.member_ref)
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


def list_member_card_replacements(
    session: Session, *, member_ref: str, now: datetime, open_only: bool = False
) -> list[dict[str, Any]]:
    """A member's emergency card orders, newest first."""
    member = customers.get_or_raise(session, ref=member_ref)
    statement = select(CardReplacement).where(CardReplacement.member_id == member.id)
    if open_only:
        statement = statement.where(CardReplacement.status != "delivered")
    rows = session.scalars(statement.order_by(CardReplacement.ordered_at.desc()).limit(50))
    return [_replacement_body(order, now) for order in rows]


def card_replacement_report(session: Session, *, month: str, now: datetime) -> dict[str, Any]:
    """Share of the orders placed in ``month`` delivered within their promise.

    An order delivered late or still undelivered past its due time is a miss; an undelivered order
    still within its promise is not known yet and is left out (reported as ``open_in_time``).
    """
    try:
        start, end = rules.month_bounds(month)
    except rules.RuleViolation as error:
        raise InvalidInput(str(error), field=error.field)
    rows = session.scalars(
        select(CardReplacement).where(CardReplacement.ordered_at >= start, CardReplacement.ordered_at < end)
    ).all()
    policy = config.current().card
    states = [
        rules.replacement_state(
            ordered_at=o.ordered_at, due_at=o.due_at, delivered_at=o.delivered_at, now=now, policy=policy
        )
        for o in rows
    ]
    on_time = states.count("delivered_on_time")
    missed = states.count("delivered_late") + states.count("breached")
    return {
        "month": month,
        "ordered": len(rows),
        "open_in_time": len(rows) - on_time - missed,
        "within_promise": _rate_row(month, on_time, on_time + missed),
    }


# --- communications log -------------------------------------------------------------------------


@dataclass(frozen=True)
class CommunicationInput:
    id: str
    member_ref: str
    kind: str
    template: str
    channel: str
    language: str
    sent_at: datetime
    subject: str
    summary: str

    def fingerprint(self) -> str:
        return fingerprint_of(self)


def _communication_body(row: Communication, member_ref: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "member_ref": member_ref,
        "kind": row.kind,
        "template": row.template,
        "channel": row.channel,
        "language": row.language,
        "sent_at": _iso(row.sent_at),
        "subject": row.subject,
        "summary": row.summary,
        "source": row.source,
    }


def log_communication(
    session: Session, *, communication: CommunicationInput, source: str, now: datetime
) -> Outcome:
    """Record something the brand sent a member, once per id, so the front line sees it."""
    return run_idempotent(
        session,
        scope="communication",
        key=communication.id,
        fingerprint=communication.fingerprint(),
        now=now,
        produce=lambda: _log_communication(session, data=communication, source=source, now=now),
    )


_COMMUNICATIONS: Table = Communication.__table__  # type: ignore[assignment]
_INSERT_COMMUNICATION = insert(_COMMUNICATIONS)  # Core: cheaper than the ORM-enabled insert


def record_communication(
    session: Session, *, member_id: int, communication: CommunicationInput, source: str, now: datetime
) -> None:
    """Record a message the platform itself sends, inside the use case that sends it.

    For callers that hold the member's id and whose own write is already idempotent (an offer made
    during an earn is replayed with the earn): one ``INSERT``, no member lookup and no key of its
    own. The id is deterministic, so the row can never be written twice.
    """
    session.execute(
        _INSERT_COMMUNICATION,
        {
            "id": communication.id,
            "member_id": member_id,
            "kind": communication.kind,
            "template": communication.template,
            "channel": communication.channel,
            "language": communication.language,
            "sent_at": _utc(communication.sent_at),
            "subject": communication.subject,
            "summary": communication.summary,
            "source": source,
            "created_at": now,
        },
    )


def _log_communication(session: Session, *, data: CommunicationInput, source: str, now: datetime) -> Outcome:
    member = customers.get_for_body_or_raise(session, ref=data.member_ref, field="member_ref")
    if session.get(Communication, data.id) is not None:  # written by the platform itself, keyless
        raise IdempotencyConflict(f"communication {data.id!r} is already recorded", field="id")
    row = Communication(
        id=data.id,
        member_id=member.id,
        kind=data.kind,
        template=data.template,
        channel=data.channel,
        language=data.language,
        sent_at=_utc(data.sent_at),
        subject=data.subject,
        summary=data.summary,
        source=source,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return Outcome(201, _communication_body(row, member.ref))


def list_member_communications(session: Session, *, member_ref: str, limit: int = 50) -> dict[str, Any]:
    """What was sent to a member, newest first."""
    member = customers.get_or_raise(session, ref=member_ref)
    rows = session.scalars(
        select(Communication)
        .where(Communication.member_id == member.id)
        .order_by(Communication.sent_at.desc(), Communication.id.desc())
        .limit(limit)
    )
    return {"member_ref": member.ref, "items": [_communication_body(row, member.ref) for row in rows]}


# --- contact preference -------------------------------------------------------------------------


def _preference_body(member: Member, row: ContactPreference | None) -> dict[str, Any]:
    mode = row.mode if row else None
    return {
        "member_ref": member.ref,
        "mode": mode,
        "preferred_channel": row.preferred_channel if row else None,
        "may_send_marketing": rules.may_send_marketing(mode),
        "updated_at": _iso(row.updated_at) if row else None,
        "updated_by": row.updated_by if row else None,
    }


def set_contact_preference(
    session: Session, *, member_ref: str, mode: str, preferred_channel: str | None, by: str, now: datetime
) -> dict[str, Any]:
    """Set how a member wants to be approached (PUT: idempotent by nature)."""
    if mode not in rules.PREFERENCE_MODES:
        raise InvalidInput(f"mode must be one of {', '.join(rules.PREFERENCE_MODES)}", field="mode")
    member = customers.get_or_raise(session, ref=member_ref)
    row = session.get(ContactPreference, member.id, with_for_update=True)
    changed = row is None or (row.mode, row.preferred_channel) != (mode, preferred_channel)
    if row is None:
        row = ContactPreference(member_id=member.id)
        session.add(row)
    if changed:
        row.mode, row.preferred_channel, row.updated_at, row.updated_by = mode, preferred_channel, now, by
        session.flush()
        outbox.emit(
            session,
            type="contact_preference.changed",
            payload={"member_ref": member.ref, "mode": mode, "preferred_channel": preferred_channel},
            now=now,
        )
    return _preference_body(member, row)


def get_contact_preference(session: Session, *, member_ref: str) -> dict[str, Any]:
    """How a member wants to be approached (``mode`` None when never stated)."""
    member = customers.get_or_raise(session, ref=member_ref)
    return _preference_body(member, session.get(ContactPreference, member.id))


_PREFERENCE_MODE = select(ContactPreference.mode).where(ContactPreference.member_id == bindparam("p_member"))


def may_send_marketing(session: Session, *, member_id: int) -> bool:
    """Whether outbound marketing may reach this member (never one who asked to be left alone).
    Asked on the decision of every earning payment while offers are live: one prepared query."""
    mode = session.execute(_PREFERENCE_MODE, {"p_member": member_id}).scalar_one_or_none()
    return rules.may_send_marketing(mode)


# --- benefits -----------------------------------------------------------------------------------


def _benefit_labels(code: str) -> tuple[str, str]:
    benefit = config.current().benefits.catalogue.get(code)
    return (benefit.label_fr, benefit.label_en) if benefit else (code, code)


def _entitled_or_raise(product: str, benefit: str, *, field: str) -> rules.Benefit:
    try:
        return rules.check_entitled(config.current().benefits, product=product, benefit=benefit, field=field)
    except rules.RuleViolation as error:
        known = benefit in config.current().benefits.catalogue
        raise (BenefitNotEntitled if known else UnknownBenefit)(str(error), field=error.field)


def list_benefit_catalogue() -> list[dict[str, Any]]:
    """The configured benefits with French and English labels and the products entitled to each."""
    return [
        {"code": b.code, "label_fr": b.label_fr, "label_en": b.label_en, "products": sorted(b.products)}
        for b in config.current().benefits.catalogue.values()
    ]


@dataclass(frozen=True)
class BenefitUsageInput:
    """A member used a benefit, as the system that served it reports it."""

    id: str
    member_ref: str
    benefit: str
    used_at: datetime
    source: str | None = None

    def fingerprint(self) -> str:
        return fingerprint_of(self)


def _usage_body(row: BenefitUsage, member_ref: str) -> dict[str, Any]:
    label_fr, label_en = _benefit_labels(row.benefit)
    return {
        "id": row.id,
        "member_ref": member_ref,
        "benefit": row.benefit,
        "label_fr": label_fr,
        "label_en": label_en,
        "used_at": _iso(row.used_at),
        "source": row.source,
    }


def record_benefit_usage(session: Session, *, usage: BenefitUsageInput, by: str, now: datetime) -> Outcome:
    """Record that a member used a benefit their card is entitled to, once per usage id.

    ``source`` defaults to the caller's key name. Which explanation the usage is credited to is
    not stored: the attribution report computes it, so an explanation logged late still counts.
    """
    return run_idempotent(
        session,
        scope="benefit_usage",
        key=usage.id,
        fingerprint=usage.fingerprint(),
        now=now,
        produce=lambda: _record_benefit_usage(session, data=usage, by=by, now=now),
    )


def _record_benefit_usage(session: Session, *, data: BenefitUsageInput, by: str, now: datetime) -> Outcome:
    member = customers.get_or_raise(session, ref=data.member_ref)
    _entitled_or_raise(member.product, data.benefit, field="benefit")
    used_at = _utc(data.used_at)
    if used_at > now:
        raise InvalidInput("used_at must not be in the future", field="used_at")
    row = BenefitUsage(
        id=data.id,
        member_id=member.id,
        benefit=data.benefit,
        used_at=used_at,
        source=data.source or by,
        created_at=now,
    )
    session.add(row)
    session.flush()
    body = _usage_body(row, member.ref)
    outbox.emit(session, type="benefit.used", payload=body, now=now)
    return Outcome(201, body)


def explain_benefits(
    session: Session, *, contact_id: str, benefits: Sequence[str], now: datetime
) -> dict[str, Any]:
    """Record that the contact's agent explained these benefits; explaining one again changes nothing.

    Every benefit must be one the member's card is entitled to (else 422 on ``benefits``). The
    contact row is locked so two concurrent calls for one contact do not both insert a benefit.
    """
    contact = session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        raise UnknownContact(f"no contact {contact_id!r}", field="id")
    member = customers.get_by_id(session, member_id=contact.member_id)
    assert member is not None
    wanted = list(dict.fromkeys(benefits))
    for code in wanted:
        _entitled_or_raise(member.product, code, field="benefits")
    existing = set(
        session.scalars(select(BenefitExplanation.benefit).where(BenefitExplanation.contact_id == contact.id))
    )
    added = [code for code in wanted if code not in existing]
    for code in added:
        session.add(
            BenefitExplanation(
                contact_id=contact.id,
                benefit=code,
                member_id=member.id,
                agent=contact.agent,
                explained_at=contact.started_at,
                created_at=now,
            )
        )
    body = {
        "contact_id": contact.id,
        "member_ref": member.ref,
        "agent": contact.agent,
        "explained_at": _iso(contact.started_at),
        "benefits": sorted(existing | set(added)),
    }
    if added:
        session.flush()
        outbox.emit(session, type="benefit.explained", payload={**body, "added": added}, now=now)
    return body


def list_member_benefits(session: Session, *, member_ref: str, now: datetime) -> dict[str, Any]:
    """The benefits the member's card is entitled to, when each was last used and last explained,
    and whether it went unused for the last twelve months (so the agent can tell the customer)."""
    member = customers.get_or_raise(session, ref=member_ref)
    last_used: dict[str, datetime] = {
        benefit: moment
        for benefit, moment in session.execute(
            select(BenefitUsage.benefit, func.max(BenefitUsage.used_at))
            .where(BenefitUsage.member_id == member.id)
            .group_by(BenefitUsage.benefit)
        )
    }
    last_explained: dict[str, datetime] = {
        benefit: moment
        for benefit, moment in session.execute(
            select(BenefitExplanation.benefit, func.max(BenefitExplanation.explained_at))
            .where(BenefitExplanation.member_id == member.id)
            .group_by(BenefitExplanation.benefit)
        )
    }
    items = []
    for benefit in rules.entitled_benefits(config.current().benefits, product=member.product):
        used = last_used.get(benefit.code)
        used = _utc(used) if used is not None else None  # max() comes back naive on SQLite
        explained = last_explained.get(benefit.code)
        items.append(
            {
                "code": benefit.code,
                "label_fr": benefit.label_fr,
                "label_en": benefit.label_en,
                "last_used_at": _iso(used),
                "last_explained_at": _iso(_utc(explained)) if explained is not None else None,
                "unused_12m": rules.unused_for_12_months(used, now=now),
            }
        )
    return {"member_ref": member.ref, "product": member.product, "items": items}


_COUNT_BENEFIT_USAGES = select(func.count()).where(
    BenefitUsage.member_id == bindparam("p_member"), BenefitUsage.used_at >= bindparam("p_since")
)


def count_benefit_usages(session: Session, *, member_id: int, since: datetime) -> int:
    """How many benefit usages a member recorded since a moment (a behavioural feature of offers,
    read on the decision of every earning payment: one prepared query)."""
    return int(session.execute(_COUNT_BENEFIT_USAGES, {"p_member": member_id, "p_since": since}).scalar_one())


def benefit_usage_events(session: Session, *, since: datetime, until: datetime) -> list[tuple[int, datetime]]:
    """(member id, used at) of every benefit usage in ``[since, until)``: the offers model's training
    set counts them per member and reference date, as the decision counts them one member at a time."""
    rows = session.execute(
        select(BenefitUsage.member_id, BenefitUsage.used_at).where(
            BenefitUsage.used_at >= since, BenefitUsage.used_at < until
        )
    )
    return [(int(member_id), used_at) for member_id, used_at in rows]


def benefit_usages() -> Subquery:
    """A selectable of every benefit usage's ``member_id``, ``benefit`` and ``used_at``, for reports
    above the desk that count usages in SQL."""
    return select(BenefitUsage.member_id, BenefitUsage.benefit, BenefitUsage.used_at).subquery(
        "benefit_usages"
    )


def list_unused_benefits(session: Session, *, member_ref: str, now: datetime) -> list[dict[str, Any]]:
    """The entitled benefits the member has not used in the last twelve months."""
    return [
        b for b in list_member_benefits(session, member_ref=member_ref, now=now)["items"] if b["unused_12m"]
    ]


def benefit_attribution_report(session: Session, *, month: str, now: datetime) -> dict[str, Any]:
    """Of the benefits explained at contacts started in ``month``, per agent and benefit: how many
    the member then used within the attribution window, with a Wilson 95% interval.

    A usage is credited to the latest explanation of that benefit to that member at or before it
    and no older than the window (last touch, ``rules.attribute_usage``); an explanation counts as
    used when at least one usage is credited to it. An explanation with nothing credited whose
    window is still open is ``pending`` and left out of the rate.
    """
    try:
        start, end = rules.month_bounds(month)
    except rules.RuleViolation as error:
        raise InvalidInput(str(error), field=error.field)
    policy = config.current().benefits
    window = policy.attribution_window
    explained = session.execute(
        select(
            BenefitExplanation.contact_id,
            BenefitExplanation.benefit,
            BenefitExplanation.member_id,
            BenefitExplanation.agent,
            BenefitExplanation.explained_at,
        ).where(BenefitExplanation.explained_at >= start, BenefitExplanation.explained_at < end)
    ).all()
    # Later explanations (up to a window past the month) may take the credit of a usage.
    touches: dict[tuple[int, str], list[rules.Explanation]] = defaultdict(list)
    usages: dict[tuple[int, str], list[datetime]] = defaultdict(list)
    member_ids = sorted({row.member_id for row in explained})
    for chunk in _chunks(member_ids):
        for touch in session.execute(
            select(
                BenefitExplanation.member_id,
                BenefitExplanation.benefit,
                BenefitExplanation.contact_id,
                BenefitExplanation.agent,
                BenefitExplanation.explained_at,
            ).where(
                BenefitExplanation.member_id.in_(chunk),
                BenefitExplanation.explained_at >= start,
                BenefitExplanation.explained_at < end + window,
            )
        ):
            touches[(touch.member_id, touch.benefit)].append(
                rules.Explanation(touch.contact_id, touch.agent, _utc(touch.explained_at))
            )
        for member_id, benefit, used_at in session.execute(
            select(BenefitUsage.member_id, BenefitUsage.benefit, BenefitUsage.used_at).where(
                BenefitUsage.member_id.in_(chunk),
                BenefitUsage.used_at >= start,
                BenefitUsage.used_at <= end + window,
            )
        ):
            usages[(member_id, benefit)].append(_utc(used_at))
    credited: set[tuple[str, str]] = set()
    for key, times in usages.items():
        for used_at in times:
            winner = rules.attribute_usage(used_at, touches.get(key, ()), window=window)
            if winner is not None:
                credited.add((winner.contact_id, key[1]))
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # explained, used, pending
    for row in explained:
        outcome = rules.explanation_outcome(
            rules.Explanation(row.contact_id, row.agent, _utc(row.explained_at)),
            credited=(row.contact_id, row.benefit) in credited,
            window=window,
            now=now,
        )
        tally = counts[(row.agent, row.benefit)]
        tally[0] += 1
        tally[1] += int(outcome is True)
        tally[2] += int(outcome is None)
    rows: list[dict[str, Any]] = []
    for (agent, benefit), (n_explained, n_used, n_pending) in sorted(counts.items()):
        label_fr, label_en = _benefit_labels(benefit)
        rows.append(
            {
                "agent": agent,
                "benefit": benefit,
                "label_fr": label_fr,
                "label_en": label_en,
                "explained": n_explained,
                "used": n_used,
                "pending": n_pending,
                "rate": _rate_row(f"{agent}/{benefit}", n_used, n_explained - n_pending),
            }
        )
    used_all = sum(r["used"] for r in rows)
    pending_all = sum(r["pending"] for r in rows)
    return {
        "month": month,
        "window_days": window.days,
        "explained": len(explained),
        "used": used_all,
        "pending": pending_all,
        "overall": _rate_row("all", used_all, len(explained) - pending_all),
        "rows": rows,
    }


# --- channel routing ----------------------------------------------------------------------------


def channel_recommendation(
    session: Session, *, member_ref: str, reason: str, now: datetime
) -> dict[str, Any]:
    """Which channel solves ``reason`` fastest for this member, from measured resolution times.

    The cases of that reason whose first contact started in the routing window are grouped by the
    routing channel of their first contact (an outbound phone call is a call-back). A channel's
    time is the median hours from the first contact's start to the case's resolution over its
    resolved cases; its FCR share is computed as in the FCR report (undetermined cases left out).
    """
    if reason not in config.current().reasons:
        raise UnknownReason(f"unknown contact reason {reason!r}; see GET /v1/contact-reasons", field="reason")
    member = customers.get_or_raise(session, ref=member_ref)
    preference = session.get(ContactPreference, member.id)
    desk = config.current()
    policy, window = desk.routing, desk.fcr_window
    since = now - policy.window
    cases = list(
        session.execute(
            select(
                Case.id,
                Case.member_id,
                Case.status,
                Case.contact_count,
                Case.resolved_at,
                Contact.reason,
                Contact.channel,
                Contact.direction,
                Contact.outcome,
                Contact.started_at,
            )
            .join(Contact, Contact.id == Case.first_contact_id)
            .where(Contact.reason == reason, Contact.started_at >= since, Contact.started_at <= now)
        )
    )
    repeats = _same_reason_contacts(session, cases, window=window)
    durations: dict[str, list[timedelta]] = defaultdict(list)
    successes: dict[str, int] = defaultdict(int)
    counted: dict[str, int] = defaultdict(int)
    for case in cases:
        channel = rules.routing_channel(case.channel, case.direction)
        if case.status == "resolved" and case.resolved_at is not None:
            durations[channel].append(case.resolved_at - case.started_at)
        facts = rules.CaseFacts(
            status=case.status,
            contacts=case.contact_count,
            first_outcome=case.outcome,
            first_started_at=case.started_at,
            resolved_at=case.resolved_at,
        )
        others = [at for at, case_id in repeats.get((case.member_id, case.reason), ()) if case_id != case.id]
        verdict = rules.first_contact_resolved(facts, same_reason_contacts=others, window=window, now=now)
        if verdict is not None:
            counted[channel] += 1
            successes[channel] += int(verdict)
    figures = [
        rules.ChannelFigures(
            channel=channel,
            median_hours=rules.median_hours(durations[channel]),
            resolved=len(durations[channel]),
            fcr=rules.wilson(successes[channel], counted[channel]),
        )
        for channel in policy.default_order
    ]
    mode = preference.mode if preference else None
    preferred = preference.preferred_channel if preference else None
    choice = rules.recommend_channel(figures, policy=policy, mode=mode, preferred=preferred)
    return {
        "member_ref": member.ref,
        "reason": reason,
        "window_days": policy.window.days,
        "min_cases": policy.min_cases,
        "mode": mode,
        "preferred_channel": preferred,
        "recommended": choice.channel,
        "basis": choice.basis,
        "explanation": choice.reason,
        "channels": [
            {
                "channel": f.channel,
                "median_hours": None if f.median_hours is None else round(f.median_hours, 2),
                "resolved": f.resolved,
                "enough_data": f.resolved >= policy.min_cases,
                "fcr": _rate_row(f.channel, successes[f.channel], counted[f.channel]),
            }
            for f in figures
        ],
    }


# --- call-back booking --------------------------------------------------------------------------


@dataclass(frozen=True)
class CallbackInput:
    id: str
    member_ref: str
    reason: str
    scheduled_for: datetime
    phone: str


def _callback_body(row: Callback) -> dict[str, Any]:
    return {
        "id": row.id,
        "member_ref": row.member_ref,
        "reason": row.reason,
        "phone": row.phone,
        "status": row.status,
        "scheduled_for": _iso(row.scheduled_for),
        "booked_by": row.booked_by,
        "booked_at": _iso(row.booked_at),
        "completed_at": _iso(row.completed_at),
        "contact_id": row.contact_id,
    }


def book_callback(session: Session, *, callback: CallbackInput, by: str, now: datetime) -> Outcome:
    """Book a call-back for a member, once per id; it must be scheduled in the future."""
    data = asdict(callback)
    data["scheduled_for"] = _iso(_utc(callback.scheduled_for))
    return run_idempotent(
        session,
        scope="callback",
        key=callback.id,
        fingerprint=fingerprint(data),
        now=now,
        produce=lambda: _book_callback(session, data=callback, by=by, now=now),
    )


def _book_callback(session: Session, *, data: CallbackInput, by: str, now: datetime) -> Outcome:
    if data.reason not in config.current().reasons:
        raise UnknownReason(
            f"unknown contact reason {data.reason!r}; see GET /v1/contact-reasons", field="reason"
        )
    scheduled_for = _utc(data.scheduled_for)
    if scheduled_for <= now:
        raise InvalidInput("scheduled_for must be in the future", field="scheduled_for")
    member = customers.get_or_raise(session, ref=data.member_ref)
    row = Callback(
        id=data.id,
        member_id=member.id,
        member_ref=member.ref,
        reason=data.reason,
        phone=data.phone.strip(),
        status="scheduled",
        scheduled_for=scheduled_for,
        booked_by=by,
        booked_at=now,
    )
    session.add(row)
    session.flush()
    body = _callback_body(row)
    outbox.emit(session, type="callback.booked", payload=body, now=now)
    return Outcome(201, body)


def list_callbacks(
    session: Session, *, due_before: datetime | None, status: str, limit: int = 500
) -> list[dict[str, Any]]:
    """Call-backs in a status, soonest first, optionally only those due before a time."""
    statement = select(Callback).where(Callback.status == status)
    if due_before is not None:
        statement = statement.where(Callback.scheduled_for < _utc(due_before))
    rows = session.scalars(statement.order_by(Callback.scheduled_for, Callback.id).limit(limit))
    return [_callback_body(row) for row in rows]


def get_callback(session: Session, *, callback_id: str) -> dict[str, Any]:
    row = session.get(Callback, callback_id)
    if row is None:
        raise UnknownCallback(f"no call-back {callback_id!r}", field="id")
    return _callback_body(row)


def complete_callback(
    session: Session, *, callback_id: str, contact_id: str, now: datetime
) -> dict[str, Any]:
    """Mark a call-back made by the member's contact ``contact_id``; the same call again changes
    nothing, another contact on a completed call-back is a conflict."""
    row = session.get(Callback, callback_id, with_for_update=True)
    if row is None:
        raise UnknownCallback(f"no call-back {callback_id!r}", field="id")
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise UnknownContactInBody(f"no contact {contact_id!r}", field="contact_id")
    if contact.member_id != row.member_id:
        raise ContactOfAnotherMember("the contact is another member's", field="contact_id")
    if row.status == "completed":
        if row.contact_id != contact_id:
            raise CallbackAlreadyCompleted(
                f"the call-back was completed by contact {row.contact_id!r}", field="contact_id"
            )
        return _callback_body(row)
    row.status, row.contact_id, row.completed_at = "completed", contact_id, now
    session.flush()
    body = _callback_body(row)
    outbox.emit(session, type="callback.completed", payload=body, now=now)
    return body
