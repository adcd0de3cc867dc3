"""The API's key lookups on PostgreSQL share statements and one connection per event loop
(``common.key_lookup``), without weakening what a lookup answers: the stored key, read after the
request began, so a revocation is seen at once. On SQLite the lookup reads the file directly."""

from __future__ import annotations

import asyncio
import random

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DBAPIError

from prevenance.common import key_lookup
from prevenance.common.auth import ApiKey, Principal, Role, create_key, lookup_principal
from prevenance.common.clock import FrozenClock
from prevenance.common.deps import find_principal
from prevenance.db import unit_of_work


def _key(engine: Engine, clock: FrozenClock, role: str) -> tuple[str, str]:
    with unit_of_work(engine) as session:
        row, secret = create_key(session, role=role, name=f"test-{role}", now=clock.now())
        return row.id, secret


def _revoke(engine: Engine, key_id: str, clock: FrozenClock) -> None:
    with unit_of_work(engine) as session:
        row = session.get(ApiKey, key_id)
        assert row is not None
        row.revoked_at = clock.now()


def _on_postgres(engine: Engine) -> bool:
    """Whether the engine is PostgreSQL's; on SQLite, asserts its keys are read from the file
    (never by a reader of their own), which is all there is to check there."""
    if engine.dialect.name == "sqlite":
        assert not key_lookup.coalesces(engine)
        return False
    return True


def test_concurrent_lookups_are_answered_by_one_statement_each_its_own_key(
    engine: Engine, clock: FrozenClock
) -> None:
    if not _on_postgres(engine):
        return
    staff_id, staff = _key(engine, clock, "supervisor")
    revoked_id, revoked = _key(engine, clock, "integrator")
    _revoke(engine, revoked_id, clock)
    secrets = [staff, revoked, "pv_unknown_0123456789", staff, revoked] * 4

    async def scenario() -> tuple[list[Principal | None], int, int]:
        answers = await asyncio.gather(*(find_principal(engine, secret) for secret in secrets))
        reader = key_lookup.key_reader(engine)
        return list(answers), reader.reads, reader.connections

    answers, reads, connections = asyncio.run(scenario())
    expected = Principal(key_id=staff_id, name="test-supervisor", role=Role.SUPERVISOR)
    assert answers == [expected if s == staff else None for s in secrets]
    assert answers == [lookup_principal(engine, s) for s in secrets]  # the same as the one-at-a-time read
    assert (reads, connections) == (1, 1)  # 20 lookups waiting together: one statement, one connection


def test_a_revocation_is_seen_by_the_next_lookup_on_the_kept_connection(
    engine: Engine, clock: FrozenClock
) -> None:
    if not _on_postgres(engine):
        return
    key_id, secret = _key(engine, clock, "agent")

    async def scenario() -> None:
        reader = key_lookup.key_reader(engine)
        assert await reader.principal(secret) is not None
        await asyncio.to_thread(_revoke, engine, key_id, clock)  # committed by another connection
        assert await reader.principal(secret) is None
        assert (reader.reads, reader.connections) == (2, 1)

    asyncio.run(scenario())


def test_a_connection_the_server_dropped_is_replaced_once_and_a_dead_server_is_a_driver_error(
    engine: Engine, clock: FrozenClock
) -> None:
    if not _on_postgres(engine):
        return
    _, secret = _key(engine, clock, "agent")

    def terminate_readers() -> int:
        with engine.begin() as connection:
            return len(
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = :name"
                    ),
                    {"name": key_lookup.APPLICATION_NAME},
                ).all()
            )

    async def scenario() -> None:
        reader = key_lookup.key_reader(engine)
        assert await reader.principal(secret) is not None
        assert await asyncio.to_thread(terminate_readers) >= 1
        assert await reader.principal(secret) is not None  # a fresh connection, not a failure
        assert reader.connections == 2

    asyncio.run(scenario())

    nowhere = create_engine(engine.url.set(database="prevenance_no_such_database"))

    async def unreachable() -> None:
        reader = key_lookup.key_reader(nowhere)
        results = await asyncio.gather(*(reader.principal(secret) for _ in range(3)), return_exceptions=True)
        assert all(isinstance(r, DBAPIError) for r in results)  # the API answers these 503
        assert not reader.connected

    asyncio.run(unreachable())


def test_the_connection_is_closed_when_the_engine_is_disposed_or_the_loop_ends(
    engine: Engine, clock: FrozenClock
) -> None:
    if not _on_postgres(engine):
        return
    _, secret = _key(engine, clock, "agent")
    readers: list[key_lookup.CoalescedKeyReader] = []

    async def dispose_while_serving() -> None:
        reader = key_lookup.key_reader(engine)
        readers.append(reader)
        assert await reader.principal(secret) is not None
        assert reader.connected
        engine.dispose()
        await reader.wait_closed()
        assert not reader.connected
        assert await reader.principal(secret) is not None  # usable again, like a disposed pool

    asyncio.run(dispose_while_serving())
    # The loop ended with the reader serving: its task was cancelled and closed the connection.
    assert len(readers) == 1 and not readers[0].connected


def test_lookups_arriving_while_the_reader_closes_are_all_answered(
    engine: Engine, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no idle time at all, the reader closes its connection after every wave, so lookups keep
    arriving while it closes: each is answered, by one task at a time (two tasks once shared a
    connection, and one closed it under the other's read, which then never returned)."""
    if not _on_postgres(engine):
        return
    staff_id, staff = _key(engine, clock, "supervisor")
    monkeypatch.setattr(key_lookup, "IDLE_S", 0.0)
    rng = random.Random(3)
    expected = Principal(key_id=staff_id, name="test-supervisor", role=Role.SUPERVISOR)

    async def client() -> int:
        right = 0
        for _ in range(60):
            for _ in range(rng.randrange(6)):
                await asyncio.sleep(0)
            right += await find_principal(engine, staff) == expected
        return right

    async def scenario() -> int:
        answered = await asyncio.wait_for(asyncio.gather(*(client() for _ in range(6))), 120)
        return sum(answered)

    assert asyncio.run(scenario()) == 360
