"""Who read or changed which customer's record: every API call on a ``/v1/members/{ref}…`` route
made with a key is appended to the customer access log (``customers.service.record_access``).

Plain ASGI, after the response has gone: the entry is written in its own short transaction, so the
audit never changes the answer; a failure to write it is logged loudly (and counted in the logs),
never hidden.
"""

from __future__ import annotations

import structlog
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prevenance.common.clock import Clock
from prevenance.customers import service as customers
from prevenance.db import unit_of_work

log = structlog.get_logger()
READS = frozenset({"GET", "HEAD"})


class AccessAuditMiddleware:
    def __init__(self, app: ASGIApp, engine: Engine, clock: Clock) -> None:
        self.app, self.engine, self.clock = app, engine, clock

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
        ref = (scope.get("path_params") or {}).get("ref")
        principal = (scope.get("state") or {}).get("principal")
        if not ref or "{ref}" not in route or principal is None or status in (401, 404):
            return
        method = scope.get("method", "GET")
        request_id = structlog.contextvars.get_contextvars().get("request_id")
        await run_in_threadpool(self._write, ref, principal, method, route, status, request_id)

    def _write(
        self, ref: str, principal: object, method: str, route: str, status: int, rid: str | None
    ) -> None:
        try:
            with unit_of_work(self.engine) as session:
                customers.record_access(
                    session,
                    member_ref=ref,
                    actor=str(getattr(principal, "name", "?")),
                    actor_role=str(getattr(getattr(principal, "role", None), "value", "?")),
                    action="read" if method in READS else "change",
                    channel="api",
                    method=method,
                    route=route,
                    status=status,
                    request_id=rid,
                    now=self.clock.now(),
                )
        except Exception:
            log.exception("access_log_write_failed", member_ref=ref, route=route)
