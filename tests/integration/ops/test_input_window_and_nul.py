"""Dates outside the accepted window and NUL characters are the caller's mistakes: 422 problem+json
naming the field, on SQLite and PostgreSQL, and nothing written.

They used to answer 500: ``0001-01-01T00:00:00Z`` and ``9999-12-31T23:59:59-05:00`` overflowed the
conversions to UTC, and PostgreSQL refuses a NUL in text ("cannot contain NUL (0x00) bytes"). The
window is ``[2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z)`` (``common.inputs``)."""

from __future__ import annotations

import datetime as dt
import typing
from typing import Any

import pytest
from fastapi.routing import APIRoute
from pydantic import BaseModel
from sqlalchemy import Engine, func, select, text

from prevenance.common import inputs
from prevenance.customers.tables import Member
from prevenance.db import read_session
from prevenance.desk.tables import Contact
from prevenance.loyalty.tables import CardTransaction
from tests.conftest import Api, member_body, tx_body
from tests.integration.desk.test_contacts_contract import contact_body
from tests.integration.offers.conftest import offer_def

OUTSIDE = [
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59-05:00",
    "1999-12-31T23:59:59Z",
    "2100-01-01T00:00:00Z",
    "2099-12-31T23:00:00-05:00",  # 2100-01-01T04:00Z once in UTC
    -1,
]


def count(engine: Engine, model: Any) -> int:
    with read_session(engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def assert_problem(response: Any, field: str) -> dict[str, Any]:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["field"] == field, body
    assert body["type"] == "https://prevenance.dev/problems/invalid-input"
    return body


# --- the window -----------------------------------------------------------------------------------


@pytest.mark.parametrize("moment", OUTSIDE)
def test_a_transaction_dated_outside_the_window_is_422_naming_occurred_at(
    api: Api, engine: Engine, moment: Any
) -> None:
    api.put("/v1/members/M1", member_body())
    response = api.post("/v1/transactions", tx_body("T1", "M1", occurred_at=moment), role="integrator")
    body = assert_problem(response, "occurred_at")
    assert "2000-01-01" in body["detail"] and "2100-01-01" in body["detail"]
    assert count(engine, CardTransaction) == 0


@pytest.mark.parametrize(
    "moment",
    ["2000-01-01T00:00:00Z", "2099-12-31T23:59:59Z", "2099-12-31T18:59:59-05:00", "2026-01-01T10:00:00"],
)
def test_the_edges_of_the_window_and_a_naive_instant_are_accepted(api: Api, moment: str) -> None:
    api.put("/v1/members/M1", member_body())
    response = api.post("/v1/transactions", tx_body("T1", "M1", occurred_at=moment), role="integrator")
    assert response.status_code == 201, response.text


def test_other_bodies_with_dates_refuse_the_same_way(api: Api, engine: Engine) -> None:
    api.put("/v1/members/M1", member_body())
    far = "9999-12-31T23:59:59-05:00"
    response = api.post("/v1/contacts", contact_body("C1", started_at=far), role="agent")
    assert_problem(response, "started_at")
    response = api.post("/v1/contacts", contact_body("C1", ended_at="0001-01-01T00:00:00Z"), role="agent")
    assert_problem(response, "ended_at")
    assert count(engine, Contact) == 0
    response = api.put("/v1/offers/later", offer_def(valid_until=far), role="marketing")
    assert_problem(response, "valid_until")
    response = api.put("/v1/offers/later", offer_def(valid_from="0001-01-01T00:00:00Z"), role="marketing")
    assert_problem(response, "valid_from")
    assert api.get("/v1/offers/later", role="marketing").status_code == 404


@pytest.mark.parametrize(
    ("path", "field"),
    [
        ("/v1/callbacks?due_before=0001-01-01T00:00:00Z", "due_before"),
        ("/v1/concierge-requests?due_before=9999-12-31T23:59:59-05:00", "due_before"),
        ("/v1/desk/reasons?month=0001-01", "month"),
        ("/v1/desk/fcr?month=9999-12", "month"),
        ("/v1/desk/card-replacements?month=1999-12", "month"),
        ("/v1/desk/benefits/attribution?month=2100-01", "month"),
        ("/v1/voice/scores?month=9999-12", "month"),
        ("/v1/voice/topics?month=0001-01", "month"),
        ("/v1/voice/countries?quarter=9999Q4", "quarter"),
        ("/v1/voice/barometers?quarter=0001Q1", "quarter"),
        ("/v1/benefits/usage?month=0001-01", "month"),
        ("/v1/benefits/usage/alerts?month=9999-12", "month"),
    ],
)
def test_query_dates_months_and_quarters_outside_the_window_are_422(api: Api, path: str, field: str) -> None:
    assert_problem(api.get(path), field)


def test_a_month_in_the_path_outside_the_window_is_422(api: Api) -> None:
    response = api.post("/v1/voice/scorecards/9999-12/publish", {"reason": "x"}, role="supervisor")
    assert_problem(response, "month")


def _flat_routes(routes: list[Any]) -> list[Any]:
    found: list[Any] = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "effective_route_contexts"):
            # WebSocket routes take no body nor dates: only the HTTP routes are walked.
            found.extend(
                c
                for c in route.effective_route_contexts()
                if isinstance(getattr(c, "original_route", c), APIRoute)
            )
    return found


def _unchecked_dates(annotation: Any, where: str, seen: set[Any]) -> list[str]:
    """Every ``datetime``/``date`` reached from ``annotation`` without the window's validator."""
    if typing.get_origin(annotation) is typing.Annotated:
        base, *metadata = typing.get_args(annotation)
        checked = any(getattr(m, "func", None) is inputs.moment for m in metadata)
        if base in (dt.datetime, dt.date) and checked:
            return []
        return _unchecked_dates(base, where, seen)
    if annotation in (dt.datetime, dt.date):
        return [where]
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        if annotation in seen:
            return []
        seen.add(annotation)
        found: list[str] = []
        for name, info in annotation.model_fields.items():
            rebuilt = (
                typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            )
            found += _unchecked_dates(rebuilt, f"{annotation.__name__}.{name}", seen)
        return found
    return [f for arg in typing.get_args(annotation) for f in _unchecked_dates(arg, where, seen)]


def test_every_date_the_api_accepts_is_checked_against_the_window(api: Api) -> None:
    """A new body or query field typed ``datetime`` is refused here until it uses ``Moment``."""
    unchecked: list[str] = []
    seen: set[Any] = set()

    def params(route: Any, dependant: Any) -> None:
        for param in [*dependant.query_params, *dependant.path_params, *dependant.body_params]:
            info = param.field_info
            annotation = (
                typing.Annotated[(info.annotation, *info.metadata)] if info.metadata else info.annotation
            )
            unchecked.extend(_unchecked_dates(annotation, f"{route.path} {param.name}", seen))
        for sub in dependant.dependencies:
            params(route, sub)

    routes = _flat_routes(api.client.app.routes)
    assert len(routes) > 50
    for route in routes:
        params(route, route.dependant)
    assert unchecked == []
    assert len(seen) > 10  # the walk did reach the body models


def test_the_window_is_described_in_the_openapi_document(api: Api) -> None:
    document = api.client.get("/openapi.json").text
    assert "2000-01-01T00:00:00Z" in document and "2100-01-01T00:00:00Z" in document
    assert "from 2000-01 to 2099-12" in document


# --- NUL characters -------------------------------------------------------------------------------


def test_a_nul_in_a_json_body_is_422_naming_the_field(api: Api, engine: Engine) -> None:
    response = api.put("/v1/members/M1", member_body(name="Camille\x00Martin"))
    assert_problem(response, "name")
    assert count(engine, Member) == 0
    api.put("/v1/members/M1", member_body())
    response = api.post("/v1/transactions", tx_body("T1", "M1", merchant="Libr\x00airie"), role="integrator")
    assert_problem(response, "merchant")
    response = api.post("/v1/transactions", tx_body("T\x001", "M1"), role="integrator")
    assert_problem(response, "id")
    assert count(engine, CardTransaction) == 0


def test_a_nul_in_a_nested_body_field_names_its_path(api: Api, engine: Engine) -> None:
    api.put("/v1/members/M1", member_body())
    response = api.put("/v1/offers/later", offer_def(reward={"points\x00": 100}), role="marketing")
    body = assert_problem(response, "reward.points\\x00")
    assert "\x00" not in response.text.replace("\\u0000", "")  # nothing unprintable echoed back
    assert "NUL" in body["detail"]


def test_a_nul_in_a_query_path_or_header_is_422(api: Api, engine: Engine) -> None:
    api.put("/v1/members/M1", member_body())
    assert_problem(api.get("/v1/desk/reasons?month=2026-01%00"), "month")
    assert_problem(api.get("/v1/contacts?member_ref=M%001"), "member_ref")
    assert_problem(api.get("/v1/members/M%001/balance"), "ref")
    response = api.post(
        "/v1/transactions", tx_body("T1", "M1"), role="integrator", headers={"Idempotency-Key": "k\x00"}
    )
    assert_problem(response, "idempotency-key")
    assert count(engine, CardTransaction) == 0


def test_a_key_is_checked_before_the_nul(api: Api) -> None:
    """No key: 401 as for any other request, whatever the path holds."""
    response = api.client.get("/v1/members/M%001/balance")
    assert response.status_code == 401
    response = api.client.post("/v1/transactions", json=tx_body("T1", "M1", merchant="a\x00"))
    assert response.status_code == 401


def test_an_escaped_backslash_is_no_nul(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    response = api.post("/v1/transactions", tx_body("T1", "M1", merchant="a\\u0000b"), role="integrator")
    assert response.status_code == 201, response.text


def test_a_nul_reaching_the_database_is_422_not_500(api: Api, engine: Engine, backend: str) -> None:
    """The last line of defence: PostgreSQL's refusal of a NUL is the caller's input (422)."""
    app = api.client.app

    @app.get("/test-only/echo")
    def echo() -> dict[str, Any]:
        with engine.connect() as connection:
            value = connection.execute(text("SELECT :v"), {"v": "a\x00b"}).scalar_one()
        return {"length": len(value)}

    response = api.client.get("/test-only/echo")
    if backend == "postgresql":
        assert_problem(response, "body")
    else:
        assert response.status_code == 200 and response.json() == {"length": 3}  # SQLite stores it
