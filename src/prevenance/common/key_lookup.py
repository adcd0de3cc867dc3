"""The API-key lookups of concurrent requests on a PostgreSQL database, coalesced in the event loop.

Every keyed request reads its key's row (so a revoked key is refused at once by every process). On
a server database that read was a hop to a worker thread and a round trip on a connection of its
own; under load, more lookups were in flight than connections were kept, so connections were
opened and closed by the hundred (each a server process forked and torn down).

Here each event loop has one reader with one autocommit ``psycopg.AsyncConnection``: the lookups
that wait while a read is in flight are answered together by the next read, one
``key_hash = ANY(…)`` statement for all of them. A lookup never takes an answer read before it
arrived (it joins the *next* read), so a revocation committed before a request starts is seen by it.
The reader's task keeps the connection while lookups come, closes it after ``IDLE_S`` without any,
when the engine is disposed, or when its loop shuts down (the task is cancelled). A kept connection
the server dropped is replaced once, as a pool's pre-ping would; any other failure answers every
waiting lookup with the driver's error (the API maps it to 503), and the next read reconnects.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from typing import Any

from sqlalchemy import Engine, event

from prevenance.common.auth import Principal, as_sqlalchemy_error, hash_key, principal_from_row

APPLICATION_NAME = "prevenance-key-lookup"
"""How the readers' connections show in ``pg_stat_activity``."""

IDLE_S = 5.0
"""Seconds without a lookup after which the loop's connection is closed (reopened on the next)."""

_READ = "SELECT key_hash, id, name, role, member_ref, revoked_at FROM api_keys WHERE key_hash = ANY(%s)"


class CoalescedKeyReader:
    """One event loop's key reader on a PostgreSQL engine driven by psycopg (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._waiting: dict[str, list[asyncio.Future[tuple[Any, ...] | None]]] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._connection: Any = None
        self._closing = False
        self.reads = 0
        """Statements run so far (each answers every lookup that waited for it)."""
        self.connections = 0
        """Connections opened so far."""

    async def principal(self, secret: str) -> Principal | None:
        """The key's principal, or None when unknown or revoked (read after this call began)."""
        return principal_from_row(await self.row(hash_key(secret)))

    async def row(self, key_hash: str) -> tuple[Any, ...] | None:
        """The key row (id, name, role, member_ref, revoked_at) of ``key_hash``, or None."""
        answer: asyncio.Future[tuple[Any, ...] | None] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key_hash, []).append(answer)
        self._wake.set()
        if self._task is None or self._task.done():
            self._closing = False
            self._task = asyncio.get_running_loop().create_task(self._serve())
        return await answer

    @property
    def connected(self) -> bool:
        """Whether the reader holds an open connection."""
        return self._connection is not None and not self._connection.closed

    async def wait_closed(self) -> None:
        """Return once the reader's task has ended (idle, disposed or cancelled)."""
        task = self._task
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)

    def close_soon(self) -> None:
        """Close the connection (called from any thread when the engine is disposed)."""
        task = self._task
        if task is None or task.done():
            return
        loop = task.get_loop()
        with contextlib.suppress(RuntimeError):  # the loop is already closed: so is the task
            loop.call_soon_threadsafe(self._close_now)

    def _close_now(self) -> None:
        self._closing = True
        self._wake.set()

    async def _serve(self) -> None:
        cancelled = False
        try:
            await self._answer_while_asked()
        except asyncio.CancelledError:  # the loop shuts down: so do the requests still waiting
            cancelled = True
            for answers in self._waiting.values():
                for answer in answers:
                    answer.cancel()
            self._waiting = {}
            raise
        finally:
            connection, self._connection = self._connection, None
            if connection is not None:
                await _close(connection)
            # Still this reader's task until here, so a lookup made while it closed waited for it
            # (never a second task on the same reader); it is served by a fresh one.
            self._task = None
            if self._waiting and not cancelled:
                self._closing = False
                self._task = asyncio.get_running_loop().create_task(self._serve())

    async def _answer_while_asked(self) -> None:
        """Read for every lookup waiting, again and again; return after ``IDLE_S`` without any, or
        when the engine is disposed."""
        while True:
            if not self._waiting:
                if self._closing:
                    return
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), IDLE_S)
                if not self._waiting:
                    return
            batch, self._waiting = self._waiting, {}
            try:
                rows = await self._read(list(batch))
            except Exception as error:
                failure = as_sqlalchemy_error(self.engine, _READ, error)
                for answers in batch.values():
                    for answer in answers:
                        if not answer.done():
                            answer.set_exception(failure)
                continue
            for key_hash, answers in batch.items():
                for answer in answers:
                    if not answer.done():  # the request went away meanwhile
                        answer.set_result(rows.get(key_hash))
            if self._closing:
                connection, self._connection = self._connection, None
                if connection is not None:
                    await _close(connection)

    async def _read(self, hashes: list[str]) -> dict[str, tuple[Any, ...]]:
        """One statement for ``hashes`` on the kept connection (or a new one)."""
        connection = self._connection
        may_retry = connection is not None  # a kept connection may have gone stale since
        dbapi = self.engine.dialect.loaded_dbapi
        while True:
            if connection is None:
                connection = self._connection = await self._connect()
            try:
                cursor = await connection.execute(_READ, (hashes,))
                found = await cursor.fetchall()
                break
            except Exception as error:
                self._connection = None
                await _close(connection)
                connection = None
                if not (may_retry and isinstance(error, dbapi.OperationalError)):
                    raise
                may_retry = False  # once more, on a fresh connection
        self.reads += 1
        return {row[0]: tuple(row[1:]) for row in found}

    async def _connect(self) -> Any:
        import psycopg

        args, kwargs = self.engine.dialect.create_connect_args(self.engine.url)
        kwargs = {**kwargs, "application_name": APPLICATION_NAME, "autocommit": True}
        connection = await psycopg.AsyncConnection.connect(*args, **kwargs)
        self.connections += 1
        return connection


async def _close(connection: Any) -> None:
    with contextlib.suppress(Exception):
        await connection.close()


def coalesces(engine: Engine) -> bool:
    """Whether the engine's key lookups can be coalesced here: PostgreSQL through psycopg 3."""
    return engine.dialect.name == "postgresql" and engine.dialect.driver == "psycopg"


_READERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, CoalescedKeyReader]] = (
    weakref.WeakKeyDictionary()
)
_BY_ENGINE: weakref.WeakKeyDictionary[Engine, weakref.WeakSet[CoalescedKeyReader]] = (
    weakref.WeakKeyDictionary()
)
_LOCK = threading.Lock()


def key_reader(engine: Engine) -> CoalescedKeyReader:
    """The running loop's reader for ``engine`` (created on first use; its connection is closed
    when the engine is disposed)."""
    per_loop = _READERS.setdefault(asyncio.get_running_loop(), {})
    found = per_loop.get(id(engine))
    if found is not None and found.engine is engine:
        return found
    found = per_loop[id(engine)] = CoalescedKeyReader(engine)
    with _LOCK:
        readers = _BY_ENGINE.get(engine)
        if readers is None:
            readers = _BY_ENGINE[engine] = weakref.WeakSet()
            event.listen(engine, "engine_disposed", _close_readers_of)
        readers.add(found)
    return found


def _close_readers_of(engine: Engine) -> None:
    with _LOCK:
        readers = list(_BY_ENGINE.get(engine, ()))
    for reader in readers:
        reader.close_soon()
