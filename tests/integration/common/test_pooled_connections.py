"""Pooled PostgreSQL connections are checked without a round trip (``db.refuse_closed_connection``):
a connection the server closed is never handed out, a healthy one is handed out as it is."""

from __future__ import annotations

import socket

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.exc import DisconnectionError

from prevenance.customers.tables import Member
from prevenance.db import read_session, refuse_closed_connection, unit_of_work


def _backend_pids(engine: Engine, count: int) -> set[int]:
    """Open ``count`` pooled connections at once and return their server processes."""
    connections = [engine.connect() for _ in range(count)]
    try:
        return {c.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() for c in connections}
    finally:
        for connection in connections:
            connection.close()


def _terminate(engine: Engine, pids: set[int]) -> None:
    """End those sessions from another pool, waiting until each server process is gone."""
    killer = create_engine(engine.url)
    try:
        with killer.begin() as connection:
            for pid in pids:  # with a timeout, the call returns once the process has exited
                assert connection.execute(
                    text("SELECT pg_terminate_backend(:pid, 60000)"), {"pid": pid}
                ).scalar()
    finally:
        killer.dispose()


def test_sessions_the_server_ended_are_replaced_not_answered_with_an_error(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        return  # SQLite has no server to end a session
    pids = _backend_pids(engine, 3)
    _terminate(engine, pids)
    with read_session(engine) as session:  # a read
        assert session.execute(text("SELECT count(*) FROM members")).scalar_one() == 0
    with unit_of_work(engine) as session:  # a write
        session.execute(text("SELECT 1 FROM members LIMIT 1"))
    assert _backend_pids(engine, 3).isdisjoint(pids)  # every ended session was discarded


def test_a_healthy_pooled_connection_is_handed_out_again_as_it_is(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        return  # SQLite has no server connections
    first = _backend_pids(engine, 1)
    assert _backend_pids(engine, 1) == first
    with read_session(engine) as session:
        assert session.query(Member).count() == 0


class _Idle:
    """A DB-API connection stand-in on one end of a socket pair: the other end plays the server."""

    def __init__(self, end: socket.socket, *, alive: bool) -> None:
        self.end, self.alive, self.pinged = end, alive, 0

    def fileno(self) -> int:
        return self.end.fileno()

    def cursor(self) -> _Idle:
        return self

    def execute(self, _: str) -> None:
        self.pinged += 1
        if not self.alive:
            raise OSError("server closed the connection unexpectedly")

    def fetchall(self) -> list[tuple[int]]:
        return [(1,)]

    def close(self) -> None:
        pass

    def rollback(self) -> None:
        pass


def test_only_a_connection_with_bytes_waiting_is_pinged() -> None:
    ours, server = socket.socketpair()
    with ours, server:
        quiet = _Idle(ours, alive=True)
        refuse_closed_connection(quiet, None, None)
        assert quiet.pinged == 0  # nothing arrived: no round trip
        server.sendall(b"N")  # a notice while idle: pinged, and kept since it answers
        refuse_closed_connection(quiet, None, None)
        assert quiet.pinged == 1
        server.close()  # the server's goodbye
        dead = _Idle(ours, alive=False)
        with pytest.raises(DisconnectionError):
            refuse_closed_connection(dead, None, None)
        ours.close()
        with pytest.raises(DisconnectionError):  # no socket any more
            refuse_closed_connection(_Idle(ours, alive=True), None, None)


def test_the_key_lookup_reads_again_when_its_connection_died_unannounced(engine: Engine) -> None:
    """A session ended at the moment of checkout has sent no goodbye yet, so the checkout check lets
    its connection through (here the check is taken away to make that certain). The API key read
    (``auth.lookup_principal``), a lone SELECT, is repeated once on a fresh connection instead of
    failing the request."""
    if engine.dialect.name != "postgresql":
        return
    from sqlalchemy import event

    from prevenance.common.auth import create_key, lookup_principal
    from prevenance.common.clock import FrozenClock

    with unit_of_work(engine) as session:
        _, secret = create_key(
            session, role="agent", name="test-agent", member_ref=None, now=FrozenClock().now()
        )
    event.remove(engine, "checkout", refuse_closed_connection)
    try:
        _terminate(engine, _backend_pids(engine, 1))
        principal = lookup_principal(engine, secret)
        assert principal is not None and principal.name == "test-agent"
    finally:
        event.listen(engine, "checkout", refuse_closed_connection)
