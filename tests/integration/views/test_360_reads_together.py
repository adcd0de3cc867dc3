"""The 360's parts are read together (``common.reads.read_together``): on PostgreSQL in one psycopg
pipeline, one wait for the server instead of one per part. Checked on both databases:

* every part answers exactly what the same read answers on its own through SQLAlchemy (the pipeline
  decodes rows itself, with the columns' own processors: a date, a decimal, a JSON list, a text
  must come back the same);
* on PostgreSQL the parts cost one round trip: libpq's own trace of the connection counts the
  ``Sync`` messages the client sends (one per wait for the server), 1 together against one per part
  read one by one — counted from the protocol, never timed.
"""

from __future__ import annotations

import tempfile
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import Engine, bindparam, literal, select
from sqlalchemy.exc import DBAPIError

from prevenance.common.clock import FrozenClock
from prevenance.common.reads import Read, read_together, run
from prevenance.customers import service as customers
from prevenance.db import read_statements
from prevenance.desk import benefits, cards, communications, concierge, contacts, incidents, recovery
from prevenance.loyalty import balances, goodwill
from prevenance.maintenance import run_once
from prevenance.offers import service as offers
from prevenance.voice import service as voice
from tests.conftest import Api, contact_body, member_body, statements_sent, tx_body
from tests.integration.desk.test_member_360 import premium_member_with_a_bit_of_everything
from tests.integration.loyalty.test_goodwill import late_card


def _every_part(member: Any, now: datetime) -> list[Read[Any]]:
    return [
        communications.contact_preference(member),
        balances.balance_of(member),
        balances.last_movements(member, limit=10),
        contacts.member_cases(member, status="open", limit=50),
        contacts.member_cases(member, status=None, limit=50),
        contacts.member_contacts(member, limit=10),
        communications.member_communications(member, limit=20),
        cards.member_card_replacements(member, now=now, open_only=False),
        cards.member_card_replacements(member, now=now, open_only=True),
        benefits.member_benefits(member, now=now),
        benefits.member_unused_benefits(member, now=now),
        incidents.member_incidents(member),
        voice.member_surveys(member.id, limit=10),
        offers.member_offers(member.id, limit=10),
        recovery.member_cases(member.id, now=now, limit=10),
        goodwill.member_grants(member, limit=10),
        concierge.member_requests(member.id, limit=10),
        concierge.member_tastes(member.id),
    ]


def _m1_with_something_in_every_part(
    api: Api, engine: Engine, clock: FrozenClock
) -> tuple[Any, list[Read[Any]]]:
    """The 360 test's premium member, with postings, a second contact, a benefit used, a recovery
    case, goodwill for a late card and an open card order besides; and every part of its 360."""
    premium_member_with_a_bit_of_everything(api, engine, clock)
    for n in range(3):
        assert (
            api.post("/v1/transactions", tx_body(f"T{n}", "M1", "100.00"), role="integrator").status_code
            == 201
        )
    assert api.post("/v1/contacts", contact_body("M1", "C2"), role="agent").status_code == 201
    usage = {"id": "U1", "benefit": "lounge_access", "used_at": "2025-12-01T10:00:00Z"}
    assert api.post("/v1/members/M1/benefit-usages", usage, role="integrator").status_code == 201
    case = {"id": "RC-1", "member_ref": "M1", "contact_id": "C1", "note": "Frais contestés"}
    assert api.post("/v1/recovery-cases", case, role="agent").status_code == 201
    late_card(api, clock, "R1", "M1")  # delivered late: goodwill points, granted by the maintenance pass
    open_order = {"id": "R2", "city": "Lyon", "country": "FR", "address": "1 place Bellecour"}
    assert api.post("/v1/members/M1/card-replacements", open_order, role="agent").status_code == 201
    run_once(engine, clock)
    with read_statements(engine) as session:
        member = customers.get_member(session, ref="M1")
    return member, _every_part(member, clock.now())


def test_every_part_read_together_answers_what_it_answers_alone(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _, parts = _m1_with_something_in_every_part(api, engine, clock)
    with read_statements(engine) as session:
        together = read_together(session, parts)
        alone = [run(session, part) for part in parts]
    assert together == alone
    names = [
        "preference",
        "balance",
        "movements",
        "open cases",
        "cases",
        "contacts",
        "communications",
        "cards",
        "open cards",
        "benefits",
        "unused",
        "incidents",
        "surveys",
        "offers",
        "recovery",
        "goodwill",
        "requests",
        "tastes",
    ]
    answers = dict(zip(names, together, strict=True))
    empty = [name for name, answer in answers.items() if not answer and name != "offers"]
    assert empty == []  # each part had rows to decode (offers: none made to this member)
    assert answers["tastes"]["likes"] == ["jazz"]
    assert answers["requests"][0]["cost"] == "120.00"
    assert answers["goodwill"][0]["points"] > 0 and answers["goodwill"][0]["granted_at"].endswith("Z")
    assert answers["balance"]["points"] == answers["movements"][0]["balance_after"]
    assert [c["id"] for c in answers["open cards"]] == ["R2"]
    assert [u["code"] for u in answers["unused"]] != [b["code"] for b in answers["benefits"]]


def _syncs_sent(engine: Engine, read: Any) -> int:
    """How many times the client waited for the server while ``read`` ran: the ``Sync`` messages
    it sent, from libpq's trace of the connection."""
    with read_statements(engine) as session, tempfile.TemporaryFile("w+") as trace:
        pgconn = session.connection().connection.driver_connection.pgconn
        pgconn.trace(trace.fileno())
        try:
            read(session)
        finally:
            pgconn.untrace()
        trace.seek(0)
        return sum(1 for line in trace if "\tF\t" in line and "\tSync" in line)


def test_on_postgresql_the_parts_are_one_wait_for_the_server(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _, parts = _m1_with_something_in_every_part(api, engine, clock)
    if engine.dialect.name == "sqlite":  # in the process: no round trip to save, one statement a part
        with read_statements(engine) as session, statements_sent(engine) as sent:
            read_together(session, parts)
        assert len(sent) == len(parts)
        return
    one_by_one = _syncs_sent(engine, lambda session: [run(session, part) for part in parts])
    together = _syncs_sent(engine, lambda session: read_together(session, parts))
    assert one_by_one >= len(parts)  # the count sees every wait
    assert together == 1
    response = api.get("/v1/members/M1/360", role="agent")
    assert response.status_code == 200 and response.json()["tastes"]["likes"] == ["jazz"]


def test_a_part_that_fails_fails_the_view_as_a_database_error_and_the_connection_serves_again(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    api.put("/v1/members/M1", member_body())
    with read_statements(engine) as session:
        member = customers.get_member(session, ref="M1")
    # A division by zero fails on PostgreSQL; SQLite answers NULL (its own rule), and nothing fails.
    failing: Read[Any] = Read(select(literal(1) / bindparam("p_zero")), {"p_zero": 0}, list)
    parts = [balances.balance_of(member), failing, contacts.member_contacts(member, limit=10)]
    if engine.dialect.name == "postgresql":
        with pytest.raises(DBAPIError), read_statements(engine) as session:
            read_together(session, parts)
    with read_statements(engine) as session:
        assert read_together(session, [parts[0], parts[2]])[0]["points"] == 0
    assert api.get("/v1/members/M1/360", role="agent").status_code == 200


def test_statements_built_per_call_do_not_grow_the_plans_without_bound(engine: Engine) -> None:
    from prevenance.common import reads

    with read_statements(engine) as session:
        for n in range(reads.MOST_PLANS + 20):
            statement = select(literal(n).label("n"))  # a new statement each time: a new plan on PostgreSQL
            answers = read_together(session, [Read(statement, {}, list), Read(statement, {}, list)])
            assert [row.n for row in answers[0]] == [n]
    assert reads.plans_held() <= reads.MOST_PLANS
