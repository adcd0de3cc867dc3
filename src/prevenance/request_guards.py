"""What every request meets before the application reads it, and what every failure still carries.

* **Size.** A body above ``PREVENANCE_MAX_BODY_BYTES`` (default 1 MiB) is answered 413
  problem+json: at once when ``Content-Length`` says so (nothing is read), else while it streams
  (chunked), the moment the count passes the limit — the app is then told the client left, and
  whatever it answers is dropped in favour of the 413. The connection is closed after it.
* **Key before body.** FastAPI parses a route's body before it resolves the route's dependencies,
  so the API-key check (``common.deps.current_principal``) would come after the read. For every
  route that depends on it, the key is resolved from the headers when the app first asks for the
  body (``authenticate_before_body``: the per-process key cache, one indexed read on a miss): 401
  (or 403 for a member key on another member's route) without reading a byte of the body. The
  dependency then reuses the principal found.
* **500s like every answer.** Starlette sends its 500 from the outermost layer, outside the
  security headers and the request id. ``InternalErrors`` sits inside them: an unexpected error
  becomes the app's 500 problem there, so it carries ``X-Request-Id`` and the security headers.

Both are plain ASGI (no ``BaseHTTPMiddleware``): a few comparisons per request on the hot path.
"""

from __future__ import annotations

from typing import Any

from fastapi.dependencies.models import Dependant
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prevenance.common.deps import authenticate_before_body, current_principal
from prevenance.common.problems import (
    PROBLEM_BASE,
    PrevenanceError,
    problem_response,
    unexpected_error_response,
)

ANSWERED = "prevenance.answered"  # scope key: a guard already answered this request
_NEEDS_KEY = "_prevenance_needs_key"  # cached on each route object


async def _answer(
    scope: Scope, send: Send, problem: dict[str, Any], headers: dict[str, str] | None = None
) -> None:
    response = problem_response(problem, headers)
    if problem["status"] == 413:
        # The client may still be sending a large body: do not keep reading it for the next request.
        response.headers["Connection"] = "close"

    async def nothing() -> Message:
        return {"type": "http.disconnect"}

    await response(scope, nothing, send)


def _too_large(path: str, limit: int) -> dict[str, Any]:
    return {
        "type": PROBLEM_BASE + "payload-too-large",
        "title": "Request body too large",
        "status": 413,
        "detail": f"the request body exceeds {limit} bytes (PREVENANCE_MAX_BODY_BYTES)",
        "instance": path,
        "field": "body",
        "limit": limit,
    }


class BodyGuard:
    """Before the app reads a byte of the body: the key of a keyed route, then the size limit.

    One wrapper around ``receive`` does both, so the hot path pays one closure per request. The
    key is checked at the app's first ``receive`` — by then the router has matched the route
    (``scope["route"]``) and FastAPI is about to parse the body, before running the dependencies.
    A refusal is sent from here; the app is told the client left and its own answer is dropped.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = Headers(scope=scope).get("content-length")
        if declared is not None and declared.strip().isdigit() and int(declared) > self.max_bytes:
            await _answer(scope, send, _too_large(str(scope.get("path", "")), self.max_bytes))
            return
        received = 0
        first = True
        started = answered = False

        async def refuse(problem: dict[str, Any], headers: dict[str, str] | None = None) -> Message:
            nonlocal answered
            if not started:
                await _answer(scope, send, problem, headers)
                answered = True
                scope[ANSWERED] = True
            return {"type": "http.disconnect"}  # to the app the client is gone: it stops reading

        async def guarded_receive() -> Message:
            nonlocal received, first
            if answered:
                return {"type": "http.disconnect"}
            if first:
                first = False
                route = scope.get("route")
                if route is not None and _needs_key(route):
                    try:
                        principal = await authenticate_before_body(scope)
                    except PrevenanceError as error:
                        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
                        return await refuse(error.to_problem(str(scope.get("path", ""))), headers)
                    except Exception:
                        # The database is down or busy: the route's own dependency meets the same
                        # error and answers it through the app's handlers (503 and Retry-After).
                        pass
                    else:
                        scope.setdefault("state", {})["principal"] = principal
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    return await refuse(_too_large(str(scope.get("path", "")), self.max_bytes))
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if answered:
                return  # the refusal went out instead of whatever the app answers to a "disconnect"
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if not answered:
                raise  # the app's own failure; a refusal is already answered


class InternalErrors:
    """An unexpected error answered 500 problem+json from inside the header middlewares."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watching_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watching_send)
        except Exception as error:
            if started or scope.get(ANSWERED):
                raise  # half an answer is out, or a guard outside answered: nothing to add here
            response = unexpected_error_response(Request(scope), error)
            await response(scope, receive, send)


def _dependant_needs_key(dependant: Dependant) -> bool:
    return any(d.call is current_principal or _dependant_needs_key(d) for d in dependant.dependencies)


def _needs_key(route: Any) -> bool:
    """Whether a matched route depends on the API-key check (computed once per route)."""
    known: bool | None = getattr(route, _NEEDS_KEY, None)
    if known is None:
        dependant = getattr(route, "dependant", None)
        known = isinstance(dependant, Dependant) and _dependant_needs_key(dependant)
        setattr(route, _NEEDS_KEY, known)
    return known
