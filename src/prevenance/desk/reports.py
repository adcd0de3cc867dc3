"""The desk's monthly reports: first-contact resolution, contact reasons, emergency card
replacements, benefit explanations' attribution. Rates carry a Wilson 95% interval."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Interval, String, bindparam, func, select, type_coerce
from sqlalchemy import case as sql_case
from sqlalchemy.orm import Session, aliased

from prevenance.common.base import UtcDateTime
from prevenance.common.ids import as_utc
from prevenance.common.inputs import check_month
from prevenance.common.periods import month_bounds, previous_month
from prevenance.common.problems import InvalidInput, as_invalid_input
from prevenance.desk import config, rules
from prevenance.desk.benefits import benefit_labels
from prevenance.desk.repository import chunks
from prevenance.desk.tables import (
    BenefitExplanation,
    BenefitUsage,
    CardReplacement,
    Case,
    Contact,
    Incident,
    IncidentNotice,
)


def fcr_report(session: Session, *, by: str, month: str | None, now: datetime) -> dict[str, Any]:
    """First-contact resolution of the cases opened in ``month`` (or ever), grouped by ``by``.

    Cases are grouped by their first contact's agent, team, channel and reason, the member's
    country when the case opened, or the month it opened. A case whose repeat window is still open
    is reported as undetermined, not counted either way.

    The database counts (one row per key), never one row per case: each case's verdict is
    ``rules.first_contact_resolved`` written in SQL (``_first_contact_verdict``), held equal to it by
    a randomized test on both databases.
    """
    if by not in rules.FCR_DIMENSIONS:
        raise InvalidInput(f"by must be one of {', '.join(rules.FCR_DIMENSIONS)}", field="by")
    window = config.current().fcr_window
    first = aliased(Contact)
    verdict = _first_contact_verdict(session, first, window=window, now=now)
    key = _month_of(session, first.started_at) if by == "month" else _FCR_KEYS[by](first)
    statement = (
        select(
            key,
            func.count(verdict),  # cases with a verdict (a NULL verdict is undetermined)
            func.coalesce(func.sum(verdict), 0),
            func.count(),
        )
        .select_from(Case)
        .join(first, first.id == Case.first_contact_id)
        .group_by(key)
    )
    if month is not None:
        with as_invalid_input():
            start, end = month_bounds(check_month(month))
        statement = statement.where(Case.opened_at >= start, Case.opened_at < end)
    successes: dict[str, int] = {}
    counted: dict[str, int] = {}
    undetermined = 0
    for value, decided, succeeded, cases in session.execute(statement):
        undetermined += int(cases) - int(decided)
        if decided:
            counted[str(value)] = int(decided)
            successes[str(value)] = int(succeeded)
    rows = [rate_row(key, successes[key], counted[key]) for key in sorted(counted)]
    return {
        "by": by,
        "month": month,
        "window_days": window.days,
        "undetermined": undetermined,
        "overall": rate_row("all", sum(successes.values()), sum(counted.values())),
        "rows": rows,
    }


_FCR_KEYS: dict[str, Callable[[Any], Any]] = {
    "agent": lambda first: first.agent,
    "team": lambda first: first.team,
    "channel": lambda first: first.channel,
    "reason": lambda first: first.reason,
    "country": lambda _first: Case.country,
}


def _first_contact_verdict(session: Session, first: Any, *, window: timedelta, now: datetime) -> Any:
    """``rules.first_contact_resolved`` of a ``Case`` row joined with its ``first`` contact, in SQL:
    0 (not resolved at the first contact), 1 (resolved), NULL (its window is still open)."""
    timeline = _Timeline(session)
    deadline = timeline.plus(func.coalesce(Case.resolved_at, first.started_at), window)
    came_back = _came_back(
        timeline,
        member_id=Case.member_id,
        reason=first.reason,
        after=first.started_at,
        until=deadline,
        other_than_case=Case.id,
    )
    one_contact_resolved = (
        (Case.contact_count == 1) & (first.outcome == "resolved") & (Case.status == "resolved")
    )
    return sql_case(
        (~one_contact_resolved, 0),
        (came_back, 0),
        # ``now`` keeps its type, so SQLite gets it as the stored text (microseconds included).
        (bindparam("p_now", now, type_=UtcDateTime()) < deadline, None),
        else_=1,
    )


class _Timeline:
    """Times in SQL as each database stores them, so an instant plus a window compares exactly as
    in Python: PostgreSQL's timestamps and intervals; on SQLite the text ``YYYY-MM-DD
    HH:MM:SS.ffffff`` SQLAlchemy writes, a later instant written the same way (whole seconds added
    with ``strftime``, the fraction kept), so a bound exactly one window later is included."""

    def __init__(self, session: Session) -> None:
        self.sqlite = session.get_bind().dialect.name == "sqlite"

    def at(self, moment: Any) -> Any:
        return type_coerce(moment, String()) if self.sqlite else moment

    def plus(self, moment: Any, window: timedelta) -> Any:
        if not self.sqlite:
            return moment + bindparam(None, window, type_=Interval())
        seconds = int(window.total_seconds())
        assert seconds == window.total_seconds(), "the window is whole seconds (days, in the config)"
        return func.strftime("%Y-%m-%d %H:%M:%S", moment, f"+{seconds} seconds").concat(
            func.substr(moment, 20)
        )


def _month_of(session: Session, moment: Any) -> Any:
    """``YYYY-MM`` of a stored instant, in UTC (``common.periods.month_of``)."""
    if session.get_bind().dialect.name == "sqlite":
        return func.substr(moment, 1, 7)
    return func.to_char(func.timezone("UTC", moment), "YYYY-MM")


def reason_report(session: Session, *, month: str) -> dict[str, Any]:
    """Why customers contact us in ``month``: volume by reason, channel and country, against the
    previous month, with the repeat-contact rate, the reasons that grow and the avoidable share.

    A contact is a repeat when the member contacted again on the same reason within the FCR
    window (looked for up to a window past the month's end). A contact is avoidable when its
    reason's answer is available in self-care (``self_care`` in the taxonomy), or when a proactive
    notice would have prevented it: the member was affected by an incident active at the time, on
    a reason the incident explains, and had not yet been sent its notice.
    """
    with as_invalid_input():
        start, end = month_bounds(check_month(month))
        previous = previous_month(month)
    previous_start, _ = month_bounds(previous)
    settings = config.current()
    window = settings.fcr_window
    in_month = (Contact.started_at >= start) & (Contact.started_at < end)
    # A repeat (``rules.repeated``): the member contacted again on the same reason after this
    # contact, within the window; an index probe of (member, reason, started_at) per contact.
    timeline = _Timeline(session)
    repeat = _came_back(
        timeline,
        member_id=Contact.member_id,
        reason=Contact.reason,
        after=Contact.started_at,
        until=timeline.plus(Contact.started_at, window),
    )
    # Counted by the database: one row per (reason, channel, country) with its contacts and repeats,
    # one per reason of the month before; never one row per contact (a month is some 100,000).
    cells = session.execute(
        select(
            Contact.reason,
            Contact.channel,
            Case.country,
            func.count(),
            func.coalesce(func.sum(sql_case((repeat, 1), else_=0)), 0),
        )
        .join(Case, Case.id == Contact.case_id)
        .where(in_month)
        .group_by(Contact.reason, Contact.channel, Case.country)
    ).all()
    before: dict[str, int] = {
        reason: int(n)
        for reason, n in session.execute(
            select(Contact.reason, func.count())
            .join(Case, Case.id == Contact.case_id)
            .where(Contact.started_at >= previous_start, Contact.started_at < start)
            .group_by(Contact.reason)
        )
    }
    unwarned = _unwarned_incident_contacts(session, start=start, end=end)
    days, previous_days = (end - start).days, (start - previous_start).days
    grouped: dict[str, list[Any]] = defaultdict(list)
    for cell in cells:
        grouped[cell[0]].append(cell)
    by_channel: dict[str, int] = defaultdict(int)
    by_country: dict[str, int] = defaultdict(int)
    reasons: list[dict[str, Any]] = []
    for code, items in grouped.items():
        taxon = settings.reasons.get(code)
        contacts = sum(int(n) for *_, n, _ in items)
        repeated_n = sum(int(repeats) for *_, repeats in items)
        channels: dict[str, int] = defaultdict(int)
        countries: dict[str, int] = defaultdict(int)
        for _, channel, country, n, _ in items:
            channels[channel] += int(n)
            countries[country] += int(n)
            by_channel[channel] += int(n)
            by_country[country] += int(n)
        self_care = bool(taxon and taxon.self_care)
        proactive_n = unwarned.get(code, 0)
        reasons.append(
            {
                "reason": code,
                "label_fr": taxon.label_fr if taxon else code,
                "label_en": taxon.label_en if taxon else code,
                "contacts": contacts,
                "previous": before.get(code, 0),
                "growth_z": round(
                    rules.growth_z(
                        contacts, before.get(code, 0), current_days=days, previous_days=previous_days
                    ),
                    3,
                ),
                "growing": rules.is_growing(
                    contacts, before.get(code, 0), current_days=days, previous_days=previous_days
                ),
                "avoidable": self_care,
                "avoidable_contacts": contacts if self_care else proactive_n,
                "avoidable_by_notice": proactive_n,
                "repeat": rate_row(code, repeated_n, contacts),
                "channels": dict(sorted(channels.items())),
                "countries": dict(sorted(countries.items())),
            }
        )
    reasons.sort(key=lambda r: (-r["contacts"], r["reason"]))
    month_contacts = sum(r["contacts"] for r in reasons)
    self_care_n = sum(r["contacts"] for r in reasons if r["avoidable"])
    avoidable = sum(r["avoidable_contacts"] for r in reasons)
    by_notice = sum(r["avoidable_by_notice"] for r in reasons)
    all_repeats = sum(r["repeat"]["successes"] for r in reasons)
    return {
        "month": month,
        "previous_month": previous,
        "window_days": window.days,
        "contacts": month_contacts,
        "previous_contacts": sum(before.values()),
        "repeat": rate_row("all", all_repeats, month_contacts),
        "avoidable": rate_row("all", avoidable, month_contacts),
        "avoidable_self_care": rate_row("self_care", self_care_n, month_contacts),
        "avoidable_by_notice": rate_row("proactive_notice", by_notice, month_contacts),
        "by_channel": dict(sorted(by_channel.items())),
        "by_country": dict(sorted(by_country.items())),
        "growing": [r["reason"] for r in reasons if r["growing"]],
        "reasons": reasons,
    }


def _came_back(
    timeline: _Timeline, *, member_id: Any, reason: Any, after: Any, until: Any, other_than_case: Any = None
) -> Any:
    """``EXISTS`` a contact of ``member_id`` on ``reason`` strictly after ``after`` and up to
    ``until`` included (optionally in another case than ``other_than_case``): the member came back,
    so the contact before did not settle it. The one definition of a repeat for both reports."""
    later = aliased(Contact)
    conditions = [
        later.member_id == member_id,
        later.reason == reason,
        timeline.at(later.started_at) > timeline.at(after),
        timeline.at(later.started_at) <= until,
    ]
    if other_than_case is not None:
        conditions.append(later.case_id != other_than_case)
    return select(later.id).where(*conditions).exists()


def _unwarned_incident_contacts(session: Session, *, start: datetime, end: datetime) -> dict[str, int]:
    """Per reason, the month's contacts a proactive notice would have prevented: made while an
    incident affecting the member was active, on a reason it explains (none listed: any), before
    the member's initial notice was sent (or when it never was). Only the contacts of members owed
    an initial notice of an incident active in the month are read, with those notices."""
    incidents = session.execute(
        select(Incident.id, Incident.since, Incident.resolved_at, Incident.affects).where(
            Incident.since < end, (Incident.resolved_at.is_(None)) | (Incident.resolved_at >= start)
        )
    ).all()
    if not incidents:
        return {}
    # Each contact of the month with the initial notices its member was owed for these incidents
    # (a contact of a member owed none cannot count): one row per (contact, notice).
    owed = session.execute(
        select(
            Contact.id, Contact.reason, Contact.started_at, IncidentNotice.incident_id, IncidentNotice.sent_at
        )
        .join(IncidentNotice, IncidentNotice.member_id == Contact.member_id)
        .where(
            Contact.started_at >= start,
            Contact.started_at < end,
            IncidentNotice.kind == "initial",
            IncidentNotice.incident_id.in_([incident.id for incident in incidents]),
        )
    ).all()
    notices: dict[str, dict[str, datetime | None]] = defaultdict(dict)  # contact → incident → sent
    reason_and_start: dict[str, tuple[str, datetime]] = {}
    for contact_id, reason, started_at, incident_id, sent_at in owed:
        notices[contact_id][incident_id] = sent_at
        reason_and_start[contact_id] = (reason, started_at)
    windows = [
        rules.IncidentWindow(
            incident.id,
            incident.since,
            incident.resolved_at,
            frozenset((incident.affects or {}).get("reasons", [])),
        )
        for incident in incidents
    ]
    found: dict[str, int] = defaultdict(int)
    for contact_id, owed_notices in notices.items():
        reason, started_at = reason_and_start[contact_id]
        for window in windows:
            if window.incident_id in owed_notices and rules.notice_would_have_prevented(
                window, reason=reason, contact_at=started_at, notice_sent_at=owed_notices[window.incident_id]
            ):
                found[reason] += 1
                break
    return found


def first_contact_verdict(
    case: Any,
    repeats: Mapping[tuple[int, str], Sequence[tuple[datetime, str]]],
    *,
    window: timedelta,
    now: datetime,
) -> bool | None:
    """Whether a case row (its status, contact count and resolution, its first contact's outcome and
    start) counts as resolved at the first contact, given the member's contacts on the same reason
    (``same_reason_contacts``); None while that cannot be known yet."""
    facts = rules.CaseFacts(
        status=case.status,
        contacts=case.contact_count,
        first_outcome=case.outcome,
        first_started_at=case.started_at,
        resolved_at=case.resolved_at,
    )
    others = [at for at, case_id in repeats.get((case.member_id, case.reason), ()) if case_id != case.id]
    return rules.first_contact_resolved(facts, same_reason_contacts=others, window=window, now=now)


def rate_row(key: str, successes: int, n: int) -> dict[str, Any]:
    """One row of a rate report: ``successes`` out of ``n`` with its Wilson 95% interval."""
    rate = rules.wilson(successes, n)
    return {
        "key": key,
        "value": rate.value,
        "n": rate.n,
        "successes": successes,
        "ci_low": rate.ci_low,
        "ci_high": rate.ci_high,
    }


def card_replacement_report(session: Session, *, month: str, now: datetime) -> dict[str, Any]:
    """Share of the orders placed in ``month`` delivered within their promise.

    An order delivered late or still undelivered past its due time is a miss; an undelivered order
    still within its promise is not known yet and is left out (reported as ``open_in_time``).
    """
    with as_invalid_input():
        start, end = month_bounds(check_month(month))
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
        "within_promise": rate_row(month, on_time, on_time + missed),
    }


def benefit_attribution_report(session: Session, *, month: str, now: datetime) -> dict[str, Any]:
    """Of the benefits explained at contacts started in ``month``, per agent and benefit: how many
    the member then used within the attribution window, with a Wilson 95% interval.

    A usage is credited to the latest explanation of that benefit to that member at or before it
    and no older than the window (last touch, ``rules.attribute_usage``); an explanation counts as
    used when at least one usage is credited to it. An explanation with nothing credited whose
    window is still open is ``pending`` and left out of the rate.
    """
    with as_invalid_input():
        start, end = month_bounds(check_month(month))
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
    for chunk in chunks(member_ids):
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
                rules.Explanation(touch.contact_id, touch.agent, as_utc(touch.explained_at))
            )
        for member_id, benefit, used_at in session.execute(
            select(BenefitUsage.member_id, BenefitUsage.benefit, BenefitUsage.used_at).where(
                BenefitUsage.member_id.in_(chunk),
                BenefitUsage.used_at >= start,
                BenefitUsage.used_at <= end + window,
            )
        ):
            usages[(member_id, benefit)].append(as_utc(used_at))
    credited: set[tuple[str, str]] = set()
    for key, times in usages.items():
        for used_at in times:
            winner = rules.attribute_usage(used_at, touches.get(key, ()), window=window)
            if winner is not None:
                credited.add((winner.contact_id, key[1]))
    counts: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0, 0])  # explained, used, pending
    for row in explained:
        outcome = rules.explanation_outcome(
            rules.Explanation(row.contact_id, row.agent, as_utc(row.explained_at)),
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
        label_fr, label_en = benefit_labels(benefit)
        rows.append(
            {
                "agent": agent,
                "benefit": benefit,
                "label_fr": label_fr,
                "label_en": label_en,
                "explained": n_explained,
                "used": n_used,
                "pending": n_pending,
                "rate": rate_row(f"{agent}/{benefit}", n_used, n_explained - n_pending),
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
        "overall": rate_row("all", used_all, len(explained) - pending_all),
        "rows": rows,
    }
