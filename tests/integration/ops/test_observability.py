"""``/healthz`` reports the database, the stream and the SMTP relay separately; ``/metrics`` exposes
request rate and latency by route template and the scrape-time gauges; a database that cannot be
reached gives 503 problem responses, not 500s."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from prevenance.app import create_app
from prevenance.common import metrics
from prevenance.common.clock import FrozenClock
from prevenance.db import make_engine
from prevenance.settings import Settings
from tests.conftest import Api, member_body, missing_server, tx_body
from tests.smtp_server import running_smtp


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def smtp_url() -> Iterator[str]:
    with running_smtp() as server:
        yield server.url


def _client(engine: Engine, clock: FrozenClock, **settings: str | None) -> TestClient:
    app = create_app(Settings(**settings), engine=engine, clock=clock)  # type: ignore[arg-type]
    return TestClient(app, raise_server_exceptions=False)


def test_health_reports_each_dependency(engine: Engine, clock: FrozenClock, smtp_url: str) -> None:
    with _client(engine, clock, smtp_url=smtp_url, nats_url=None) as client:
        body = client.get("/healthz").json()
        assert (body["status"], body["database"], body["smtp"], body["stream"]) == (
            "ok",
            "ok",
            "ok",
            "not configured",
        )
    dead = f"smtp://127.0.0.1:{_free_port()}"
    with _client(engine, clock, smtp_url=dead, nats_url=f"nats://127.0.0.1:{_free_port()}") as client:
        response = client.get("/healthz")
        body = response.json()
        assert response.status_code == 200  # the database answers: writes still land
        assert body["status"] == "degraded" and body["database"] == "ok"
        assert body["smtp"].startswith("error") and body["stream"].startswith("error")


def test_health_sees_the_real_stream(engine: Engine, clock: FrozenClock) -> None:
    url = os.environ.get("PREVENANCE_TEST_NATS_URL")
    if not url:
        missing_server("PREVENANCE_TEST_NATS_URL (a NATS server with JetStream) is not set")
    with _client(engine, clock, nats_url=url) as client:
        assert client.get("/healthz").json()["stream"] == "ok"
        assert "prevenance_stream_consumer_pending" in client.get("/metrics").text


def test_metrics_count_requests_by_route_template(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    api.put("/v1/members/M2", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1"), role="integrator")
    response = api.client.get("/metrics")
    assert response.status_code == 200
    text = response.text
    assert 'prevenance_http_requests_total{method="PUT",route="/v1/members/{ref}",status="201"} 2.0' in text
    assert 'route="/v1/members/M1"' not in text  # templates, never concrete paths
    assert f"{metrics.REQUEST_LATENCY}_bucket" in text  # the request histogram is exported
    assert "prevenance_ledger_postings" in text
    pending = next(line for line in text.splitlines() if line.startswith("prevenance_outbox_pending_events "))
    assert float(pending.split()[1]) >= 1  # the earn event waits for its relay


def test_an_unreachable_database_answers_503_problems(tmp_path: Path, clock: FrozenClock) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'missing-dir' / 'db.sqlite'}")
    with _client(engine, clock) as client:
        health = client.get("/healthz")
        assert health.status_code == 503 and health.json()["database"].startswith("error")
        response = client.get("/v1/members/M1", headers={"Authorization": "Bearer whatever"})
        assert response.status_code == 503, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["type"].endswith("database-unavailable")
        assert response.headers["Retry-After"]


def test_a_database_not_migrated_is_an_internal_error_not_an_outage(
    tmp_path: Path, clock: FrozenClock
) -> None:
    """SQLite reports a missing table as OperationalError too; retrying would never help, so it is
    not answered 503 (clients would retry forever) but 500."""
    engine = make_engine(f"sqlite:///{tmp_path / 'empty.sqlite'}")
    with _client(engine, clock) as client:
        response = client.get("/v1/members/M1", headers={"Authorization": "Bearer whatever"})
        assert response.status_code == 500, response.text
        assert response.json()["type"].endswith("internal-error")
        assert "Retry-After" not in response.headers
