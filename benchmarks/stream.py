"""Benchmark: card transactions published to JetStream at a steady rate, consumed by one
``prevenance stream run`` (the consumer, and the outbox relay in a process of its own as the command
runs it; ``--relay-in-process`` keeps both in one) on a fresh SQLite file.

For each run: a fresh SQLite file is migrated and ``--members`` members are created; the stream
names get a namespace of their own (deleted at the end); a child process runs the consumer and the
relay as ``prevenance stream run`` does, with a hook that records, per message, the time
from publish (a ``Prevenance-Published-Ns`` header set by the publisher) to the commit of its
transaction. The parent publishes ``--rate`` transactions/s for ``--duration`` s (every message
acked by JetStream), reads the consumer's lag the moment publishing stops, waits for the backlog
to drain, then prints:

- processed rate (committed messages / time from the first publish to the last commit),
- p50 / p99 / max latency publish → committed,
- lag at the end of publishing (messages published but not yet acked by the consumer),
- peak RSS of the consumer process.

Then (unless ``--no-step``) it steps the rate up (``--steps``, shorter runs of ``--step-duration``
seconds) and reports the highest rate sustained: processed rate ≥ 98% of the offered rate and a lag
at the end below one second's worth of messages.

    python benchmarks/stream.py [--rate 500] [--duration 60] [--members 2000]
                                [--steps 1000,1500,2000,3000] [--step-duration 20] [--no-step]
                                [--no-relay | --relay-in-process] [--offers 0]

Needs a NATS server with JetStream at ``PREVENANCE_NATS_URL`` (default nats://127.0.0.1:4222).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as MpEvent
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

HEADER = "Prevenance-Published-Ns"
DEFAULT_COMMIT_EVERY = 20  # the Consumer's default
CATEGORIES = ["books", "travel", "grocery", "restaurants", "fuel"]


def put_offers(engine: Any, count: int, now: datetime) -> None:
    """``count`` active offers, one per category (cycling), open to every member, one per member and
    campaign, 10% control group: every payment then runs the whole decision (features, scoring,
    control assignment, communications log) until the member has been decided for each offer."""
    from _offers import bench_offer

    from prevenance.db import unit_of_work
    from prevenance.offers import service as offers

    with unit_of_work(engine) as session:
        for i in range(count):
            category = CATEGORIES[i % len(CATEGORIES)]
            offers.put_offer(
                session,
                offer_id=f"bench-{i}",
                data=bench_offer(
                    merchant="Benchmark store",
                    category=category,
                    cap=1,
                    now=now,
                    categories=[category],
                    decision_days=30,
                ),
                now=now,
            )


def prepare_database(path: Path, members: int, offers: int = 0) -> str:
    from prevenance.common.clock import SystemClock
    from prevenance.customers import service as customers
    from prevenance.db import make_engine, unit_of_work
    from prevenance.loyalty import programme
    from prevenance.migrate import upgrade

    url = f"sqlite:///{path}"
    engine = make_engine(url)
    upgrade(engine)
    now = SystemClock().now()
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=now)
    with unit_of_work(engine) as session:
        for i in range(members):
            data = customers.MemberData(f"Member {i}", f"m{i}@example.fr", "fr", "FR", "gold")
            customers.upsert(session, ref=f"M{i:06d}", data=data, now=now)
    put_offers(engine, offers, now)
    engine.dispose()
    return url


def consumer_process(
    url: str,
    nats_url: str,
    namespace: str,
    stop: MpEvent,
    out: Connection,
    relay_on: bool,
    commit_every: int,
) -> None:
    """The child: consumer + relay as ``prevenance stream run`` runs them, with a latency hook."""
    asyncio.run(_consume(url, nats_url, namespace, stop, out, relay_on, commit_every))


def relay_process(url: str, nats_url: str, namespace: str, stop: MpEvent, out: Connection) -> None:
    """The second child (the default, as ``prevenance stream run`` runs its relay): the relay alone."""
    asyncio.run(_relay_only(url, nats_url, namespace, stop, out))


async def _relay_only(url: str, nats_url: str, namespace: str, stop: MpEvent, out: Connection) -> None:
    import nats
    import structlog

    from prevenance.common.clock import SystemClock
    from prevenance.db import make_engine
    from prevenance.stream.names import Names
    from prevenance.stream.relay import Relay

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    engine = make_engine(url)
    nc = await nats.connect(nats_url)
    relay = Relay(engine=engine, clock=SystemClock(), js=nc.jetstream(), names=Names(namespace))
    done = asyncio.Event()
    task = asyncio.create_task(relay.run(done))
    out.send("ready")
    while not stop.is_set():
        await asyncio.sleep(0.05)
    done.set()
    await task
    await relay.run_once()  # what the consumer committed last
    await nc.close()
    out.send(relay.delivered)


async def _consume(
    url: str,
    nats_url: str,
    namespace: str,
    stop: MpEvent,
    out: Connection,
    relay_on: bool,
    commit_every: int,
) -> None:
    import nats
    import structlog

    from prevenance.common.clock import SystemClock
    from prevenance.db import make_engine, wal_checkpoints_in_background
    from prevenance.stream.consumer import Consumer, Result
    from prevenance.stream.names import Names
    from prevenance.stream.relay import Relay

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    engine = make_engine(url, background_checkpoints=True)  # as `prevenance stream run`
    names = Names(namespace)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    latencies: list[int] = []
    last_commit = [0]

    def hook(msg: Any, result: Result) -> None:
        sent = int((msg.headers or {}).get(HEADER, "0"))
        latencies.append(result.committed_ns - sent)
        last_commit[0] = result.committed_ns

    consumer = Consumer(
        engine=engine, clock=SystemClock(), js=js, names=names, on_result=hook, commit_every=commit_every
    )
    relay = Relay(engine=engine, clock=SystemClock(), js=js, names=names)
    await consumer.subscribe()
    with wal_checkpoints_in_background(engine):
        done = asyncio.Event()
        tasks = [asyncio.create_task(consumer.run(done))]
        if relay_on:
            tasks.append(asyncio.create_task(relay.run(done)))
        out.send("ready")
        while not stop.is_set():
            await asyncio.sleep(0.05)
        done.set()
        await asyncio.gather(*tasks)
    await nc.close()
    out.send(
        {
            "latencies_ns": latencies,
            "last_commit_ns": last_commit[0],
            "stats": vars(consumer.stats),
            "events_published": relay.delivered,
            "peak_rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime
            + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
        }
    )


async def publish(
    nats_url: str, namespace: str, *, rate: float, duration: float, members: int
) -> dict[str, Any]:
    import nats

    from prevenance.stream.names import Names

    names = Names(namespace)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    subject = names.transaction_subject()
    rng = random.Random(7)
    total = int(rate * duration)
    pending: set[asyncio.Task[Any]] = set()
    failures = 0
    start = time.monotonic()
    first_ns = time.time_ns()
    sent = 0
    while sent < total:
        due = min(total, int((time.monotonic() - start) * rate) + 1)
        while sent < due:
            body = {
                "id": f"B{sent:08d}",
                "member_ref": f"M{rng.randrange(members):06d}",
                "amount": f"{rng.randint(1, 30000) / 100:.2f}",
                "currency": "EUR",
                "merchant": "Benchmark store",
                "category": rng.choice(CATEGORIES),
                "occurred_at": datetime.now(UTC).isoformat(),
            }
            task = asyncio.ensure_future(
                js.publish(subject, orjson.dumps(body), headers={HEADER: str(time.time_ns())})
            )
            pending.add(task)
            task.add_done_callback(pending.discard)
            sent += 1
        await asyncio.sleep(0.002)
    for result in await asyncio.gather(*pending, return_exceptions=True):
        failures += isinstance(result, BaseException)
    elapsed = time.monotonic() - start
    info = await js.consumer_info(names.transactions_stream, names.consumer)
    lag = info.num_pending + info.num_ack_pending
    await nc.close()
    return {"sent": sent, "failures": failures, "elapsed": elapsed, "lag": lag, "first_ns": first_ns}


async def wait_drained(nats_url: str, namespace: str, timeout: float) -> int:
    import nats

    from prevenance.stream.names import Names

    names = Names(namespace)
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    deadline = time.monotonic() + timeout
    while True:
        info = await js.consumer_info(names.transactions_stream, names.consumer)
        left = info.num_pending + info.num_ack_pending
        if left == 0 or time.monotonic() > deadline:
            await nc.close()
            return int(left)
        await asyncio.sleep(0.1)


async def streams(nats_url: str, namespace: str, create: bool) -> None:
    import nats

    from prevenance.stream.names import Names, delete_streams, ensure_streams

    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    await (ensure_streams(js, Names(namespace)) if create else delete_streams(js, Names(namespace)))
    await nc.close()


def count_decisions(url: str) -> dict[str, int]:
    """Offer decisions recorded during the run, by arm (treatment, control)."""
    from sqlalchemy import func, select

    from prevenance.db import make_engine, read_session
    from prevenance.offers.tables import OfferDecision

    engine = make_engine(url)
    with read_session(engine) as session:
        rows = session.execute(select(OfferDecision.arm, func.count()).group_by(OfferDecision.arm)).all()
    engine.dispose()
    return {str(arm): int(n) for arm, n in rows}


def percentile(sorted_values: list[int], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index] / 1e6


def run(
    nats_url: str,
    *,
    rate: float,
    duration: float,
    members: int,
    relay: bool = True,
    commit_every: int = DEFAULT_COMMIT_EVERY,
    offers: int = 0,
    relay_apart: bool = False,
) -> dict[str, Any]:
    namespace = f"bench{uuid.uuid4().hex[:8]}"
    with tempfile.TemporaryDirectory(prefix="prevenance-stream-bench-") as folder:
        url = prepare_database(Path(folder) / "bench.db", members, offers)
        asyncio.run(streams(nats_url, namespace, True))
        ctx = mp.get_context("spawn")
        stop = ctx.Event()
        parent, child = ctx.Pipe()
        process = ctx.Process(
            target=consumer_process,
            args=(url, nats_url, namespace, stop, child, relay and not relay_apart, commit_every),
        )
        process.start()
        relay_parent, relay_child = ctx.Pipe()
        relayer = ctx.Process(target=relay_process, args=(url, nats_url, namespace, stop, relay_child))
        if relay and relay_apart:
            relayer.start()
        try:
            if parent.poll(60):
                parent.recv()  # ready
            if relayer.is_alive() and relay_parent.poll(60):
                relay_parent.recv()  # ready
            sent = asyncio.run(publish(nats_url, namespace, rate=rate, duration=duration, members=members))
            left = asyncio.run(wait_drained(nats_url, namespace, timeout=max(60.0, duration)))
            stop.set()
            report = parent.recv() if parent.poll(120) else {}
            if relay and relay_apart:
                report["events_published"] = relay_parent.recv() if relay_parent.poll(120) else None
                relayer.join(timeout=30)
            process.join(timeout=30)
            decisions = count_decisions(url)
        finally:
            for child_process in (process, relayer):
                if child_process.is_alive():
                    child_process.kill()
            asyncio.run(streams(nats_url, namespace, False))
    latencies = sorted(report.get("latencies_ns", []))
    processed = len(latencies)
    span = (report.get("last_commit_ns", 0) - sent["first_ns"]) / 1e9 if processed else float("nan")
    return {
        "rate": rate,
        "duration": duration,
        "published": sent["sent"],
        "publish_failures": sent["failures"],
        "publish_rate": sent["sent"] / sent["elapsed"],
        "processed": processed,
        "processed_rate": processed / span if processed else 0.0,
        "p50_ms": percentile(latencies, 0.50),
        "p99_ms": percentile(latencies, 0.99),
        "max_ms": latencies[-1] / 1e6 if latencies else float("nan"),
        "lag_at_end": sent["lag"],
        "left_after_drain": left,
        "stats": report.get("stats"),
        "decisions": decisions,
        "events_published": report.get("events_published"),
        "peak_rss_mib": report.get("peak_rss_kib", 0) / 1024,
        "cpu_ms_per_tx": 1000 * report.get("cpu_s", 0.0) / processed if processed else float("nan"),
    }


def show(result: dict[str, Any]) -> None:
    print(
        f"offered {result['rate']:.0f}/s for {result['duration']:.0f} s: published {result['published']} "
        f"({result['publish_rate']:.0f}/s, {result['publish_failures']} failed), processed {result['processed']} "
        f"at {result['processed_rate']:.0f}/s; latency publish→commit p50 {result['p50_ms']:.1f} ms, "
        f"p99 {result['p99_ms']:.1f} ms, max {result['max_ms']:.1f} ms; lag at end {result['lag_at_end']}, "
        f"left after drain {result['left_after_drain']}; relay published {result['events_published']} events; "
        f"consumer peak RSS {result['peak_rss_mib']:.0f} MiB, CPU {result['cpu_ms_per_tx']:.2f} ms/transaction; "
        f"{result['stats']}; offer decisions {result['decisions']}",
        flush=True,
    )


def sustained(result: dict[str, Any]) -> bool:
    return (
        result["publish_failures"] == 0
        and result["left_after_drain"] == 0
        and result["processed_rate"] >= 0.98 * result["rate"]
        and result["lag_at_end"] <= result["rate"]
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=500)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--members", type=int, default=2000)
    parser.add_argument("--steps", default="1000,1500,2000,3000")
    parser.add_argument("--step-duration", type=float, default=20)
    parser.add_argument("--no-step", action="store_true")
    parser.add_argument("--no-relay", action="store_true", help="consumer only (no outbox relay)")
    parser.add_argument(
        "--relay-in-process",
        action="store_true",
        help="the relay in the consumer's process (prevenance stream run --relay-in-process); by default it "
        "runs in a process of its own, as prevenance stream run does",
    )
    parser.add_argument(
        "--commit-every", type=int, default=DEFAULT_COMMIT_EVERY, help="messages per database transaction"
    )
    parser.add_argument(
        "--offers",
        type=int,
        default=0,
        help="active offers (each payment then runs the offer decision until the member is decided)",
    )
    args = parser.parse_args()
    nats_url = os.environ.get("PREVENANCE_NATS_URL") or "nats://127.0.0.1:4222"
    what = (
        "consumer only"
        if args.no_relay
        else "consumer + relay in one process"
        if args.relay_in_process
        else "consumer, relay in a second process"
    )
    print(
        f"{os.cpu_count()} CPUs; NATS {nats_url}; SQLite; one consumer process ({what}), "
        f"{args.commit_every} messages per transaction, {args.offers} active offers"
    )
    main_run = run(
        nats_url,
        rate=args.rate,
        duration=args.duration,
        members=args.members,
        relay=not args.no_relay,
        commit_every=args.commit_every,
        offers=args.offers,
        relay_apart=not args.relay_in_process,
    )
    show(main_run)
    ok = sustained(main_run) and main_run["p99_ms"] <= 20.0
    print(f"target (keeps up with {args.rate:.0f}/s, p99 ≤ 20 ms): {'met' if ok else 'NOT met'}", flush=True)
    if args.no_step:
        return
    best = args.rate if sustained(main_run) else 0.0
    for rate in (float(step) for step in args.steps.split(",") if step.strip()):
        result = run(
            nats_url,
            rate=rate,
            duration=args.step_duration,
            members=args.members,
            relay=not args.no_relay,
            commit_every=args.commit_every,
            offers=args.offers,
            relay_apart=not args.relay_in_process,
        )
        show(result)
        if not sustained(result):
            break
        best = rate
    print(f"highest rate sustained: {best:.0f} transactions/s", flush=True)


if __name__ == "__main__":
    main()
