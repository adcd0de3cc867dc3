"""Faults under load, against a real server: ``prevenance serve`` (two uvicorn workers) is killed
with SIGKILL while clients earn, refund, redeem and answer surveys from signed links; it is restarted and every client retries what it
did not get an answer to, with the same idempotency key. Every accepted request is applied exactly
once, every refused one not at all, each survey link holds exactly one answer, and the ledger audit
balances. Then the database connection is
cut (a TCP proxy in front of the database stops): the API answers 503 problems while it is down and
recovers by itself when it returns.

SQLite is not cut by a proxy (it is a file), so that part runs on PostgreSQL only.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.customers import service as customers
from prevenance.db import read_session, unit_of_work
from prevenance.desk import service as desk
from prevenance.loyalty import ledger
from prevenance.loyalty import service as loyalty
from prevenance.loyalty.tables import CardTransaction, Redemption, Refund
from prevenance.maintenance import HANDLERS
from prevenance.settings import Settings
from prevenance.voice import invitations
from prevenance.voice.tables import Answer
from tests.conftest import member_body
from tests.integration.ops.netproxy import NetProxy

BIN = Path(sys.executable).parent / "prevenance"
CLIENTS = 4
MEMBERS = 8


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _start(url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        [str(BIN), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        # Every client shares 127.0.0.1: the survey's per-address limit is lifted for the load.
        env={**os.environ, "PREVENANCE_DATABASE_URL": url, "PREVENANCE_RATE_LIMIT_SURVEY": "100000/minute"},
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    # Wait for the server's answer (or its exit), not for a time: a busy machine starts it slowly.
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code in (200, 503):
                return server
        except httpx.HTTPError:
            time.sleep(0.1)
    server.kill()
    raise AssertionError(f"server did not start: {log.read_text()[-2000:]}")


def _kill(server: subprocess.Popen[bytes]) -> None:
    os.killpg(server.pid, signal.SIGKILL)  # the uvicorn supervisor and both workers, no goodbye
    server.wait(timeout=30)


@dataclass
class Ledgerbook:
    """What the clients were finally told, request by request."""

    answers: dict[str, int] = field(default_factory=dict)  # request key -> final status
    lock: threading.Lock = field(default_factory=threading.Lock)


def _requests(client: int) -> list[tuple[str, str, str, dict[str, Any]]]:
    """Each client's plan: earns, refunds of some of them, and catalogue redemptions."""
    plan: list[tuple[str, str, str, dict[str, Any]]] = []
    for n in range(40):
        member = f"F{(client * 7 + n) % MEMBERS}"
        tx = f"T{client}-{n}"
        body = {
            "id": tx,
            "member_ref": member,
            "amount": f"{100 + n}.00",
            "currency": "EUR",
            "merchant": "Fault Store",
            "category": "books",
            "occurred_at": "2026-01-01T10:00:00Z",
        }
        plan.append((tx, "POST", "/v1/transactions", body))
        if n % 4 == 3:
            plan.append(
                (
                    f"R{client}-{n}",
                    "POST",
                    f"/v1/transactions/{tx}/refunds",
                    {"id": f"R{client}-{n}", "amount": "10.00"},
                )
            )
        if n % 10 == 9:
            rid = f"D{client}-{n}"
            body = {"id": rid, "kind": "catalogue", "sku": "PEN", "quantity": 1}
            plan.append((rid, "POST", f"/v1/members/{member}/redemptions", body))
        if n % 5 == 2:
            contact = _survey_contact(client, n)
            form = {"recommend": str(n % 11), "interaction": str(1 + n % 5), "comment": "fast"}
            plan.append((contact, "FORM", contact, form))
    return plan


def _survey_contact(client: int, n: int) -> str:
    return f"S{client}-{n}"


def _survey_path(contact: str) -> str:
    """The signed link of the invitation sent after ``contact`` (the server's default secret)."""
    invitation = invitations.invitation_id_for(contact)
    token = invitations.sign(invitation, secret=Settings().secret_key, now=datetime.now(UTC))
    return f"/survey/{token}"


def _client(port_of: list[int], token: str, client: int, book: Ledgerbook, stop_after: float) -> None:
    """Send the plan; on a connection failure or 5xx wait and retry the same request (same key)."""
    headers = {"Authorization": f"Bearer {token}"}
    deadline = time.monotonic() + stop_after
    for key, method, path, body in _requests(client):
        while time.monotonic() < deadline:
            try:
                if method == "FORM":  # a survey answer: a plain form post to the signed link
                    response = httpx.post(
                        f"http://127.0.0.1:{port_of[0]}{_survey_path(path)}", data=body, timeout=10
                    )
                else:
                    response = httpx.request(
                        method, f"http://127.0.0.1:{port_of[0]}{path}", json=body, headers=headers, timeout=10
                    )
            except httpx.HTTPError:
                time.sleep(0.2)
                continue
            if response.status_code >= 500:
                time.sleep(0.2)
                continue
            with book.lock:
                book.answers[key] = response.status_code
            break


def _world(engine: Engine, clock: FrozenClock) -> str:
    with unit_of_work(engine) as session:
        for i in range(MEMBERS):
            customers.upsert(
                session, ref=f"F{i}", data=customers.MemberData(**member_body()), now=clock.now()
            )
        loyalty.put_catalogue_item(
            session, sku="PEN", name="Pen", points=50, stock=1_000_000, now=clock.now()
        )
        token = create_key(session, role="integrator", name="faults", now=clock.now())[1]
    _invite_to_surveys(engine, clock)
    return token


def _invite_to_surveys(engine: Engine, clock: FrozenClock) -> None:
    """The closed contacts whose invitations the clients answer during the load."""
    contacts = [key for c in range(CLIENTS) for key, method, *_ in _requests(c) if method == "FORM"]
    with unit_of_work(engine) as session:
        for n, contact in enumerate(contacts):
            moment = clock.now()
            desk.log_contact(
                session,
                contact=desk.ContactInput(
                    id=contact,
                    member_ref=f"F{n % MEMBERS}",
                    channel="phone",
                    direction="inbound",
                    agent="alice",
                    team="paris-1",
                    reason="rewards.balance",
                    started_at=moment,
                    ended_at=moment,
                    notes="",
                    outcome="resolved",
                ),
                now=moment,
            )
    with unit_of_work(engine) as session:  # what the worker does on contact.closed
        for event in session.scalars(select(OutboxEvent)):
            for handler in HANDLERS.get(event.type, []):
                handler(session, event)


@pytest.mark.slow
def test_api_workers_killed_mid_load_apply_every_request_exactly_once(
    engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    token = _world(engine, clock)
    url = engine.url.render_as_string(hide_password=False)
    port = [_free_port()]
    log = tmp_path / "serve.log"
    server = _start(url, port[0], log)
    book = Ledgerbook()
    threads = [
        threading.Thread(target=_client, args=(port, token, c, book, 120.0), daemon=True)
        for c in range(CLIENTS)
    ]
    for thread in threads:
        thread.start()
    try:
        planned = sum(len(_requests(c)) for c in range(CLIENTS))
        deadline = time.monotonic() + 120
        while len(book.answers) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)  # wait until the load is flowing
        _kill(server)
        assert 20 <= len(book.answers) < planned, "the kill must land in the middle of the load"
        time.sleep(0.5)
        server = _start(url, port[0], log)
        time.sleep(1.0)
        _kill(server)  # twice, for good measure
        server = _start(url, port[0], log)
        for thread in threads:
            thread.join(timeout=150)
        assert not any(thread.is_alive() for thread in threads), "clients did not finish"
    finally:
        if server.poll() is None:
            _kill(server)
    _assert_exactly_once(engine, book)


def _assert_exactly_once(engine: Engine, book: Ledgerbook) -> None:
    """Every request got a final answer; what was accepted is stored once, what was refused not at
    all; each survey link holds one answer; the ledger audit balances."""
    keys = {key for c in range(CLIENTS) for key, *_ in _requests(c)}
    assert set(book.answers) == keys, "every request got a final answer"
    accepted = {key for key, status in book.answers.items() if status in (200, 201)}
    with read_session(engine) as session:
        transactions = set(session.scalars(select(CardTransaction.id)))
        refunds = set(session.scalars(select(Refund.id)))
        redemptions = set(session.scalars(select(Redemption.id)))
        assert transactions == {k for k in accepted if k.startswith("T")}
        assert refunds == {k for k in accepted if k.startswith("R")}
        assert redemptions == {k for k in accepted if k.startswith("D")}
        # A survey answer whose first reply was lost is retried on a used link: 409 means it is in.
        answered = {k for k, status in book.answers.items() if k.startswith("S") and status in (200, 409)}
        assert answered == {k for k in keys if k.startswith("S")}
        invited = {invitations.invitation_id_for(k): k for k in answered}
        stored = list(session.scalars(select(Answer.invitation_id).where(Answer.invitation_id.is_not(None))))
        assert sorted(stored) == sorted(invited), "each link holds exactly one answer"
        assert ledger.audit(session)["ok"], ledger.audit(session)
        assert session.execute(select(func.count()).select_from(CardTransaction)).scalar_one() == len(
            transactions
        )


@pytest.fixture
def proxy(engine: Engine) -> Iterator[NetProxy]:
    assert engine.dialect.name == "postgresql", "a database outage is cut at the network"
    url = engine.url
    found = NetProxy((url.host or "127.0.0.1", url.port or 5432))
    found.start()
    yield found
    found.close()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQLite is a file: no network to cut
def test_a_database_outage_answers_503_then_recovers_by_itself(
    engine: Engine, clock: FrozenClock, proxy: NetProxy, tmp_path: Path
) -> None:
    token = _world(engine, clock)
    proxied = make_url(engine.url.render_as_string(hide_password=False)).set(
        host="127.0.0.1", port=proxy.port
    )
    port = _free_port()
    server = _start(proxied.render_as_string(hide_password=False), port, tmp_path / "serve.log")
    headers = {"Authorization": f"Bearer {token}"}
    base = f"http://127.0.0.1:{port}"

    def earn(tx: str) -> httpx.Response:
        body = {
            "id": tx,
            "member_ref": "F1",
            "amount": "20.00",
            "currency": "EUR",
            "merchant": "Fault Store",
            "category": "books",
            "occurred_at": "2026-01-01T10:00:00Z",
        }
        return httpx.post(f"{base}/v1/transactions", json=body, headers=headers, timeout=30)

    try:
        assert earn("UP-1").status_code == 201
        proxy.stop()
        down = earn("DOWN-1")
        assert down.status_code == 503, down.text
        assert down.headers["content-type"].startswith("application/problem+json")
        assert down.json()["type"].endswith("database-unavailable") and down.headers["Retry-After"]
        assert httpx.get(f"{base}/healthz", timeout=10).status_code == 503
        proxy.start()
        deadline = time.monotonic() + 120
        answer = earn("DOWN-1")  # the same key, retried after the outage
        while answer.status_code == 503 and time.monotonic() < deadline:
            time.sleep(0.5)
            answer = earn("DOWN-1")
        assert answer.status_code == 201, answer.text
        assert earn("DOWN-1").headers.get("Idempotent-Replayed") == "true"
        assert httpx.get(f"{base}/healthz", timeout=10).json()["database"] == "ok"
    finally:
        _kill(server)
    with read_session(engine) as session:
        assert set(session.scalars(select(CardTransaction.id))) == {"UP-1", "DOWN-1"}
        assert ledger.audit(session)["ok"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)  # SQLite is a file: no network to cut
def test_a_database_outage_in_the_middle_of_a_load_loses_nothing_and_doubles_nothing(
    engine: Engine, clock: FrozenClock, proxy: NetProxy, tmp_path: Path
) -> None:
    """The database goes away while clients earn, refund, redeem and answer surveys: they get 503s
    (or cut connections) and retry with the same keys; when it returns everything lands once."""
    token = _world(engine, clock)
    proxied = make_url(engine.url.render_as_string(hide_password=False)).set(
        host="127.0.0.1", port=proxy.port
    )
    port = [_free_port()]
    server = _start(proxied.render_as_string(hide_password=False), port[0], tmp_path / "serve.log")
    book = Ledgerbook()
    threads = [
        threading.Thread(target=_client, args=(port, token, c, book, 120.0), daemon=True)
        for c in range(CLIENTS)
    ]
    try:
        for thread in threads:
            thread.start()
        planned = sum(len(_requests(c)) for c in range(CLIENTS))
        deadline = time.monotonic() + 120
        while len(book.answers) < 20 and time.monotonic() < deadline:
            time.sleep(0.05)  # wait until the load is flowing
        proxy.stop()
        answered_before = len(book.answers)
        assert answered_before < planned, "the outage must land in the middle of the load"
        health = httpx.get(f"http://127.0.0.1:{port[0]}/healthz", timeout=10)
        assert health.status_code == 503, health.text
        time.sleep(2.0)  # clients keep trying (and keep being answered 503) while it is down
        proxy.start()
        for thread in threads:
            thread.join(timeout=150)
        assert not any(thread.is_alive() for thread in threads), "clients did not finish"
    finally:
        _kill(server)
    _assert_exactly_once(engine, book)
