"""Every error is RFC 9457 ``application/problem+json`` with a stable ``type`` and, when one field is to
blame, that field."""

from __future__ import annotations

from typing import Any

import pytest
import structlog
from sqlalchemy import Engine, text

from prevenance.common.problems import PROBLEM_BASE
from prevenance.loyalty import service
from tests.conftest import Api, member_body, tx_body

PROBLEM = "application/problem+json"


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """The response is a complete problem document with this status (and field)."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].split(";")[0].strip() == PROBLEM
    problem = response.json()
    assert isinstance(problem["type"], str) and problem["type"].startswith(PROBLEM_BASE)
    assert isinstance(problem["title"], str) and problem["title"]
    assert problem["status"] == status
    assert isinstance(problem["detail"], str) and problem["detail"]
    if field is not None:
        assert problem["field"] == field, problem
    return dict(problem)


def _raw_post(api: Api, path: str, content: bytes, role: str = "integrator") -> Any:
    headers = {**api.headers(role), "Content-Type": "application/json"}
    return api.client.post(path, content=content, headers=headers)


@pytest.mark.parametrize("content", [b"{not json", b'{"id": "T1",', b"\xff\xfe", b"nul"])
def test_malformed_json_is_a_422_problem(api: Api, content: bytes) -> None:
    problem = assert_problem(_raw_post(api, "/v1/transactions", content), 422)
    assert problem["type"] == PROBLEM_BASE + "invalid-input"
    assert "field" in problem
    assert problem["instance"] == "/v1/transactions"


def test_malformed_json_blames_the_body(api: Api) -> None:
    assert_problem(_raw_post(api, "/v1/transactions", b"{not json"), 422, "body")


def test_a_missing_body_blames_the_body(api: Api) -> None:
    response = api.client.post("/v1/transactions", headers=api.headers("integrator"))
    assert_problem(response, 422, "body")


def test_a_body_that_is_not_an_object_blames_the_body(api: Api) -> None:
    assert_problem(api.post("/v1/transactions", [1, 2], role="integrator"), 422, "body")


def test_missing_fields_are_named_first_one_in_field_all_in_errors(api: Api) -> None:
    problem = assert_problem(api.post("/v1/transactions", {}, role="integrator"), 422, "id")
    assert problem["type"] == PROBLEM_BASE + "invalid-input"
    assert {e["field"] for e in problem["errors"]} == {
        "id",
        "member_ref",
        "amount",
        "currency",
        "merchant",
        "category",
        "occurred_at",
    }
    assert all(e["type"] == "missing" for e in problem["errors"])


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"amount": 12.5}, "amount"),
        ({"occurred_at": "yesterday"}, "occurred_at"),
        ({"currency": "EURO"}, "currency"),
        ({"merchant": ""}, "merchant"),
        ({"id": ""}, "id"),
    ],
)
def test_a_wrongly_typed_field_is_named(api: Api, overrides: dict[str, Any], field: str) -> None:
    api.put("/v1/members/M1", member_body())
    assert_problem(
        api.post("/v1/transactions", tx_body("T1", "M1", **overrides), role="integrator"), 422, field
    )
    assert api.get("/v1/members/M1/balance").json()["points"] == 0


def test_an_absurd_amount_is_a_422_not_a_database_overflow(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    huge = tx_body("T1", "M1", "99999999999999999999.00")
    assert_problem(api.post("/v1/transactions", huge, role="integrator"), 422, "amount")
    assert (
        api.post("/v1/transactions", tx_body("T2", "M1", "999999999999.99"), role="integrator").status_code
        == 201
    )


def test_a_bad_query_parameter_is_named(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    assert_problem(api.get("/v1/members/M1/movements", params={"limit": 0}), 422, "limit")
    assert_problem(api.get("/v1/members/M1/movements", params={"limit": "many"}), 422, "limit")
    assert_problem(api.get("/v1/members/M1/movements", params={"cursor": "forged"}), 422, "cursor")


@pytest.mark.parametrize("path", ["/nope", "/v1/nope", "/v1/members/M1/nope", "/v2/members/M1"])
def test_an_unknown_path_is_a_404_problem(api: Api, path: str) -> None:
    for response in (api.client.get(path), api.get(path)):
        problem = assert_problem(response, 404)
        assert problem["type"] == PROBLEM_BASE + "not-found"
        assert problem["instance"] == path


def test_a_wrong_method_is_a_405_problem(api: Api) -> None:
    problem = assert_problem(api.client.delete("/v1/catalogue", headers=api.headers("admin")), 405)
    assert problem["type"] == PROBLEM_BASE + "method-not-allowed"


def test_an_unknown_member_in_the_path_is_a_404_problem(api: Api) -> None:
    problem = assert_problem(api.get("/v1/members/NOBODY"), 404, "ref")
    assert problem["type"] == PROBLEM_BASE + "unknown-member"


def test_authentication_problems(api: Api) -> None:
    missing = api.client.get("/v1/members/M1")
    assert assert_problem(missing, 401)["type"] == PROBLEM_BASE + "unauthenticated"
    assert missing.headers["www-authenticate"] == "Bearer"
    assert_problem(api.client.get("/v1/members/M1", headers={"Authorization": "Bearer nope"}), 401)
    assert_problem(api.client.get("/v1/members/M1", headers={"Authorization": "Basic abc"}), 401)
    forbidden = assert_problem(api.get("/v1/ledger/audit", role="agent"), 403)
    assert forbidden["type"] == PROBLEM_BASE + "forbidden"


def test_every_error_response_is_problem_json(api: Api) -> None:
    """One request for each way the contract can refuse, all answered alike."""
    api.put("/v1/members/M1", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1", "10.00"), role="integrator")
    api.put("/v1/catalogue/MUG", {"name": "Mug", "points": 100, "stock": 0}, role="marketing")
    refusals: list[tuple[str, str, Any, str, int]] = [
        ("GET", "/v1/members/M1", None, "none", 401),
        ("POST", "/v1/transactions", tx_body("T2", "M1"), "supervisor", 403),
        ("GET", "/v1/members/NOBODY/balance", None, "admin", 404),
        ("POST", "/v1/transactions/NOPE/refunds", {"id": "R1", "amount": "1.00"}, "integrator", 404),
        ("POST", "/v1/redemptions/NOPE/confirm", None, "concierge", 404),
        ("POST", "/v1/partners/NOPE/ecodes", {"points": 1, "codes": ["A"]}, "marketing", 404),
        ("POST", "/v1/transactions", tx_body("T1", "M1", "99.00"), "integrator", 409),
        ("POST", "/v1/members/M1/redemptions", {"id": "X1", "kind": "catalogue", "sku": "MUG"}, "agent", 409),
        ("POST", "/v1/transactions", tx_body("T3", "NOBODY"), "integrator", 422),
        ("POST", "/v1/transactions/T1/refunds", {"id": "R2", "amount": "11.00"}, "integrator", 422),
        ("POST", "/v1/referrals", {"referrer_ref": "M1", "referee_ref": "M1"}, "agent", 422),
        ("PUT", "/v1/members/M2", member_body(country="ZZ"), "agent", 422),
        ("PUT", "/v1/programme", {"products": {}}, "admin", 422),
    ]
    for method, path, body, role, status in refusals:
        headers = api.headers(role) if role != "none" else {}
        response = api.client.request(method, path, json=body, headers=headers)
        problem = assert_problem(response, status)
        assert problem["instance"] == path, (method, path)


def test_a_broken_ledger_is_a_loud_500_problem(api: Api, engine: Engine) -> None:
    api.put("/v1/members/M1", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1", "10.00"), role="integrator")
    with engine.begin() as connection:
        connection.execute(text("UPDATE accounts SET balance = balance + 1 WHERE member_id IS NOT NULL"))
    problem = assert_problem(api.get("/v1/ledger/audit"), 500)
    assert problem["type"] == PROBLEM_BASE + "ledger-invariant-broken"
    failed = {c["name"] for c in problem["report"]["checks"] if not c["ok"]}
    assert "member_balance_equals_postings" in failed


def test_an_unexpected_error_is_a_500_problem_that_leaks_nothing(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    def explode(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("secret connection string postgres://u:p@db")

    logged: list[tuple[str, dict[str, Any]]] = []

    class Logger:
        def exception(self, event: str, **values: Any) -> None:
            logged.append((event, values))

    monkeypatch.setattr(service, "get_balance", explode)
    monkeypatch.setattr(structlog, "get_logger", lambda *args, **kwargs: Logger())
    problem = assert_problem(api.get("/v1/members/M1/balance"), 500)
    assert problem["type"] == PROBLEM_BASE + "internal-error"
    assert "secret" not in problem["detail"]
    assert logged == [("unhandled_error", {"path": "/v1/members/M1/balance"})]
