"""What every request meets before the application reads it, and what every failure still carries.

* **Size.** A body above ``PREVENANCE_MAX_BODY_BYTES`` (default 1 MiB) is answered 413
  problem+json: at once when ``Content-Length`` says so (nothing is read), else while it streams
  (chunked), the moment the count passes the limit — the app is then told the client left, and
  whatever it answers is dropped in favour of the 413. The connection is closed after it.
* **Key before body.** FastAPI parses a route's body before it resolves the route's dependencies,
  so the API-key check (``common.deps.KeyCheck``) would come after the read. For every
  route that depends on it, the key is resolved from the headers when the app first asks for the
  body (``authenticate_before_body``: the per-process key cache, one indexed read on a miss): 401
  (or 403 for a member key on another member's route) without reading a byte of the body. The
  dependency then reuses the principal found.
* **No NUL.** A NUL character (U+0000) in any string of a request — path, query, header, JSON
  body or form field — is answered 422 problem+json naming the field (``NulGuard``), before the
  app reads it: PostgreSQL cannot store it and no legitimate input holds one. The scan is one
  ``in`` per part of the request; the body is decoded only when the scan finds something. On a
  keyed route the key is checked first (401/403 before 422), as for any other refusal.
* **500s like every answer.** Starlette sends its 500 from the outermost layer, outside the
  security headers and the request id. ``InternalErrors`` sits inside them: an unexpected error
  becomes the app's 500 problem there, so it carries ``X-Request-Id`` and the security headers.

Both are plain ASGI (no ``BaseHTTPMiddleware``): a few comparisons per request on the hot path.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qsl

from fastapi.dependencies.models import Dependant
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prevenance.common.deps import KeyCheck, authenticate_before_body
from prevenance.common.inputs import NUL_MESSAGE, nul_field, nul_path, printable
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
    return any(isinstance(d.call, KeyCheck) or _dependant_needs_key(d) for d in dependant.dependencies)


def _needs_key(route: Any) -> bool:
    """Whether a matched route depends on the API-key check (computed once per route)."""
    known: bool | None = getattr(route, _NEEDS_KEY, None)
    if known is None:
        dependant = getattr(route, "dependant", None)
        known = isinstance(dependant, Dependant) and _dependant_needs_key(dependant)
        setattr(route, _NEEDS_KEY, known)
    return known


# --- NUL characters ------------------------------------------------------------------------------


def _nul_problem(path: str, field: str) -> dict[str, Any]:
    path, field = printable(path), printable(field)
    return {
        "type": PROBLEM_BASE + "invalid-input",
        "title": "Invalid input",
        "status": 422,
        "detail": f"{field}: {NUL_MESSAGE}",
        "instance": path,
        "field": field,
        "errors": [{"field": field, "message": NUL_MESSAGE, "type": "string_nul"}],
    }


def _query_nul(query: bytes) -> str | None:
    """The parameter of a query string (or form body) that holds a NUL, or None."""
    if b"%00" not in query and b"\x00" not in query:
        return None
    return nul_field(parse_qsl(query.decode("latin-1"), keep_blank_values=True, errors="replace"))


def _header_nul(headers: list[tuple[bytes, bytes]]) -> str | None:
    for name, value in headers:
        if b"\x00" in value or b"\x00" in name:
            return name.decode("latin-1").replace("\x00", "") or "header"
    return None


def _body_nul(content_type: str, body: bytes) -> str | None:
    """The field of a body that holds a NUL: a JSON string (``\\u0000``) or a form field (``%00``)."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if kind == "application/x-www-form-urlencoded":
        return _query_nul(body)
    if b"\\u0000" not in body and b"\x00" not in body:
        return None
    if kind in ("", "application/json") or kind.endswith("+json"):
        try:
            decoded = json.loads(body)
        except ValueError:
            # A raw NUL is not valid JSON; an escaped one split by the scan is no NUL at all.
            return "body" if b"\x00" in body else None
        found = nul_path(decoded)
        return None if found is None else ".".join(found) or "body"
    return "body" if b"\x00" in body else None


def _flat_routes(routes: list[Any]) -> list[Any]:
    found: list[Any] = []
    for route in routes:
        if hasattr(route, "effective_route_contexts"):
            found.extend(route.effective_route_contexts())
        else:
            found.append(route)
    return found


def _matched_route(scope: Scope) -> tuple[Any, dict[str, str]]:
    """The route a path would reach and its path parameters (only used once a NUL is found)."""
    app = scope.get("app")
    path = str(scope.get("path", ""))
    for route in _flat_routes(list(getattr(getattr(app, "router", None), "routes", []))):
        template = getattr(route, "path", None)
        if not isinstance(template, str):
            continue
        regex: re.Pattern[str] = compile_path(template)[0]
        match = regex.match(path)
        if match:
            return route, match.groupdict()
    return None, {}


class NulGuard:
    """Refuse a request with a NUL character anywhere (422 naming the field); see the module doc.

    Path, query string and headers are scanned before the app runs; the body when the app first
    asks for it (inside ``BodyGuard``, so the key and the size are checked first): the whole body is
    read — FastAPI reads it whole anyway, within the size limit — scanned, then handed on at once.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        field = None
        params: dict[str, str] = {}
        path = str(scope.get("path", ""))
        if "\x00" in path:
            params = _matched_route(scope)[1]
            field = next((name for name, value in params.items() if "\x00" in value), "path")
        field = field or _query_nul(scope.get("query_string", b"")) or _header_nul(scope.get("headers", []))
        if field is not None:
            await self._refuse_before_app(scope, send, field, params)
            return
        started = answered = False
        first = True
        content_type = Headers(scope=scope).get("content-type", "")

        async def checked_receive() -> Message:
            nonlocal first, answered
            if answered:
                return {"type": "http.disconnect"}
            if not first:
                return await receive()
            first = False
            chunks: list[bytes] = []
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return message  # the client left, or a guard outside answered
                chunks.append(message.get("body", b""))
                if not message.get("more_body", False):
                    break
            body = b"".join(chunks)
            bad = _body_nul(content_type, body)
            if bad is not None:
                if not started:
                    await _answer(scope, send, _nul_problem(path, bad))
                    answered = True
                    scope[ANSWERED] = True
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": body, "more_body": False}

        async def watching_send(message: Message) -> None:
            nonlocal started
            if answered:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, checked_receive, watching_send)
        except Exception:
            if not answered:
                raise

    async def _refuse_before_app(self, scope: Scope, send: Send, field: str, params: dict[str, str]) -> None:
        """422 for a NUL in the path, query or headers; on a keyed route, 401/403 first."""
        path = str(scope.get("path", ""))
        route = _matched_route(scope)[0]
        if route is not None and _needs_key(route):
            try:
                await authenticate_before_body({**scope, "path_params": params})
            except PrevenanceError as error:
                headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
                await _answer(scope, send, error.to_problem(path), headers)
                return
            except Exception:
                pass  # the database is unreachable: the NUL is reason enough to refuse
        await _answer(scope, send, _nul_problem(path, field))
