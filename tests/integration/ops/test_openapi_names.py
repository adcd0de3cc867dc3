"""The names client generators build from: an ASCII title, one short snake_case operation id per
operation, and no two component schemas sharing a title (a generator keeps one and drops the
operations using the other)."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

import pytest

from prevenance.app import create_app
from prevenance.db import make_engine

SNAKE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


@pytest.fixture(scope="module")
def document(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('names') / 'db.sqlite'}")
    try:
        return create_app(engine=engine).openapi()
    finally:
        engine.dispose()


def _operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in {"get", "put", "post", "delete", "patch"}
    ]


def test_title_is_ascii_so_the_generated_package_name_is_valid(document: dict[str, Any]) -> None:
    assert document["info"]["title"].isascii() and re.fullmatch(
        r"[A-Za-z][A-Za-z ]*", document["info"]["title"]
    )


def test_operation_ids_are_unique_short_and_snake_case(document: dict[str, Any]) -> None:
    ids = [operation.get("operationId") for _, _, operation in _operations(document)]
    assert len(ids) > 50 and all(ids)
    assert [name for name, count in Counter(ids).items() if count > 1] == []
    assert [name for name in ids if not SNAKE.match(name) or len(name) > 40] == []
    assert not [name for name in ids if re.search(r"_(get|put|post|delete|patch)$", name) and "v1" in name]
    by_path = {(path, method): operation["operationId"] for path, method, operation in _operations(document)}
    assert by_path[("/v1/transactions", "post")] == "post_transaction"
    assert by_path[("/v1/members/{ref}/balance", "get")] == "get_balance"
    assert by_path[("/v1/partners", "get")] == "get_partners"
    assert by_path[("/v1/concierge-partners", "get")] == "get_concierge_partners"
    assert by_path[("/v1/offers/{id}/pause", "post")] == "pause_offer"


def test_no_two_component_schemas_share_a_title(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    titles = Counter(schema.get("title", name) for name, schema in schemas.items())
    assert [title for title, count in titles.items() if count > 1] == []
    assert [name for name in schemas if "__" in name] == []  # FastAPI's module-qualified fallback


def test_the_rules_the_api_enforces_are_stated_in_the_schema(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    transaction = schemas["TransactionCreate"]["properties"]
    assert (
        transaction["amount"]["pattern"].startswith("^")
        and transaction["currency"]["pattern"] == "^[A-Z]{3}$"
    )
    assert schemas["RefundCreate"]["properties"]["amount"]["pattern"] == transaction["amount"]["pattern"]
    member = schemas["MemberPut"]["properties"]
    assert member["email"]["format"] == "email"
    assert member["language"]["enum"] == ["fr", "en"]
    assert member["country"]["pattern"] == "^[A-Za-z]{2}$"
    put_member = document["paths"]["/v1/members/{ref}"]["put"]
    (ref,) = [p for p in put_member["parameters"] if p["name"] == "ref"]
    assert ref["schema"]["pattern"].startswith("^[A-Za-z0-9]")
