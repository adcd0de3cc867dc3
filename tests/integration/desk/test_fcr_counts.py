"""The FCR report's counts, made by the database, equal the rule applied case by case in Python
(``rules.first_contact_resolved`` through ``reports.first_contact_verdict``, the routing advice's
path), on SQLite and PostgreSQL: the figure feeds agents' scorecards and pay bands."""

from __future__ import annotations

import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from prevenance.common.clock import FrozenClock
from prevenance.common.periods import month_bounds
from prevenance.db import read_session, unit_of_work
from prevenance.desk import config, contacts, reports, rules
from prevenance.desk.repository import same_reason_contacts
from prevenance.desk.tables import Case, Contact
from tests.conftest import Api, member_body
from tests.integration.desk.contact_inputs import contact_input

BASE = datetime(2025, 12, 1, tzinfo=UTC)
NOW = BASE + timedelta(days=75)  # the last weeks' cases are still undetermined


def _fcr_case_by_case(session: Any, *, by: str, month: str | None) -> dict[str, Any]:
    """The report as it was computed before the database counted it: every case read, its verdict
    decided in Python."""
    window = config.current().fcr_window
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
        start, end = month_bounds(month)
        statement = statement.where(Case.opened_at >= start, Case.opened_at < end)
    cases = list(session.execute(statement))
    repeats = same_reason_contacts(session, cases, window=window)
    successes: dict[str, int] = defaultdict(int)
    counted: dict[str, int] = defaultdict(int)
    undetermined = 0
    for case in cases:
        verdict = reports.first_contact_verdict(case, repeats, window=window, now=NOW)
        if verdict is None:
            undetermined += 1
            continue
        key = case.started_at.strftime("%Y-%m") if by == "month" else str(getattr(case, by))
        counted[key] += 1
        successes[key] += int(verdict)
    return {"undetermined": undetermined, "rows": {k: (successes[k], counted[k]) for k in counted}}


@pytest.fixture
def desk_world(engine: Engine, clock: FrozenClock, api: Api) -> None:
    """Cases over two and a half months: one-contact and two-contact cases, resolved or not, and
    same-reason follow-ups exactly at a case's deadline, a microsecond past it, at its first
    contact's very start, and in the same case."""
    rng = random.Random(704)
    refs = [f"FC{i}" for i in range(10)]
    for i, ref in enumerate(refs):
        assert api.put(f"/v1/members/{ref}", member_body(country=("FR", "GB")[i % 2])).status_code == 201
    window = config.current().fcr_window
    reasons = ["card.lost_stolen", "rewards.balance"]
    with unit_of_work(engine) as session:

        def log(n: int, ref: str, reason: str, at: datetime, **extra: Any) -> Any:
            contact = contact_input(
                f"FC{n}",
                ref,
                at,
                reason=reason,
                agent=rng.choice(("alice", "bob", "chloe")),
                team=rng.choice(("paris-1", "london-2")),
                channel=rng.choice(("phone", "chat")),
                **extra,
            )
            return contacts.log_contact(session, contact=contact, now=clock.now())

        n = 0
        for _ in range(180):
            ref, reason = rng.choice(refs), rng.choice(reasons)
            at = BASE + timedelta(seconds=rng.randrange(86_400 * 75), microseconds=rng.choice((0, 500_000)))
            length = timedelta(minutes=rng.randrange(1, 30))
            outcome = rng.choice(("resolved", "resolved", "resolved", "escalated"))
            logged = log(n, ref, reason, at, ended_at=at + length, outcome=outcome)
            n += 1
            settled = at + length
            roll = rng.random()
            if roll < 0.12:
                log(n, ref, reason, settled + window)  # exactly at the deadline: a repeat
            elif roll < 0.22:
                log(n, ref, reason, settled + window + timedelta(microseconds=1))  # just past it
            elif roll < 0.27:
                log(n, ref, reason, at)  # the same instant as the first contact: not after it
            elif roll < 0.35:
                case_id = logged.body["case_id"]
                log(n, ref, reason, settled + timedelta(hours=1), case_id=case_id)  # same case
            n += 1
        # A case whose window closes exactly now: decided (the window has passed at its bound).
        settled = NOW - window
        log(n, "FC9", "card.declined", settled - timedelta(minutes=5), ended_at=settled, outcome="resolved")


@pytest.mark.usefixtures("desk_world")
@pytest.mark.parametrize("month", [None, "2026-01", "2026-02"])
def test_the_databases_fcr_counts_equal_the_rule_case_by_case(engine: Engine, month: str | None) -> None:
    for by in rules.FCR_DIMENSIONS:
        with read_session(engine) as session:
            report = reports.fcr_report(session, by=by, month=month, now=NOW)
            expected = _fcr_case_by_case(session, by=by, month=month)
        assert report["undetermined"] == expected["undetermined"], by
        assert {row["key"]: (row["successes"], row["n"]) for row in report["rows"]} == expected["rows"], by
        assert [row["key"] for row in report["rows"]] == sorted(expected["rows"]), by
        assert report["overall"]["n"] == sum(n for _, n in expected["rows"].values()), by
    if month is None:  # the world has decided cases of both kinds and undetermined ones
        assert report["undetermined"] > 0
        assert 0 < report["overall"]["successes"] < report["overall"]["n"]
