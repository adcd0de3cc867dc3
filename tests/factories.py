"""What many tests need, written once: a member (through the API or straight
through the customers service) and a wait for something the system does in the background."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.customers import service as customers
from prevenance.db import run_in_transaction
from tests.conftest import Api, member_body


def put_member(api: Api, ref: str, **overrides: Any) -> None:
    """Create (or update) a member through ``PUT /v1/members/{ref}``, as a client would."""
    response = api.put(f"/v1/members/{ref}", member_body(**overrides))
    assert response.status_code in (200, 201), response.text


def store_member(
    engine: Engine,
    clock: FrozenClock,
    ref: str,
    *,
    name: str = "Marie Curie",
    email: str = "marie@example.fr",
    language: str = "fr",
    country: str = "FR",
    product: str = "gold",
) -> int:
    """Create (or update) a member through the customers service; returns its row id."""
    data = customers.MemberData(name=name, email=email, language=language, country=country, product=product)
    row, _ = run_in_transaction(engine, lambda s: customers.upsert(s, ref=ref, data=data, now=clock.now()))
    return int(row.id)


def wait_until(check: Callable[[], Any], *, what: str, timeout: float = 90.0, interval: float = 0.05) -> Any:
    """Poll ``check`` until it returns something truthy and return that; fail naming ``what`` after
    ``timeout`` seconds (generous: the machines are shared and slow)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)
