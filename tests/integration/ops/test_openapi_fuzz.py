"""schemathesis over the whole OpenAPI: generated requests (valid and invalid) on every operation,
with an admin key, on a migrated SQLite database: no 5xx, and every response conforms to the
documented schema (status code, content type, headers, body).

Not checked: ``positive_data_acceptance`` (a schema-valid body may still be refused by a business
rule: an unknown member, a month in the future — those are documented 404/409/422 problems),
``negative_data_rejection`` (pydantic accepts a number as a datetime, a timestamp, on purpose) and
``allow_header_conformance`` (Starlette's 405 lists the methods of the first route matching the
path, not of every route on it)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import checks

from prevenance.app import create_app
from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import make_engine, unit_of_work
from prevenance.loyalty import programme
from prevenance.migrate import upgrade


def _app_and_key() -> tuple[object, str]:
    """A migrated SQLite database in a temporary folder (removed with the process's temp files)."""
    folder = Path(tempfile.mkdtemp(prefix="prevenance-fuzz-"))
    engine = make_engine(f"sqlite:///{folder / 'db.sqlite'}")
    upgrade(engine)
    clock = FrozenClock()
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=clock.now())
        key = create_key(session, role="admin", name="fuzz", now=clock.now())[1]
    return create_app(engine=engine, clock=clock), key


APP, KEY = _app_and_key()
schema = schemathesis.openapi.from_asgi("/openapi.json", APP)


@schema.parametrize()
@settings(max_examples=4, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_no_server_error_and_responses_conform(case: schemathesis.Case) -> None:
    case.call_and_validate(
        headers={"Authorization": f"Bearer {KEY}"},
        checks=[
            checks.not_a_server_error,
            checks.status_code_conformance,
            checks.content_type_conformance,
            checks.response_headers_conformance,
            checks.response_schema_conformance,
        ],
    )
