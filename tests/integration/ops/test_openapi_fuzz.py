"""schemathesis over the whole OpenAPI: generated requests (valid and invalid) on every operation,
with an admin key, on a migrated SQLite database and on a PostgreSQL database of its own: no 5xx,
and every response conforms to the documented schema (status code, content type, headers, body).
PostgreSQL enforces what SQLite does not (a text longer than its column is refused): on SQLite alone
the fuzz never saw a path parameter or a derived key longer than its column answer 500.

Not checked: ``positive_data_acceptance`` (a schema-valid body may still be refused by a business
rule: an unknown member, a month in the future — those are documented 404/409/422 problems),
``negative_data_rejection`` (pydantic accepts a number as a datetime, a timestamp, on purpose) and
``allow_header_conformance`` (Starlette's 405 lists the methods of the first route matching the
path, not of every route on it)."""

from __future__ import annotations

import atexit
import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks
from sqlalchemy import create_engine, make_url, text

from prevenance.app import create_app
from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import make_engine, unit_of_work
from prevenance.loyalty import programme
from prevenance.migrate import upgrade
from tests.conftest import POSTGRES_URL, _worker, missing_server


def _app_and_key(url: str | None = None) -> tuple[object, str]:
    """A migrated database (by default SQLite in a temporary folder, removed with the process's temp
    files), the shipped programme and an admin key."""
    if url is None:
        folder = Path(tempfile.mkdtemp(prefix="prevenance-fuzz-"))
        url = f"sqlite:///{folder / 'db.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    clock = FrozenClock()
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=clock.now())
        key = create_key(session, role="admin", name="fuzz", now=clock.now())[1]
    return create_app(engine=engine, clock=clock), key


APP, KEY = _app_and_key()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
]
FUZZ = settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)


@schema.parametrize()
@FUZZ
def test_no_server_error_and_responses_conform(case: schemathesis.Case) -> None:
    case.call_and_validate(headers={"Authorization": f"Bearer {KEY}"}, checks=CHECKS)


def _postgres_app_and_key() -> tuple[object, str]:
    """The app on a PostgreSQL database of this process's own (apart from the one other tests
    empty), dropped when the process exits."""
    assert POSTGRES_URL
    base = make_url(POSTGRES_URL)
    name = f"{base.database}_fuzz_{_worker()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))

    drop()
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    atexit.register(admin.dispose)
    atexit.register(drop)
    return _app_and_key(base.set(database=name).render_as_string(hide_password=False))


if POSTGRES_URL:
    PG_APP, PG_KEY = _postgres_app_and_key()
    on_postgresql = schemathesis.openapi.from_asgi("/openapi.json", PG_APP)

    @on_postgresql.parametrize()
    @FUZZ
    def test_no_server_error_and_responses_conform_on_postgresql(case: schemathesis.Case) -> None:
        case.call_and_validate(headers={"Authorization": f"Bearer {PG_KEY}"}, checks=CHECKS)

else:

    def test_no_server_error_and_responses_conform_on_postgresql() -> None:
        missing_server("the PostgreSQL fuzz needs PREVENANCE_TEST_POSTGRES_URL")
