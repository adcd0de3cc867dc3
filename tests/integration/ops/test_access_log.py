"""The customer access log: every keyed call on a member's routes is appended (who, role, read or
change, route, status), queryable by customer by a supervisor, and the database refuses to change it."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError
from structlog.testing import capture_logs

from prevenance import access_audit
from prevenance.customers import service as customers
from prevenance.db import unit_of_work
from tests.conftest import Api, member_body


def test_reads_and_changes_are_logged_per_customer(api: Api) -> None:
    assert api.put("/v1/members/M1", member_body(), role="agent").status_code == 201
    api.put("/v1/members/M2", member_body(), role="agent")
    assert api.get("/v1/members/M1", role="concierge").status_code == 200
    assert api.get("/v1/members/M1/balance", role="agent").status_code == 200
    assert api.get("/v1/members/NOBODY", role="agent").status_code == 404  # no customer, no entry
    response = api.get("/v1/members/M1/access-log", role="supervisor")
    assert response.status_code == 200, response.text
    entries = response.json()
    assert [(e["actor_role"], e["action"], e["method"], e["route"], e["status"]) for e in entries] == [
        ("agent", "read", "GET", "/v1/members/{ref}/balance", 200),
        ("concierge", "read", "GET", "/v1/members/{ref}", 200),
        ("agent", "change", "PUT", "/v1/members/{ref}", 201),
    ]
    assert all(e["actor"] and e["request_id"] and e["channel"] == "api" for e in entries)
    # Reading the log is itself an access; the other member's log holds only its own entries.
    assert api.get("/v1/members/M1/access-log", role="supervisor").json()[0]["route"].endswith("/access-log")
    assert len(api.get("/v1/members/M2/access-log", role="supervisor").json()) == 1
    assert api.get("/v1/members/M1/access-log", role="agent").status_code == 403
    paged = api.get(f"/v1/members/M1/access-log?limit=1&before_id={entries[0]['id']}", role="admin").json()
    assert [e["route"] for e in paged] == ["/v1/members/{ref}"]


def test_the_access_log_is_append_only(api: Api, engine: Engine) -> None:
    api.put("/v1/members/M1", member_body(), role="agent")
    for statement in ("UPDATE customer_access_log SET actor = 'x'", "DELETE FROM customer_access_log"):
        with pytest.raises(DBAPIError), unit_of_work(engine) as session:
            session.execute(text(statement))


@pytest.mark.parametrize("sent", ["r" * 65, "x" * 5000, "café-ünïcode", "tab\there", " "])
def test_a_request_id_the_log_cannot_hold_never_keeps_a_read_out_of_it(api: Api, sent: str) -> None:
    """The client's ``X-Request-Id`` is echoed and logged when it is a plain token (visible ASCII, at
    most 64 characters, the log's column); anything else is replaced by the server's own id. Before,
    a longer id made the access-log insert fail on PostgreSQL, so a caller could read a customer's
    record without leaving a trace."""
    api.put("/v1/members/M1", member_body(), role="agent")
    headers = {**api.headers("agent"), "X-Request-Id": sent}
    response = api.client.get("/v1/members/M1/balance", headers={k: v.encode() for k, v in headers.items()})
    assert response.status_code == 200
    minted = response.headers["X-Request-Id"]
    assert minted != sent and 0 < len(minted) <= 64 and minted.isascii() and minted.isprintable()
    latest = api.get("/v1/members/M1/access-log", role="supervisor").json()[0]
    assert (latest["route"], latest["request_id"]) == ("/v1/members/{ref}/balance", minted)


def test_a_plain_request_id_is_kept_end_to_end(api: Api) -> None:
    api.put("/v1/members/M1", member_body(), role="agent")
    sent = "trace-" + "0123456789abcdef" * 3 + "ABCDEFGHIJ"[:10]  # 64 characters
    assert len(sent) == 64
    response = api.client.get(
        "/v1/members/M1/balance", headers={**api.headers("agent"), "X-Request-Id": sent}
    )
    assert response.headers["X-Request-Id"] == sent
    latest = api.get("/v1/members/M1/access-log", role="supervisor").json()[0]
    assert latest["request_id"] == sent


def _access(ref: str, route: str, *, action: str = "read") -> customers.Access:
    return customers.Access(
        member_ref=ref,
        actor="an agent",
        actor_role="agent",
        action=action,
        channel="api",
        method="GET",
        route=route,
        status=200,
        request_id=None,
        at=datetime(2026, 12, 7, tzinfo=UTC),
    )


def _routes_logged(engine: Engine) -> list[str]:
    with unit_of_work(engine) as session:
        return list(session.scalars(text("SELECT route FROM customer_access_log ORDER BY id")))


def test_entries_arriving_while_a_write_runs_are_written_together_in_order(
    api: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.put("/v1/members/M1", member_body(), role="agent")
    api.put("/v1/members/M2", member_body(), role="agent")
    before = _routes_logged(engine)
    writing, release = threading.Event(), threading.Event()
    batches: list[int] = []
    write = access_audit.write_accesses

    def gated(engine_: Engine, accesses: list[customers.Access]) -> None:
        batches.append(len(accesses))
        writing.set()
        assert release.wait(30)
        write(engine_, accesses)

    monkeypatch.setattr(access_audit, "write_accesses", gated)
    writer = access_audit.AccessLogWriter(engine)

    async def scenario() -> None:
        first = asyncio.create_task(writer.record(_access("M1", "/first")))
        await asyncio.to_thread(writing.wait, 30)  # the first write is running
        others = [asyncio.create_task(writer.record(_access(f"M{1 + i % 2}", f"/r{i}"))) for i in range(9)]
        while writer.waiting < 9:
            await asyncio.sleep(0)
        release.set()
        await asyncio.gather(first, *others)

    asyncio.run(scenario())
    assert batches == [1, 9] and writer.writes == 2
    assert _routes_logged(engine)[len(before) :] == ["/first", *(f"/r{i}" for i in range(9))]


def test_an_entry_the_database_refuses_costs_the_others_nothing(api: Api, engine: Engine) -> None:
    api.put("/v1/members/M1", member_body(), role="agent")
    before = _routes_logged(engine)
    with capture_logs() as logged:
        access_audit.write_accesses(
            engine,
            [
                _access("M1", "/before"),
                _access("M1", "/refused", action="neither read nor change"),  # the CHECK constraint
                _access("NOBODY", "/no-member"),  # no member to attach it to: not written
                _access("M1", "/after"),
            ],
        )
    assert _routes_logged(engine)[len(before) :] == ["/before", "/after"]
    failures = [entry for entry in logged if entry["event"] == "access_log_write_failed"]
    assert [entry["route"] for entry in failures] == ["/refused"]
