"""A consumer process killed with SIGKILL in the middle of a batch, then restarted: every
transaction is counted exactly once and the ledger audit passes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from pathlib import Path

import nats
import orjson
import pytest
from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.customers.tables import Member
from prevenance.db import read_session
from prevenance.loyalty import ledger
from prevenance.loyalty.tables import CardTransaction
from prevenance.stream.names import Names
from tests.conftest import tx_body
from tests.factories import wait_until
from tests.integration.stream.conftest import add_members

TOTAL = 1500
MEMBERS = 10


def start_consumer(engine: Engine, nats_url: str, names: Names, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PREVENANCE_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "PREVENANCE_NATS_URL": nats_url,
        "PREVENANCE_STREAM_NAMESPACE": names.namespace,
    }
    command = [sys.executable, "-m", "prevenance.cli", "stream", "run", "--batch", "100", "--ack-wait", "1"]
    with log.open("ab") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


def counts(engine: Engine) -> tuple[int, int]:
    """(transactions recorded, outbox events still undelivered)."""
    with read_session(engine) as session:
        transactions = session.scalar(select(func.count()).select_from(CardTransaction)) or 0
        pending = (
            session.scalar(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.delivered_at.is_(None))
            )
            or 0
        )
    return int(transactions), int(pending)


async def publish(nats_url: str, names: Names) -> None:
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    for start in range(0, TOTAL, 250):
        await asyncio.gather(
            *(
                js.publish(
                    names.transaction_subject(),
                    orjson.dumps(tx_body(f"T{i}", f"M{i % MEMBERS}", f"{1 + i % 50}.00")),
                )
                for i in range(start, min(TOTAL, start + 250))
            )
        )
    await nc.close()


async def consumer_drained(nats_url: str, names: Names) -> bool:
    nc = await nats.connect(nats_url)
    info = await nc.jetstream().consumer_info(names.transactions_stream, names.consumer)
    await nc.close()
    return info.num_pending == 0 and info.num_ack_pending == 0


@pytest.mark.slow
def test_consumer_killed_mid_batch_loses_nothing_and_counts_nothing_twice(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str, tmp_path: Path
) -> None:
    add_members(engine, clock, [f"M{i}" for i in range(MEMBERS)])
    asyncio.run(publish(nats_url, names))
    log = tmp_path / "consumer.log"
    first = start_consumer(engine, nats_url, names, log)
    try:
        wait_until(
            lambda: counts(engine)[0] >= 150 or first.poll() is not None,
            timeout=60,
            what=f"the first consumer to record some transactions (log: {log})",
        )
        assert first.poll() is None, log.read_text()
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
    finally:
        if first.poll() is None:
            first.kill()
    recorded_at_kill = counts(engine)[0]
    assert recorded_at_kill < TOTAL, "the kill must land in the middle of the stream"
    second = start_consumer(engine, nats_url, names, log)
    try:
        wait_until(
            lambda: counts(engine) == (TOTAL, 0) and asyncio.run(consumer_drained(nats_url, names)),
            timeout=120,
            what=f"all {TOTAL} transactions and their events after the restart (log: {log})",
            interval=0.2,
        )
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=30) == 0, log.read_text()
    finally:
        if second.poll() is None:
            second.kill()
    with read_session(engine) as session:
        assert ledger.audit(session)["ok"], ledger.audit(session)
        for i in range(MEMBERS):
            member_id = session.scalar(select(Member.id).where(Member.ref == f"M{i}"))
            expected = sum(1 + k % 50 for k in range(i, TOTAL, MEMBERS))
            assert ledger.balance_of(session, member_id=int(member_id or 0), unit="points") == expected
