"""Who read or changed which customer's record: every API call on a ``/v1/members/{ref}…`` route
made with a key is appended to the customer access log (``customers.service.record_accesses``), and
so is every read of one member's record through a route keyed by the record's id (a contact, a case,
a call-back…), which names its member with ``common.deps.note_member_access``.

Plain ASGI, after the response has gone: the entry never changes the answer, and the connection
takes its next request meanwhile. The entries of concurrent requests are written together
(``AccessLogWriter``): one transaction, one read of the members' ids and one insert for every entry
that arrived while the previous write ran, instead of a transaction each — on PostgreSQL each was a
pool checkout, a ping, ``BEGIN``, two statements and a commit waiting for the WAL, a sixth of a 360's
cost and a fifth of a balance's. A lone request is written at once (no lingering). The request's
call returns once its entry is committed, as before. A failed write is retried entry by entry, so
one entry the database refuses never costs the others theirs; each failure is logged loudly
(``access_log_write_failed``), never hidden.
"""

from __future__ import annotations

import asyncio
import weakref

import structlog
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prevenance.common.clock import Clock
from prevenance.common.deps import ACCESSED_MEMBER
from prevenance.customers import service as customers
from prevenance.db import unit_of_work

log = structlog.get_logger()
READS = frozenset({"GET", "HEAD"})


def write_accesses(engine: Engine, accesses: list[customers.Access]) -> None:
    """Write ``accesses`` in one transaction; if it fails, each alone (a failure is logged)."""
    try:
        with unit_of_work(engine) as session:
            customers.record_accesses(session, accesses)
    except Exception:
        if len(accesses) == 1:
            _log_failure(accesses[0])
        else:
            for access in accesses:
                write_accesses(engine, [access])


def _log_failure(access: customers.Access) -> None:
    log.exception(
        "access_log_write_failed",
        member_ref=access.member_ref,
        route=access.route,
        request_id=access.request_id,
    )


class AccessLogWriter:
    """One event loop's writer: the entries waiting while a write runs go together in the next."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._waiting: list[tuple[customers.Access, asyncio.Future[None]]] = []
        self._task: asyncio.Task[None] | None = None
        self.writes = 0
        """Transactions written so far (each holds every entry that waited for it)."""

    @property
    def waiting(self) -> int:
        """Entries queued for the next write."""
        return len(self._waiting)

    async def record(self, access: customers.Access) -> None:
        """Return once ``access`` is committed (or its failure logged)."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append((access, done))
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._write_while_waiting())
        await asyncio.shield(done)  # a cancelled request does not cancel the others' write

    async def _write_while_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await run_in_threadpool(write_accesses, self.engine, [access for access, _ in batch])
            finally:
                self.writes += 1
                for _, done in batch:
                    if not done.done():
                        done.set_result(None)


class AccessAuditMiddleware:
    def __init__(self, app: ASGIApp, engine: Engine, clock: Clock) -> None:
        self.app, self.engine, self.clock = app, engine, clock
        self._writers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AccessLogWriter] = (
            weakref.WeakKeyDictionary()
        )

    def writer(self) -> AccessLogWriter:
        """The running loop's writer (a test client may run each request in a loop of its own)."""
        loop = asyncio.get_running_loop()
        found = self._writers.get(loop)
        if found is None:
            found = self._writers[loop] = AccessLogWriter(self.engine)
        return found

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        await self.app(scope, receive, send_with_status)
        route = getattr(scope.get("route"), "path", "")
        state = scope.get("state") or {}
        # The member of a ``{ref}`` route, or the one a route keyed by a record's id said it read.
        ref = (scope.get("path_params") or {}).get("ref") if "{ref}" in route else None
        ref = ref or state.get(ACCESSED_MEMBER)
        principal = state.get("principal")
        if not ref or principal is None or status in (401, 404):
            return
        method = scope.get("method", "GET")
        access = customers.Access(
            member_ref=ref,
            actor=str(getattr(principal, "name", "?")),
            actor_role=str(getattr(getattr(principal, "role", None), "value", "?")),
            action="read" if method in READS else "change",
            channel="api",
            method=method,
            route=route,
            status=status,
            request_id=structlog.contextvars.get_contextvars().get("request_id"),
            at=self.clock.now(),
        )
        await self.writer().record(access)
