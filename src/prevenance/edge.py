"""What every request meets first and every answer carries, in one ASGI layer.

In this order, as separate middlewares would nest them (outermost first):

1. the request's personal values are kept out of every log line written while it is served
   (``logging.redact_request_secrets``);
2. the client (and scheme) become those a trusted proxy forwarded (``common.proxies``);
3. the request is counted and timed by its route template (``common.metrics``);
4. the answer gets the security headers (``security_headers``);
5. a request id is on every log line and in the ``X-Request-Id`` response header: the client's
   own when it is a plain token (``client_request_id``), else one minted here.

One layer rather than five: each ASGI layer is one more call and one more ``send`` wrapper on every
request, for a few dictionary reads each. Plain ASGI, never Starlette's ``BaseHTTPMiddleware``, which
streams every response through an extra task and queue.
"""

from __future__ import annotations

import time

import structlog
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prevenance.common.ids import new_id
from prevenance.common.metrics import Metrics
from prevenance.common.proxies import TrustedProxies
from prevenance.logging import redact_request_secrets
from prevenance.security_headers import add_security_headers, policy_for

REQUEST_ID_MAX = 64
"""Longest client request id kept: the customer access log's column (``customer_access_log.request_id``)."""


def client_request_id(sent: str | None) -> str | None:
    """The client's ``X-Request-Id`` when it is 1 to ``REQUEST_ID_MAX`` visible ASCII characters;
    else None (the server mints its own). A value the access log cannot hold made its insert fail,
    so a caller could read a customer's record and leave no entry; an odd one also travels into
    every log line of the request."""
    if sent and len(sent) <= REQUEST_ID_MAX and sent.isascii() and sent.isprintable() and " " not in sent:
        return sent
    return None


class Edge:
    """The outer layer of the app (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, proxies: TrustedProxies, metrics: Metrics) -> None:
        self.app, self.proxies, self.metrics = app, proxies, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            redact_request_secrets(scope)
        if self.proxies and kind in ("http", "websocket"):
            self.proxies.rewrite(scope)
        if kind != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        csp = policy_for(str(scope.get("path", "")))
        rid = client_request_id(Headers(scope=scope).get("x-request-id")) or new_id("req")
        structlog.contextvars.bind_contextvars(request_id=rid)

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-Id"] = rid
                add_security_headers(message, csp)
                status = int(message["status"])
            await send(message)

        try:
            try:
                await self.app(scope, receive, edge_send)
            finally:
                structlog.contextvars.clear_contextvars()
        finally:
            self.metrics.observe(
                str(scope.get("method", "GET")),
                getattr(scope.get("route"), "path", None) or "unmatched",
                status,
                time.perf_counter() - started,
            )
