"""Channel routing: which channel resolves a reason first time for a member's segment."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from prevenance.customers import service as customers
from prevenance.desk import config, routing_rules, rules
from prevenance.desk.errors import (
    UnknownReason,
)
from prevenance.desk.reports import first_contact_verdict, rate_row
from prevenance.desk.repository import same_reason_contacts
from prevenance.desk.resolution import time_to_resolution
from prevenance.desk.tables import (
    Case,
    Contact,
    ContactPreference,
)


def _case_resolutions(
    session: Session, cases: list[Any], repeats: dict[tuple[int, str], list[tuple[datetime, str]]]
) -> dict[str, datetime | None]:
    """When each case the routing reads was resolved (None while open), repeats' cases included."""
    ends: dict[str, datetime | None] = {
        case.id: case.resolved_at if case.status == "resolved" else None for case in cases
    }
    missing = sorted({case_id for found in repeats.values() for _, case_id in found} - ends.keys())
    for start in range(0, len(missing), 500):
        rows = session.execute(
            select(Case.id, Case.status, Case.resolved_at).where(Case.id.in_(missing[start : start + 500]))
        )
        ends.update({row.id: row.resolved_at if row.status == "resolved" else None for row in rows})
    return ends


def channel_recommendation(
    session: Session, *, member_ref: str, reason: str, now: datetime
) -> dict[str, Any]:
    """Which channel solves ``reason`` fastest for this member, from measured resolution times.

    The cases of that reason whose first contact started in the routing window are grouped by the
    routing channel of their first contact (an outbound phone call is a call-back). A channel's
    time is the median hours from the first contact's start to the end of the matter, repeat
    contacts on the same reason included (a quick answer that brings the member back is not quick),
    over its resolved matters; its FCR share is computed as in the FCR report (undetermined cases
    left out).
    """
    if reason not in config.current().reasons:
        raise UnknownReason(f"unknown contact reason {reason!r}; see GET /v1/contact-reasons", field="reason")
    member = customers.get_member(session, ref=member_ref)
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
    repeats = same_reason_contacts(session, cases, window=window)
    ends = _case_resolutions(session, cases, repeats)
    durations: dict[str, list[timedelta]] = defaultdict(list)
    successes: dict[str, int] = defaultdict(int)
    counted: dict[str, int] = defaultdict(int)
    for case in cases:
        channel = routing_rules.routing_channel(case.channel, case.direction)
        took = time_to_resolution(
            first_started_at=case.started_at,
            resolved_at=case.resolved_at if case.status == "resolved" else None,
            repeats=[
                (at, ends.get(case_id))
                for at, case_id in repeats.get((case.member_id, case.reason), ())
                if case_id != case.id
            ],
            window=window,
        )
        if took is not None:
            durations[channel].append(took)
        verdict = first_contact_verdict(case, repeats, window=window, now=now)
        if verdict is not None:
            counted[channel] += 1
            successes[channel] += int(verdict)
    figures = [
        routing_rules.ChannelFigures(
            channel=channel,
            median_hours=routing_rules.median_hours(durations[channel]),
            resolved=len(durations[channel]),
            fcr=rules.wilson(successes[channel], counted[channel]),
        )
        for channel in policy.default_order
    ]
    mode = preference.mode if preference else None
    preferred = preference.preferred_channel if preference else None
    choice = routing_rules.recommend_channel(figures, policy=policy, mode=mode, preferred=preferred)
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
                "fcr": rate_row(f.channel, successes[f.channel], counted[f.channel]),
            }
            for f in figures
        ],
    }
