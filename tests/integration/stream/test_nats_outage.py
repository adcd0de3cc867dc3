"""NATS restarted under a running stream worker: ``prevenance stream run`` talks to NATS through a
TCP proxy that the test cuts and restores. Events written while NATS is away wait in the outbox
(nothing lost), and drain when it returns, each published once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import nats
import pytest
from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session, run_in_transaction
from prevenance.loyalty import service
from prevenance.stream.names import Names
from tests.conftest import tx_body
from tests.factories import wait_until
from tests.integration.ops.netproxy import NetProxy
from tests.integration.stream.conftest import add_members

BIN = Path(sys.executable).parent / "prevenance"


def _earn(engine: Engine, clock: FrozenClock, ids: range) -> None:
    for i in ids:
        tx = service.TransactionInput(**{**tx_body(f"N{i}", "M1", "10.00"), "occurred_at": clock.now()})
        run_in_transaction(engine, lambda s, tx=tx: service.record_transaction(s, tx=tx, now=clock.now()))


def _pending(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(
            session.execute(select(func.count()).where(OutboxEvent.delivered_at.is_(None))).scalar_one()
        )


async def _published_ids(nats_url: str, names: Names) -> list[str]:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    info = await js.stream_info(names.events_stream)
    ids = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        if info.state.messages:
            ids.append((await js.get_msg(names.events_stream, seq)).headers["Nats-Msg-Id"])
    await nc.close()
    return ids


@pytest.mark.slow
def test_events_wait_while_nats_is_down_and_drain_once_when_it_returns(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str, tmp_path: Path
) -> None:
    parts = urlsplit(nats_url)
    proxy = NetProxy((parts.hostname or "127.0.0.1", parts.port or 4222))
    proxy.start()
    add_members(engine, clock, ["M1"])
    _earn(engine, clock, range(5))
    log = (tmp_path / "stream.log").open("wb")
    worker = subprocess.Popen(
        [str(BIN), "stream", "run", "--namespace", names.namespace],
        env={
            **os.environ,
            "PREVENANCE_DATABASE_URL": engine.url.render_as_string(hide_password=False),
            "PREVENANCE_NATS_URL": f"nats://127.0.0.1:{proxy.port}",
        },
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_until(lambda: _pending(engine) == 0, timeout=60, what="the first events to be relayed")
        proxy.stop()  # NATS is gone for the worker
        _earn(engine, clock, range(5, 12))  # the API keeps accepting writes
        time.sleep(2.0)
        assert _pending(engine) == 7, "nothing can be delivered while NATS is away, and nothing is lost"
        proxy.start()
        wait_until(lambda: _pending(engine) == 0, timeout=90, what="the outbox to drain after NATS returned")
        assert worker.poll() is None, "the worker rode out the outage"
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
        proxy.close()
    with read_session(engine) as session:
        expected = sorted(session.scalars(select(OutboxEvent.event_id)))
    published = asyncio.run(_published_ids(nats_url, names))
    assert sorted(published) == expected, "every event published exactly once"
