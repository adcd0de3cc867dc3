"""Benchmark: drain a backlog of queued card transactions, beside its ceiling in the same run.

1. ``--transactions`` transactions are published to a fresh namespace's stream (nobody consuming);
2. the ceiling: a bare nats-py pull consumer (its own durable) fetches them ``--batch`` at a time and
   acks each, doing nothing else;
3. ``prevenance``: the stream consumer (``stream.consumer.Consumer``, exactly as ``prevenance stream
   run`` runs it, relay off) drains the same messages into a fresh SQLite file through the earn
   engine, acking each after its batch has committed.

It prints both drain rates, their ratio (target ≥ 0.2×), the consumer's CPU time per transaction,
then proves the ledger: the audit passes and postings = card transactions = accepted messages.

    python benchmarks/stream_drain.py [--transactions 20000] [--members 2000] [--batch 100]

Needs a NATS server with JetStream at ``PREVENANCE_NATS_URL`` (default nats://127.0.0.1:4222).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from stream import CATEGORIES, prepare_database, streams  # noqa: E402

TARGET_RATIO = 0.2


async def publish_backlog(nats_url: str, namespace: str, count: int, members: int) -> None:
    import nats

    from prevenance.stream.names import Names

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    subject = Names(namespace).transaction_subject()
    for start in range(0, count, 1000):
        await asyncio.gather(
            *(
                js.publish(
                    subject,
                    orjson.dumps(
                        {
                            "id": f"D{n:08d}",
                            "member_ref": f"M{n * 7919 % members:06d}",
                            "amount": f"{1 + n % 300}.{n % 100:02d}",
                            "currency": "EUR",
                            "merchant": "Benchmark store",
                            "category": CATEGORIES[n % len(CATEGORIES)],
                            "occurred_at": "2026-11-20T10:00:00+00:00",
                        }
                    ),
                )
                for n in range(start, min(count, start + 1000))
            )
        )
    await nc.close()


async def bare_drain(nats_url: str, namespace: str, count: int, batch: int) -> float:
    """Seconds for a bare pull consumer to fetch and ack ``count`` messages."""
    import nats
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    from prevenance.stream.names import Names

    names = Names(namespace)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(
        names.transactions_subject,
        durable="bare-drain",
        stream=names.transactions_stream,
        config=ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, deliver_policy=DeliverPolicy.ALL, max_ack_pending=batch * 4
        ),
    )
    done = 0
    started = time.perf_counter()
    while done < count:
        for msg in await sub.fetch(batch, timeout=5):
            await msg.ack()
            done += 1
    elapsed = time.perf_counter() - started
    await nc.close()
    return elapsed


async def prevenance_drain(url: str, nats_url: str, namespace: str, count: int, batch: int) -> dict[str, Any]:
    import nats
    import structlog

    from prevenance.common.clock import SystemClock
    from prevenance.db import make_engine
    from prevenance.stream.consumer import Consumer
    from prevenance.stream.names import Names

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    engine = make_engine(url)
    nc = await nats.connect(nats_url)
    consumer = Consumer(
        engine=engine, clock=SystemClock(), js=nc.jetstream(), names=Names(namespace), batch=batch
    )
    await consumer.subscribe()
    stop = asyncio.Event()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    started = time.perf_counter()
    task = asyncio.create_task(consumer.run(stop))
    while sum((consumer.stats.accepted, consumer.stats.replayed, consumer.stats.rejected)) < count:
        await asyncio.sleep(0.005)
    elapsed = time.perf_counter() - started
    usage = resource.getrusage(resource.RUSAGE_SELF)
    stop.set()
    await task
    await nc.close()
    engine.dispose()
    return {
        "seconds": elapsed,
        "cpu_s": usage.ru_utime + usage.ru_stime - cpu,
        "stats": vars(consumer.stats),
    }


def verify(url: str) -> tuple[bool, int, int]:
    from sqlalchemy import func, select

    from prevenance.db import make_engine, read_session
    from prevenance.loyalty import ledger
    from prevenance.loyalty.tables import CardTransaction, Posting

    engine = make_engine(url)
    with read_session(engine) as session:
        report = ledger.audit(session)
        postings = session.execute(select(func.count()).select_from(Posting)).scalar_one()
        cards = session.execute(select(func.count()).select_from(CardTransaction)).scalar_one()
    engine.dispose()
    return bool(report["ok"]), int(postings), int(cards)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=20_000)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=100, help="messages per pull (both consumers)")
    args = parser.parse_args()
    nats_url = os.environ.get("PREVENANCE_NATS_URL", "nats://127.0.0.1:4222")
    namespace = f"drain{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="prevenance-drain-bench-") as folder:
        url = prepare_database(Path(folder) / "bench.db", args.members)
        asyncio.run(streams(nats_url, namespace, True))
        try:
            asyncio.run(publish_backlog(nats_url, namespace, args.transactions, args.members))
            bare = asyncio.run(bare_drain(nats_url, namespace, args.transactions, args.batch))
            ours = asyncio.run(prevenance_drain(url, nats_url, namespace, args.transactions, args.batch))
        finally:
            asyncio.run(streams(nats_url, namespace, False))
        ok, postings, cards = verify(url)
    bare_rate = args.transactions / bare
    our_rate = args.transactions / ours["seconds"]
    ratio = our_rate / bare_rate
    print(f"{args.transactions} queued transactions, pulls of {args.batch}")
    print(f"bare nats-py pull + ack:     {bare_rate:9.0f} msg/s ({bare:.2f} s)")
    print(
        f"prevenance stream consumer:  {our_rate:9.0f} tx/s ({ours['seconds']:.2f} s, "
        f"CPU {1e6 * ours['cpu_s'] / args.transactions:.0f} µs/transaction) {ours['stats']}"
    )
    print(
        f"ratio: {ratio:.2f}x the bare drain (target >= {TARGET_RATIO}): {'met' if ratio >= TARGET_RATIO else 'MISSED'}"
    )
    accepted = ours["stats"]["accepted"]
    print(
        f"ledger audit {'passes' if ok else 'FAILS'}; postings={postings} card_transactions={cards} "
        f"accepted={accepted}: {'ok' if postings == cards == accepted else 'MISMATCH'}"
    )


if __name__ == "__main__":
    main()
