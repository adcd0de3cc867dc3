"""Before the app reads a body: a keyed route without a valid key is 401 (a member key on another
member's route 403) and not one byte of the body is read; a body above PREVENANCE_MAX_BODY_BYTES is
413 problem+json, declared or streamed. Every answer, 500 included, carries the security headers
and X-Request-Id.

The requests are driven as raw ASGI calls, so the test sees exactly which body messages the
application asked for."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from prevenance.app import create_app
from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.common.problems import PROBLEM_BASE
from prevenance.db import read_session, unit_of_work
from prevenance.loyalty import service
from prevenance.loyalty.tables import CardTransaction
from prevenance.settings import Settings
from tests.conftest import Api, member_body, tx_body

SECURITY_HEADERS = ("x-content-type-options", "x-frame-options", "referrer-policy")
MIB = 1_048_576


@dataclass
class Exchange:
    """One raw ASGI request: what the app read of the body and what it answered."""

    chunks_read: int = 0
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    def problem(self) -> dict[str, Any]:
        assert self.headers.get("content-type", "").startswith("application/problem+json"), self.headers
        value: dict[str, Any] = orjson.loads(self.body)
        return value


def _call(
    app: FastAPI,
    path: str,
    chunks: list[bytes],
    *,
    headers: dict[str, str] | None = None,
    method: str = "POST",
) -> Exchange:
    exchange = Exchange()
    pending = list(chunks)
    raw_headers = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]

    async def receive() -> dict[str, Any]:
        if not pending:
            await asyncio.Event().wait()  # a client that sends nothing more: never answered here
        exchange.chunks_read += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            exchange.status = message["status"]
            exchange.headers = {k.decode().lower(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            exchange.body += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": raw_headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
        "state": {},
    }
    asyncio.run(asyncio.wait_for(app(scope, receive, send), timeout=60))
    return exchange


def _json_chunks(body: dict[str, Any]) -> list[bytes]:
    data = orjson.dumps(body)
    return [data[: len(data) // 2], data[len(data) // 2 :]]


def _transactions(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(CardTransaction)) or 0)


def _assert_answered_like_any_other(exchange: Exchange) -> None:
    for name in SECURITY_HEADERS:
        assert name in exchange.headers, (name, exchange.headers)
    assert exchange.headers.get("x-request-id", "").startswith("req_")


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer pv_unknown-key-of-nobody", "pv_no-scheme"],
    ids=["missing", "empty", "scheme-only", "blank-key", "basic", "unknown", "no-scheme"],
)
def test_a_keyed_route_without_a_valid_key_is_401_before_a_byte_of_the_body_is_read(
    api: Api, engine: Engine, authorization: str | None
) -> None:
    api.put("/v1/members/M1", member_body())
    app = api.client.app
    headers = {"content-type": "application/json"}
    if authorization is not None:
        headers["authorization"] = authorization
    exchange = _call(app, "/v1/transactions", _json_chunks(tx_body("T1", "M1")), headers=headers)
    assert exchange.status == 401
    assert exchange.chunks_read == 0
    problem = exchange.problem()
    assert problem["type"] == PROBLEM_BASE + "unauthenticated" and problem["instance"] == "/v1/transactions"
    assert exchange.headers["www-authenticate"] == "Bearer"
    _assert_answered_like_any_other(exchange)
    assert _transactions(engine) == 0


def test_a_member_key_on_another_members_route_is_403_before_the_body_is_read(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    api.put("/v1/members/M1", member_body())
    api.put("/v1/members/M2", member_body(email="m2@example.fr"))
    with unit_of_work(engine) as session:
        _, member_key = create_key(session, role="member", name="m1", member_ref="M1", now=clock.now())
    body = {"id": "X1", "kind": "catalogue", "sku": "PEN", "quantity": 1}
    exchange = _call(
        api.client.app,
        "/v1/members/M2/redemptions",
        _json_chunks(body),
        headers={"content-type": "application/json", "authorization": f"Bearer {member_key}"},
    )
    assert exchange.status == 403 and exchange.chunks_read == 0
    assert exchange.problem()["field"] == "member_ref"


def test_a_valid_key_reads_the_streamed_body_and_the_route_answers(api: Api, engine: Engine) -> None:
    api.put("/v1/members/M1", member_body())
    exchange = _call(
        api.client.app,
        "/v1/transactions",
        _json_chunks(tx_body("T1", "M1")),
        headers={"content-type": "application/json", **api.headers("integrator")},
    )
    assert exchange.status == 201, exchange.body
    assert exchange.chunks_read == 2
    assert _transactions(engine) == 1


def test_a_declared_body_above_the_limit_is_413_without_reading_it(api: Api, engine: Engine) -> None:
    api.put("/v1/members/M1", member_body())
    exchange = _call(
        api.client.app,
        "/v1/transactions",
        [b"x" * 65_536] * 17,
        headers={
            "content-type": "application/json",
            "content-length": str(17 * 65_536),
            **api.headers("integrator"),
        },
    )
    assert exchange.status == 413 and exchange.chunks_read == 0
    problem = exchange.problem()
    assert problem["type"] == PROBLEM_BASE + "payload-too-large"
    assert problem["field"] == "body" and problem["limit"] == MIB
    assert exchange.headers["connection"] == "close"
    _assert_answered_like_any_other(exchange)


def test_a_chunked_body_above_the_limit_is_413_as_soon_as_the_count_passes_it(
    api: Api, engine: Engine
) -> None:
    """No Content-Length: the bytes are counted as they arrive; the 17th 64 KiB chunk passes 1 MiB
    and the rest (83 more) is never asked for. Nothing is written."""
    api.put("/v1/members/M1", member_body())
    exchange = _call(
        api.client.app,
        "/v1/transactions",
        [b" " * 65_536] * 100,
        headers={"content-type": "application/json", **api.headers("integrator")},
    )
    assert exchange.status == 413, exchange.body
    assert exchange.chunks_read == 17
    assert exchange.problem()["type"] == PROBLEM_BASE + "payload-too-large"
    _assert_answered_like_any_other(exchange)
    assert _transactions(engine) == 0


def test_public_pages_are_limited_too(api: Api) -> None:
    """The survey form and the sign-in page take a body without a key: the limit holds there."""
    for path in ("/survey/anything", "/console/login"):
        exchange = _call(
            api.client.app,
            path,
            [b"a=" + b"b" * 65_536] * 20,
            headers={"content-type": "application/x-www-form-urlencoded"},
        )
        assert exchange.status == 413, (path, exchange.status)


def test_the_limit_is_a_setting(engine: Engine, clock: FrozenClock) -> None:
    app = create_app(Settings(max_body_bytes=200), engine=engine, clock=clock)
    with unit_of_work(engine) as session:
        _, key = create_key(session, role="integrator", name="limit", now=clock.now())
    headers = {"content-type": "application/json", "authorization": f"Bearer {key}"}
    with TestClient(app, raise_server_exceptions=False):
        below = _call(app, "/v1/transactions", [b" " * 150 + b"{}"], headers=headers)
        above = _call(app, "/v1/transactions", [b" " * 199 + b"{}"], headers=headers)
    assert below.status == 422  # read and judged by the route
    assert above.status == 413


def test_a_500_carries_the_security_headers_and_the_request_id(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("boom")

    monkeypatch.setattr(service, "get_balance", explode)
    response = api.client.get(
        "/v1/members/M1/balance", headers={**api.headers("agent"), "X-Request-Id": "req_given-by-the-proxy"}
    )
    assert response.status_code == 500
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["type"] == PROBLEM_BASE + "internal-error"
    assert response.headers["x-request-id"] == "req_given-by-the-proxy"
    for name in SECURITY_HEADERS:
        assert name in response.headers, name


def test_the_openapi_document_lists_413_on_every_operation_with_a_body(api: Api) -> None:
    paths = api.client.get("/openapi.json").json()["paths"]
    with_body = [
        (path, method, operation)
        for path, item in paths.items()
        for method, operation in item.items()
        if isinstance(operation, dict) and "requestBody" in operation
    ]
    assert ("/v1/transactions", "post") in {(path, method) for path, method, _ in with_body}
    for path, method, operation in with_body:
        assert "413" in operation["responses"], (method, path)
        assert "application/problem+json" in operation["responses"]["413"]["content"]
