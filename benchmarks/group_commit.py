"""Benchmark: concurrent write use cases on SQLite, with and without group commit, in one run.

``--threads`` threads (a server's thread pool under load) each log desk contacts through the real
use case (``desk.service.log_contact`` inside ``run_in_transaction``) for ``--duration`` seconds,
first with group commit (``group_commit.GroupCommit``), then without (each use case waits for the writer lock
alone), alternating ``--rounds`` times so both meet the same machine. The ceiling beside them is one
thread logging contacts with nobody to wait for (the use case's own cost). It prints contacts/s,
p50/p99/max latency per use case and the peak resident memory, then checks that every answered
contact is in the database once.

    python benchmarks/group_commit.py [--threads 16] [--duration 5] [--rounds 2] [--members 2000]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine, func, select

from prevenance.customers import service as customers
from prevenance.db import make_engine, read_session, run_in_transaction, unit_of_work
from prevenance.desk import service as desk
from prevenance.desk.tables import Contact
from prevenance.loyalty import programme
from prevenance.migrate import upgrade

START = datetime(2026, 11, 2, 9, tzinfo=UTC)


def prepare(folder: Path, members: int) -> str:
    url = f"sqlite:///{folder / 'bench.db'}"
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=START)
        for i in range(members):
            data = customers.MemberData(f"Member {i}", f"m{i}@example.fr", "fr", "FR", "gold")
            customers.upsert(session, ref=f"m{i:06d}", data=data, now=START)
    engine.dispose()
    return url


def contact(n: int, members: int, prefix: str) -> desk.ContactInput:
    started = START + timedelta(minutes=n % 10_000)
    return desk.ContactInput(
        id=f"{prefix}-{n}",
        member_ref=f"m{n % members:06d}",
        channel="phone",
        direction="inbound",
        agent="alice",
        team="paris-1",
        reason="card.lost_stolen",
        started_at=started,
        ended_at=started + timedelta(minutes=7),
        notes="card lost in the metro; blocked and reordered",
        outcome="resolved",
    )


def drive(engine: Engine, threads: int, duration: float, members: int, prefix: str) -> list[float]:
    latencies: list[float] = []
    counter = iter(range(10**9))
    lock = threading.Lock()
    deadline = time.perf_counter() + duration

    def worker() -> None:
        mine: list[float] = []
        while time.perf_counter() < deadline:
            with lock:
                n = next(counter)
            item = contact(n, members, prefix)
            began = time.perf_counter()
            outcome = run_in_transaction(
                engine, lambda s, item=item: desk.log_contact(s, contact=item, now=START)
            )
            mine.append(time.perf_counter() - began)
            assert outcome.status_code == 201, outcome.body
        with lock:
            latencies.extend(mine)

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    return latencies


def line(name: str, latencies: list[float], duration: float) -> str:
    ordered = sorted(latencies)
    p99 = ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))]
    return (
        f"{name:<34} {len(ordered) / duration:8.0f}/s  p50 {statistics.median(ordered) * 1000:7.1f} ms"
        f"  p99 {p99 * 1000:7.1f} ms  max {ordered[-1] * 1000:7.1f} ms  n={len(ordered)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--members", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = prepare(Path(folder), args.members)
        grouped, alone = make_engine(url, group_commit=True), make_engine(url, group_commit=False)
        results: dict[str, list[float]] = {"grouped": [], "alone": [], "ceiling": []}
        answered = 0
        for round_number in range(args.rounds):
            for name, engine in (("grouped", grouped), ("alone", alone)):
                found = drive(engine, args.threads, args.duration, args.members, f"{name}{round_number}")
                results[name].extend(found)
                answered += len(found)
        ceiling = drive(alone, 1, args.duration, args.members, "ceiling")
        answered += len(ceiling)
        print(
            f"{args.threads} threads logging contacts on SQLite, {args.rounds} x {args.duration:.0f} s each way"
        )
        total = args.rounds * args.duration
        print(line("group commit", results["grouped"], total))
        print(line("one transaction each (lock queue)", results["alone"], total))
        print(line("ceiling: one thread, no waiting", ceiling, args.duration))
        print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        with read_session(grouped) as session:
            stored = session.scalar(select(func.count()).select_from(Contact))
        print(f"contacts answered {answered}, stored {stored}: {'ok' if stored == answered else 'MISMATCH'}")


if __name__ == "__main__":
    main()
