"""Shared fixtures: a migrated database per test, on SQLite always and on PostgreSQL when
``PREVENANCE_TEST_POSTGRES_URL`` is set. With ``CI=true`` a missing or unreachable PostgreSQL
fails the run instead of skipping."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest
from fastapi.testclient import TestClient
from hypothesis import settings as hypothesis_settings
from sqlalchemy import Connection, Engine, Table, create_engine, event, text
from sqlalchemy.engine import make_url

from prevenance.app import create_app
from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import make_engine, unit_of_work
from prevenance.loyalty import programme
from prevenance.metadata import metadata
from prevenance.migrate import upgrade
from prevenance.settings import get_settings

# Property tests never fail for being slow: the machines running the suite are shared and busy.
hypothesis_settings.register_profile("prevenance", deadline=None)
hypothesis_settings.load_profile("prevenance")

POSTGRES_URL = os.environ.get("PREVENANCE_TEST_POSTGRES_URL")


def in_ci() -> bool:
    """CI systems say CI=true (``.ci/run``, GitHub, GitLab) or CI=1: every server must be there."""
    return os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


BACKENDS = ["sqlite", "postgresql"]


def _worker() -> str:
    """This test process's name: the xdist worker, or the process id (so runs side by side on one
    server never drop each other's database)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        return f"{worker}_{os.environ.get('PYTEST_XDIST_TESTRUNUID', '')[:8]}"
    return f"p{os.getpid()}"


def missing_server(what: str) -> NoReturn:
    """A server or browser a test needs is not there: a failure with ``CI=true`` (CI runs every
    test against the real thing), a skip naming what is missing elsewhere."""
    if in_ci():
        pytest.fail(f"CI=true but {what}: every test must run in CI", pytrace=False)
    pytest.skip(f"{what} (skipped outside CI only; with CI=true this fails)")


def postgres_url() -> str:
    """The PostgreSQL URL for this worker's database; fail in CI, skip elsewhere, when absent."""
    if not POSTGRES_URL:
        missing_server("PostgreSQL tests need PREVENANCE_TEST_POSTGRES_URL")
    return POSTGRES_URL


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (migrating once is the slow part)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A database of this xdist worker's own, migrated once."""
    base = make_url(postgres_url())
    name = f"{base.database}_{_worker()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        pytest.fail(f"PostgreSQL at {base.render_as_string(hide_password=True)} is unreachable: {error}")
    admin.dispose()
    url = base.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    yield url
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def empty_tables(connection: Connection, tables: list[Table] | None = None) -> None:
    """Empty tables for a fresh start inside a test. Postings are append-only (database triggers
    refuse UPDATE and DELETE): PostgreSQL's TRUNCATE fires no row trigger; on SQLite the triggers
    are dropped for the wipe and recreated from their stored definition."""
    tables = list(metadata.sorted_tables) if tables is None else tables
    if connection.dialect.name == "postgresql":
        names = ", ".join(f'"{t.name}"' for t in tables)
        connection.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        return
    triggers = connection.execute(text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")).all()
    for name, _ in triggers:
        connection.execute(text(f'DROP TRIGGER "{name}"'))
    for table in reversed(tables):
        connection.execute(table.delete())
    for _, sql in triggers:
        connection.execute(text(sql))


def _truncate_all(engine: Engine) -> None:
    with engine.begin() as connection:
        empty_tables(connection)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
def engine(
    backend: str, request: pytest.FixtureRequest, tmp_path: Path, clock: FrozenClock
) -> Iterator[Engine]:
    """A migrated, empty database with the shipped programme installed."""
    if backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "test.db"
        shutil.copy(template, path)
        db = make_engine(f"sqlite:///{path}", busy_timeout_ms=60_000)
    else:
        url = request.getfixturevalue("postgres_database")
        db = make_engine(url)
        _truncate_all(db)
    with unit_of_work(db) as session:
        programme.install_default_if_missing(session, now=clock.now())
    yield db
    db.dispose()


@dataclass
class Api:
    """A test client with one API key per role: ``api.as_("integrator").post(...)``."""

    client: TestClient
    keys: dict[str, str]

    def headers(self, role: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.keys[role]}"}

    def get(self, path: str, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.get(path, headers=self.headers(role), **kwargs)

    def post(self, path: str, json: Any = None, role: str = "admin", **kwargs: Any) -> Any:
        headers = {**self.headers(role), **kwargs.pop("headers", {})}
        return self.client.post(path, json=json, headers=headers, **kwargs)

    def put(self, path: str, json: Any = None, role: str = "admin", **kwargs: Any) -> Any:
        return self.client.put(path, json=json, headers=self.headers(role), **kwargs)


ROLES = ("admin", "marketing", "supervisor", "agent", "concierge", "integrator")


@pytest.fixture
def api(engine: Engine, clock: FrozenClock) -> Iterator[Api]:
    """The application over the test database, with a key for every staff role."""
    keys: dict[str, str] = {}
    with unit_of_work(engine) as session:
        for role in ROLES:
            _, secret = create_key(session, role=role, name=f"test-{role}", now=clock.now())
            keys[role] = secret
    app = create_app(engine=engine, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, keys=keys)


def member_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "Camille Martin",
        "email": "camille@example.fr",
        "language": "fr",
        "country": "FR",
        "product": "gold",
    }
    body.update(overrides)
    return body


def contact_body(member_ref: str = "P1", contact_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    """A desk contact (a lost card, by phone) for ``member_ref``; with ``contact_id`` its id."""
    body: dict[str, Any] = {
        "member_ref": member_ref,
        "channel": "phone",
        "direction": "inbound",
        "agent": "a1",
        "team": "t1",
        "reason": "card.lost_stolen",
        "started_at": "2026-01-01T10:00:00Z",
        "ended_at": "2026-01-01T10:05:00Z",
        "outcome": "pending",
    }
    if contact_id is not None:
        body["id"] = contact_id
    body.update(overrides)
    return body


def tx_body(tx_id: str, member_ref: str, amount: str = "42.50", **overrides: Any) -> dict[str, Any]:
    body = {
        "id": tx_id,
        "member_ref": member_ref,
        "amount": amount,
        "currency": "EUR",
        "merchant": "Librairie",
        "category": "books",
        "occurred_at": "2026-01-01T10:00:00Z",
    }
    body.update(overrides)
    return body


@contextmanager
def statements_sent(engine: Engine) -> Iterator[list[str]]:
    """Every statement the engine sends while the block runs, in order (a test counts round trips
    by what is sent, never by timing)."""
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(engine, "before_cursor_execute", record)


@pytest.fixture
def cli_env(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """The command line pointed at the test database (its settings read afresh before and after)."""
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield engine
    get_settings.cache_clear()
