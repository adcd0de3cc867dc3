"""The real NATS server, found through ``PREVENANCE_TEST_NATS_URL``; with ``CI=true`` a missing or
unreachable server fails the test instead of skipping it. Each test gets its own namespace (its
own streams and subjects), deleted at teardown, so xdist workers and reruns never collide."""

from __future__ import annotations

import asyncio
import os
import time
import uuid
from collections.abc import Callable, Iterator

import nats
import pytest
from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.customers import service as customers
from prevenance.db import unit_of_work
from prevenance.stream.names import Names, delete_streams, ensure_streams
from tests.conftest import missing_server

NATS_URL = os.environ.get("PREVENANCE_TEST_NATS_URL")


async def _probe(url: str) -> None:
    nc = await nats.connect(url, connect_timeout=2, max_reconnect_attempts=0, allow_reconnect=False)
    try:
        await nc.jetstream().account_info()
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def nats_url() -> str:
    """The test server's URL; fail in CI, skip elsewhere, when it is absent or unreachable."""
    if not NATS_URL:
        missing_server("stream tests need a NATS server with JetStream in PREVENANCE_TEST_NATS_URL")
    try:
        asyncio.run(_probe(NATS_URL))
    except Exception as error:
        missing_server(f"NATS JetStream at {NATS_URL} is unreachable: {type(error).__name__}: {error}")
    return NATS_URL


@pytest.fixture
def names(nats_url: str) -> Iterator[Names]:
    """A namespace of this test's own; its streams exist at the start and are deleted at the end."""
    chosen = Names(f"t{uuid.uuid4().hex[:12]}")

    async def setup(create: bool) -> None:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await (ensure_streams(js, chosen) if create else delete_streams(js, chosen))
        await nc.close()

    asyncio.run(setup(True))
    yield chosen
    asyncio.run(setup(False))


def add_members(engine: Engine, clock: FrozenClock, refs: list[str], product: str = "gold") -> None:
    with unit_of_work(engine) as session:
        for ref in refs:
            data = customers.MemberData("Camille Martin", "camille@example.fr", "fr", "FR", product)
            customers.upsert(session, ref=ref, data=data, now=clock.now())


async def async_wait_until(check: Callable[[], bool], *, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.02)
