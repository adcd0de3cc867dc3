"""Fixtures of the console tests: cheap argon2 and a small world with one user per role."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.console import users
from tests.conftest import Api, member_body, tx_body
from tests.integration.console.support import make_user


@pytest.fixture(autouse=True)
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 with the smallest cost: the same code path, without 0.2 s per hash on a shared machine."""
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


@pytest.fixture
def world(api: Api, engine: Engine, clock: FrozenClock) -> Api:
    """Two members with points, a catalogue item, an airline partner and one user per role."""
    assert api.put("/v1/members/M1", member_body(name="Camille Martin", product="platinum")).status_code in (
        200,
        201,
    )
    api.put("/v1/members/M2", member_body(name="Jean Dupont", email="jean@example.com", language="en"))
    api.put("/v1/members/M3", member_body(name="Zoé Friend", email="zoe@example.fr"))
    assert api.post("/v1/transactions", tx_body("T1", "M1", "1500.00"), role="integrator").status_code == 201
    assert api.post("/v1/transactions", tx_body("T2", "M2", "80.00"), role="integrator").status_code == 201
    assert api.put("/v1/catalogue/KNIFE", {"name": "Knife set", "points": 500, "stock": 10}).status_code in (
        200,
        201,
    )
    partner = {"kind": "airline", "name": "Air Demo", "points_per_block": 1000, "units_per_block": 800}
    assert api.put("/v1/partners/AIR", partner).status_code in (200, 201)
    for name, role in [
        ("agent1", "agent"),
        ("conc1", "concierge"),
        ("sup1", "supervisor"),
        ("mkt1", "marketing"),
    ]:
        make_user(engine, clock, name, role)
    make_user(engine, clock, "agent-en", "agent", language="en")
    make_user(engine, clock, "camille", "member", member_ref="M1")
    make_user(engine, clock, "jean", "member", member_ref="M2")
    return api
