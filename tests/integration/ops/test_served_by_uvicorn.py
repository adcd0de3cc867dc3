"""The application as ``prevenance serve`` runs it, behind a real uvicorn, on SQLite and PostgreSQL:
uvicorn believes forwarded headers from the configured proxies only (not its default 127.0.0.1), so
its access log and the application's rate limits name the same client; no log line, uvicorn's access
log or our structlog events, holds a survey token or a search term."""

from __future__ import annotations

import io
import logging
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import structlog
import uvicorn
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.exc import DataError

from prevenance.app import create_app
from prevenance.cli import uvicorn_options
from prevenance.common.clock import FrozenClock
from prevenance.desk import concierge
from prevenance.logging import configure
from prevenance.settings import Settings
from prevenance.voice import invitations
from tests.conftest import Api

TOKEN = "eyJpIjoiaW52XzAxSjlYWiJ9.Z3n0aA.c2lnbmF0dXJlLXNlY3JldC1wYXJ0"
TERMS = ("Jean", "Dupont", "camille", "example.fr", "33612345678", "Zo")


class _Server(uvicorn.Server):
    """uvicorn that says when it listens (an event to wait on, not a delay)."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.ready = threading.Event()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        self.ready.set()


@contextmanager
def serving(app: FastAPI, settings: Settings) -> Iterator[str]:
    """``app`` served by uvicorn on a free loopback port with the options ``serve`` passes (its
    logging set-up left to the test's log capture)."""
    options = uvicorn_options(settings)
    assert options.pop("log_config")["filters"]["redact"]
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = _Server(uvicorn.Config(app, log_config=None, lifespan="off", **options))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        assert server.ready.wait(timeout=60), "uvicorn did not start"
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=60)
        sock.close()


def access_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "uvicorn.access"]


def test_rotating_x_forwarded_for_buys_nothing_when_no_proxy_is_trusted(
    engine: Engine, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """The caller connects from 127.0.0.1, which uvicorn trusts by default; serve tells it otherwise."""
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    settings = Settings(rate_limit_survey="2/minute")
    assert uvicorn_options(settings)["proxy_headers"] is False
    with (
        serving(create_app(settings, engine=engine, clock=clock), settings) as base,
        httpx.Client(base_url=base) as client,
    ):
        codes = [
            client.get("/survey/forged", headers={"X-Forwarded-For": f"198.51.100.{n}"}).status_code
            for n in range(3)
        ]
    assert codes == [404, 404, 429]
    lines = access_lines(caplog)
    assert len(lines) == 3 and all(line.startswith("127.0.0.1:") for line in lines)
    assert not any("198.51.100" in line for line in lines)


def test_behind_a_trusted_proxy_uvicorn_and_the_application_name_the_same_client(
    engine: Engine, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    settings = Settings(rate_limit_survey="1/minute", trusted_proxies="127.0.0.1")
    assert uvicorn_options(settings)["forwarded_allow_ips"] == "127.0.0.1/32"
    with (
        serving(create_app(settings, engine=engine, clock=clock), settings) as base,
        httpx.Client(base_url=base) as client,
    ):
        codes = [
            client.get("/survey/forged", headers={"X-Forwarded-For": address}).status_code
            for address in ("198.51.100.7", "198.51.100.7", "198.51.100.8")
        ]
    assert codes == [404, 429, 404]  # one budget per customer behind the proxy
    assert [line.split(" - ")[0].rsplit(":", 1)[0] for line in access_lines(caplog)] == [
        "198.51.100.7",
        "198.51.100.7",
        "198.51.100.8",
    ]


def test_uvicorns_access_log_holds_no_survey_token_and_no_search_term(
    engine: Engine, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="uvicorn.access")
    settings = Settings()
    with (
        serving(create_app(settings, engine=engine, clock=clock), settings) as base,
        httpx.Client(base_url=base) as client,
    ):
        assert client.get(f"/survey/{TOKEN}", params={"lang": "en"}).status_code == 404
        assert client.post(f"/survey/{TOKEN}", data={"recommend": "9"}).status_code == 404
        live = client.get("/console/desk/search", params={"q": "Jean Dupont"}, headers={"HX-Request": "true"})
        assert live.status_code == 204
        desk = client.get("/console/desk", params={"q": "camille@example.fr"})
        assert desk.status_code == 303 and "camille" in desk.headers["location"]  # sent to sign in, then back
        assert client.get(desk.headers["location"]).status_code == 200
        concierge = client.get("/v1/concierge-requests/search", params={"q": "+33612345678"})
        assert concierge.status_code == 401
        assert client.get("/console/login", params={"next": "/console/desk?q=Zoé"}).status_code == 200
    lines = access_lines(caplog)
    assert len(lines) == 7
    assert '"GET /survey/[redacted]?lang=en HTTP/1.1" 404' in lines[0]
    assert '"POST /survey/[redacted] HTTP/1.1" 404' in lines[1]
    assert all("[redacted]" in line for line in lines)
    for secret in (TOKEN, *TERMS):
        assert secret not in caplog.text, secret


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """Our structlog set-up (JSON lines) written to a buffer for the test, restored after."""
    previous = structlog.get_config()
    stream = io.StringIO()
    configure(json=True, stream=stream)
    yield stream
    structlog.configure(**previous)


def test_a_crash_on_a_survey_page_is_logged_without_its_token(
    engine: Engine, clock: FrozenClock, log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(token: str, **_: object) -> str:
        raise RuntimeError(f"cannot read {token}")

    monkeypatch.setattr(invitations, "unsign", broken)
    with TestClient(
        create_app(Settings(), engine=engine, clock=clock), raise_server_exceptions=False
    ) as client:
        assert client.get(f"/survey/{TOKEN}").status_code == 500
    logged = log_stream.getvalue()
    assert '"event": "unhandled_error"' in logged and '"path": "/survey/[redacted]"' in logged
    assert TOKEN not in logged


def test_a_failed_search_statement_is_logged_without_the_searched_words(
    api: Api, log_stream: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLAlchemy prints a failed statement's parameters: the words searched are in them."""

    def broken(session: object, *, q: str, **_: object) -> list[object]:
        raise DataError("SELECT … WHERE lower(notes) LIKE :q", {"q": f"%{q.lower()}%"}, Exception("bad"))

    monkeypatch.setattr(concierge, "search_solved", broken)
    response = api.get("/v1/concierge-requests/search", role="concierge", params={"q": "Jean Dupont"})
    assert response.status_code == 500
    logged = log_stream.getvalue()
    assert "unhandled_error" in logged and "[parameters:" in logged
    assert "jean" not in logged.lower() and "dupont" not in logged.lower()


def test_a_failed_search_served_by_uvicorn_logs_no_searched_word_anywhere(
    api: Api,
    caplog: pytest.LogCaptureFixture,
    log_stream: io.StringIO,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The application answers its own 500 (with the request id and security headers), so uvicorn
    logs only the redacted access line; the application's traceback holds the statement, never the
    words searched."""

    def broken(session: object, *, q: str, **_: object) -> list[object]:
        raise DataError("SELECT … WHERE lower(notes) LIKE :q", {"q": f"%{q.lower()}%"}, Exception("bad"))

    monkeypatch.setattr(concierge, "search_solved", broken)
    caplog.set_level(logging.INFO, logger="uvicorn")
    app = api.client.app
    with (
        serving(app, Settings()) as base,
        httpx.Client(base_url=base, headers=api.headers("concierge")) as client,
    ):
        response = client.get("/v1/concierge-requests/search", params={"q": "Jean Dupont"})
        assert response.status_code == 500 and response.headers.get("x-request-id")
    assert not [r for r in caplog.records if r.name == "uvicorn.error" and r.exc_info]
    text = caplog.text + log_stream.getvalue()
    assert "DataError" in text and "[parameters:" in text
    assert "jean" not in text.lower() and "dupont" not in text.lower()
