"""The authorisation matrix, for every ``/v1`` route and every role: a role outside a route's
admitted roles gets 403, an admitted role never does (it may get 404 or 422 on the dummy request);
a member key reaches only its own member; no key gets 401 except on public routes. The matrix is
also written out (``docs/authorization.md``) and must match what the code enforces."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from prevenance.app import create_app
from prevenance.common.auth import Role, create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import make_engine, unit_of_work
from prevenance.loyalty import programme
from prevenance.migrate import upgrade

DOC = Path(__file__).resolve().parents[3] / "docs" / "authorization.md"
ALL_ROLES = tuple(role.value for role in Role)
PUBLIC = {"/healthz", "/metrics"}


def admitted_roles(route: Any) -> set[str] | None:
    """The roles a route admits, read from its ``require(...)`` dependency; None when public."""
    stack = list(route.dependant.dependencies)
    keyed = False
    while stack:
        dependency = stack.pop()
        roles = getattr(dependency.call, "admitted_roles", None)
        if roles is not None:
            return {role.value for role in roles}
        if getattr(dependency.call, "__name__", "") == "current_principal":
            keyed = True
        stack.extend(dependency.dependencies)
    return set(ALL_ROLES) if keyed else None


def _flat_routes(routes: list[Any]) -> Iterator[Any]:
    """Every endpoint: FastAPI (0.16x) keeps included routers as groups of effective routes."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "effective_route_contexts"):
            yield from route.effective_route_contexts()


def v1_routes(app: Any) -> list[tuple[str, str, Any]]:
    found = []
    for route in _flat_routes(app.routes):
        if route.path.startswith("/v1/"):
            for method in sorted(set(route.methods) - {"HEAD", "OPTIONS"}):
                found.append((method, route.path, route))
    return sorted(found, key=lambda item: (item[1], item[0]))


def matrix_markdown(app: Any) -> str:
    lines = [
        "# Authorisation matrix",
        "",
        "Generated from the code by `tests/integration/ops/test_authorization_matrix.py` (run it with",
        "`PREVENANCE_WRITE_AUTH_MATRIX=1` to rewrite this file). ✓ = admitted; admin is admitted",
        "everywhere; a member key is further limited to its own member on `{ref}` routes.",
        "",
        "| method | route | " + " | ".join(ALL_ROLES) + " |",
        "|---|---|" + "---|" * len(ALL_ROLES),
    ]
    for method, path, route in v1_routes(app):
        roles = admitted_roles(route)
        cells = ["public" if roles is None else ("✓" if role in roles else "") for role in ALL_ROLES]
        lines.append(f"| {method} | `{path}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    engine: Engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('authz') / 'db.sqlite'}")
    upgrade(engine)
    clock = FrozenClock()
    keys: dict[str, str] = {}
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=clock.now())
        for role in ALL_ROLES:
            member_ref = "M1" if role == "member" else None
            keys[role] = create_key(
                session, role=role, name=f"authz-{role}", member_ref=member_ref, now=clock.now()
            )[1]
    app = create_app(engine=engine, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client, keys
    engine.dispose()


def _path(path: str, ref: str = "M1") -> str:
    return re.sub(r"\{[^}]+\}", lambda m: ref if m.group(0) == "{ref}" else "X1", path)


def _call(client: TestClient, method: str, path: str, key: str | None) -> int:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    body = {} if method in ("POST", "PUT", "PATCH") else None
    return client.request(method, path, headers=headers, json=body).status_code


def test_every_route_enforces_its_roles(world: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = world
    failures = []
    for method, path, route in v1_routes(client.app):
        roles = admitted_roles(route)
        for role in ALL_ROLES:
            status = _call(client, method, _path(path), keys[role])
            if status >= 500:
                failures.append(f"{method} {path} as {role}: {status}")
            elif roles is not None and role not in roles and status != 403:
                failures.append(f"{method} {path} as {role}: {status}, expected 403")
            elif (
                (roles is None or role in roles)
                and status in (401, 403)
                and not (role == "member" and "{ref}" not in path)
            ):
                failures.append(f"{method} {path} as admitted {role}: {status}")
        if roles is not None and _call(client, method, _path(path), None) != 401:
            failures.append(f"{method} {path} without a key: not 401")
    assert not failures, "\n".join(failures)


def test_a_member_key_reaches_only_its_own_member(world: tuple[TestClient, dict[str, str]]) -> None:
    client, keys = world
    failures = []
    for method, path, route in v1_routes(client.app):
        roles = admitted_roles(route)
        if "{ref}" in path and roles is not None and "member" in roles:
            status = _call(client, method, _path(path, ref="SOMEONE-ELSE"), keys["member"])
            if status != 403:
                failures.append(f"{method} {path} for another member: {status}")
    assert not failures, "\n".join(failures)


def test_the_written_matrix_matches_the_code(world: tuple[TestClient, dict[str, str]]) -> None:
    import os

    client, _ = world
    expected = matrix_markdown(client.app)
    if os.environ.get("PREVENANCE_WRITE_AUTH_MATRIX"):
        DOC.write_text(expected)
    assert DOC.exists() and DOC.read_text() == expected, (
        "docs/authorization.md is out of date: rerun with PREVENANCE_WRITE_AUTH_MATRIX=1 and review the diff"
    )
