"""Reads never write: every ``GET`` runs in a read session that issues no INSERT, UPDATE or DELETE
(a member without an account reads as balance 0 and no movements), so a read never waits for the
write lock and never answers 503 because writers are busy. Checked by counting the statements a
read session sends (a SQLAlchemy event), not by timing; on SQLite and PostgreSQL.

The customer access log (``access_audit``) is written after the answer, in a transaction of its
own: that is an audit of the read, not part of it, and is not counted here."""

from __future__ import annotations

import re
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import uvicorn
from sqlalchemy import Engine, event, func, select
from sqlalchemy.exc import DBAPIError

from prevenance.app import create_app
from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.console import users
from prevenance.db import in_read_session, read_session, unit_of_work
from prevenance.loyalty.tables import Account
from tests.conftest import Api, member_body, tx_body
from tests.integration.console.support import PASSWORD, browser, sign_in
from tests.integration.ops.test_authorization_matrix import v1_routes
from tests.races import race

_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE|REPLACE|UPSERT|MERGE|CREATE|DROP|ALTER)\b", re.I)


@contextmanager
def read_session_writes(engine: Engine) -> Iterator[list[str]]:
    """Collect every write statement sent from inside a read session while the block runs."""
    writes: list[str] = []
    lock = threading.Lock()

    def before(conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if in_read_session(conn) and _WRITE.match(statement):
            with lock:
                writes.append(statement.split("\n")[0][:120])

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield writes
    finally:
        event.remove(engine, "before_cursor_execute", before)


@contextmanager
def served(app: Any) -> Iterator[str]:
    """The application served by uvicorn on a free 127.0.0.1 port, in a thread of this process."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()
    while not started.wait(0.02):
        if server.started:
            started.set()
        assert thread.is_alive(), "uvicorn did not start"
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def _accounts(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Account)) or 0)


def _member_key(engine: Engine, clock: FrozenClock, ref: str) -> dict[str, str]:
    with unit_of_work(engine) as session:
        _, secret = create_key(session, role="member", member_ref=ref, name=f"app-{ref}", now=clock.now())
    return {"Authorization": f"Bearer {secret}"}


def test_the_movements_of_a_member_who_earned_only_points_are_read_without_writing(
    api: Api, engine: Engine
) -> None:
    assert api.put("/v1/members/M1", member_body()).status_code == 201
    assert api.post("/v1/transactions", tx_body("T1", "M1", "20.00"), role="integrator").status_code == 201
    accounts = _accounts(engine)  # points only: the member has no miles account
    with read_session_writes(engine) as writes:
        response = api.get("/v1/members/M1/movements", role="agent")
        balance = api.get("/v1/members/M1/balance", role="agent")
        whole = api.get("/v1/members/M1/360", role="agent")
    assert response.status_code == 200, response.text
    assert [(m["reason"], m["amount"]) for m in response.json()["items"]] == [("earn", 20)]
    assert balance.json() == {"member_ref": "M1", "points": 20, "miles": 0}
    assert whole.status_code == 200 and [m["amount"] for m in whole.json()["last_movements"]] == [20]
    assert writes == []
    assert _accounts(engine) == accounts


def test_a_member_without_any_account_reads_as_zero_and_no_movements(api: Api, engine: Engine) -> None:
    assert api.put("/v1/members/NEW", member_body()).status_code == 201
    accounts = _accounts(engine)
    with read_session_writes(engine) as writes:
        movements = api.get("/v1/members/NEW/movements", role="agent")
        balance = api.get("/v1/members/NEW/balance", role="agent")
    assert (movements.status_code, movements.json()["items"]) == (200, [])
    assert balance.json() == {"member_ref": "NEW", "points": 0, "miles": 0}
    assert writes == []
    assert _accounts(engine) == accounts


def test_a_spend_shows_negative_in_the_movements_read_without_writing(api: Api, engine: Engine) -> None:
    assert api.put("/v1/members/M1", member_body()).status_code == 201
    api.post("/v1/transactions", tx_body("T1", "M1", "900.00"), role="integrator")
    assert api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 100, "stock": 5}).status_code == 201
    spent = api.post(
        "/v1/members/M1/redemptions", {"id": "R1", "kind": "catalogue", "sku": "MUG", "quantity": 1}
    )
    assert spent.status_code == 201, spent.text
    with read_session_writes(engine) as writes:
        items = api.get("/v1/members/M1/movements", role="agent").json()["items"]
    assert [(m["reason"], m["amount"]) for m in items] == [("redemption_catalogue", -100), ("earn", 900)]
    assert writes == []


def _path(path: str, ref: str) -> str:
    return re.sub(r"\{[^}]+\}", lambda m: ref if m.group(0) == "{ref}" else "X1", path)


def test_no_get_route_and_no_portal_page_writes_in_its_read_session(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """Every GET of the API, for a member who earned points only and one who never transacted, as
    admin and as the member's own key; and the member portal's page."""
    for ref in ("M1", "M2"):
        assert api.put(f"/v1/members/{ref}", member_body(product="platinum")).status_code == 201
    assert api.post("/v1/transactions", tx_body("T1", "M1", "50.00"), role="integrator").status_code == 201
    own = {ref: _member_key(engine, clock, ref) for ref in ("M1", "M2")}
    with unit_of_work(engine) as session:
        users.create_user(
            session,
            username="member1",
            password=PASSWORD,
            role="member",
            language="fr",
            member_ref="M1",
            now=clock.now(),
        )
    routes = [(m, p) for m, p, _ in v1_routes(api.client.app) if m == "GET"]
    assert len(routes) > 40
    failures: list[str] = []
    with read_session_writes(engine) as writes:
        for _, path in routes:
            for ref in ("M1", "M2"):
                for headers in (api.headers("admin"), own[ref]):
                    status = api.client.get(_path(path, ref), headers=headers).status_code
                    if status >= 500:
                        failures.append(f"GET {path} for {ref}: {status}")
        portal = browser(api)
        assert sign_in(portal, "member1").status_code in (302, 303)
        assert portal.get("/portal/").status_code == 200
    assert not failures, failures
    assert writes == []


@pytest.mark.slow
def test_movements_reads_never_answer_503_while_earns_run(
    engine: Engine, clock: FrozenClock, api: Api
) -> None:
    """Concurrent earns and movements reads over HTTP (uvicorn, one thread per request): every read
    answers 200, every earn 201, and no read session sent a write."""
    refs = [f"R{i}" for i in range(8)]
    for ref in refs:
        assert api.put(f"/v1/members/{ref}", member_body()).status_code == 201
        assert (
            api.post("/v1/transactions", tx_body(f"T0-{ref}", ref, "10.00"), role="integrator").status_code
            == 201
        )
    agent, integrator = api.headers("agent"), api.headers("integrator")
    with served(create_app(engine=engine, clock=clock)) as base, read_session_writes(engine) as writes:

        def act(index: int) -> tuple[str, int]:
            ref = refs[index % len(refs)]
            with httpx.Client(base_url=base, timeout=120) as client:
                if index % 2:
                    body = tx_body(f"T{index}", ref, "12.00")
                    return "earn", client.post("/v1/transactions", json=body, headers=integrator).status_code
                return "read", client.get(f"/v1/members/{ref}/movements", headers=agent).status_code

        results = race(40, act)
    errors = [r for r in results if isinstance(r, BaseException)]
    assert not errors, errors[:3]
    answers = [r for r in results if isinstance(r, tuple)]
    assert sorted(set(answers)) == [("earn", 201), ("read", 200)], answers
    assert writes == []


def test_a_read_session_refuses_to_write(engine: Engine) -> None:
    """The read session is read-only on the database itself, so a write slipped into a read path
    fails in every test that reaches it instead of waiting for, or breaking on, the write lock."""
    accounts = _accounts(engine)
    insert = Account.__table__.insert().values(code="x", unit="points", balance=0, tracks_balance=False)
    with pytest.raises(DBAPIError), read_session(engine) as session:
        session.execute(insert)
    assert _accounts(engine) == accounts
    with unit_of_work(engine) as session:  # the same pooled connection writes again afterwards
        session.execute(insert)
    assert _accounts(engine) == accounts + 1
    if engine.dialect.name == "sqlite":
        with engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA query_only").scalar() == 0
