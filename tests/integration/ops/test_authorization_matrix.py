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
from pydantic import BaseModel
from sqlalchemy import Engine

from prevenance.app import create_app
from prevenance.common.auth import Role, create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import make_engine, unit_of_work
from prevenance.loyalty import programme
from prevenance.migrate import upgrade
from prevenance.views.member360 import Member360Read, MemberSelf360Read
from prevenance.views.privacy import EXPORT, EXPORT_ROWS_WITHHELD, EXPORTED, exported_tables

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
    return "\n".join(lines + fields_markdown()) + "\n"


def _part_fields(annotation: Any) -> list[str] | None:
    """The field names of a 360 part's schema (a model, a list of them, or an optional one)."""
    for candidate in (annotation, *getattr(annotation, "__args__", ())):
        if isinstance(candidate, type) and issubclass(candidate, BaseModel):
            return list(candidate.model_fields)
    return None


def fields_markdown() -> list[str]:
    """Which fields each role sees of a member: the 360's two views and the export's allow-list."""
    staff_roles = ", ".join(role for role in ALL_ROLES if role != "member")
    lines = [
        "",
        "## What each role sees of a member",
        "",
        'The line is "what the data subject is entitled to, and no secrets". Staff-only data (staff',
        "notes, the concierge's file, partners and costs, staff identities, credentials and digests)",
        "is never in a member key's 360, nor in the GDPR export, whoever asks for it. Staff",
        "notes about a member are arguably personal data too (GDPR Art. 15), but they also speak of",
        "staff and third parties: a subject access request that must include them is answered by the",
        "data protection officer with an admin key reading the staff routes, after review.",
        "",
        "### `GET /v1/members/{ref}/360`",
        "",
        f'Staff roles ({staff_roles}) get `"view": "staff"`:',
        'every field of every part. A member key gets `"view": "member"`: only the fields listed in',
        "the member column (an allow-list); the staff-only column lists what it leaves out.",
        "",
        "| part | member sees | staff-only |",
        "|---|---|---|",
    ]
    member_parts = MemberSelf360Read.model_fields
    for part, field in Member360Read.model_fields.items():
        if part == "view":
            continue
        if part not in member_parts:
            lines.append(f"| `{part}` | — | the whole part |")
            continue
        staff_fields = _part_fields(field.annotation)
        member_fields = _part_fields(member_parts[part].annotation)
        if member_fields is None:
            lines.append(f"| `{part}` | every field | — |")
            continue
        hidden = [name for name in staff_fields or [] if name not in member_fields]
        shown = ", ".join(f"`{name}`" for name in member_fields)
        lines.append(f"| `{part}` | {shown} | " + (", ".join(f"`{name}`" for name in hidden) or "—") + " |")
    lines += [
        "",
        "### `GET /v1/members/{ref}/export`",
        "",
        "The same content for a supervisor, an admin and the member's own key: every column of every",
        "table about the member is either exported or withheld with its reason (`privacy.EXPORT`).",
        "",
        "| table | exported | withheld (why) |",
        "|---|---|---|",
    ]
    for table in exported_tables():
        columns = EXPORT[table]
        shown = ", ".join(f"`{name}`" for name, verdict in columns.items() if verdict == EXPORTED)
        withheld = "; ".join(
            f"`{name}` ({verdict.removeprefix('withheld: ')})"
            for name, verdict in columns.items()
            if verdict != EXPORTED
        )
        rows = EXPORT_ROWS_WITHHELD.get(table)
        withheld = "; ".join(part for part in (withheld, f"rows: {rows}" if rows else "") if part)
        lines.append(f"| `{table}` | {shown or '—'} | {withheld or '—'} |")
    return lines


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
