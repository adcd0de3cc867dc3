"""Benchmark: the API as a cluster on PostgreSQL — 1, 2 and 4 uvicorn workers.

For each worker count, on a fresh PostgreSQL database (``--url``, default the local server's
``test`` database; the benchmark creates and drops its own ``bench_cluster_<pid>`` database):

1. ``prevenance serve --workers N`` is started on it;
2. the earn path (``POST /v1/transactions``, every request a new id) is driven for ``--duration``
   seconds by ``--clients`` keep-alive connections;
3. the 360 page (``GET /v1/members/{ref}/360``, random members) is driven the same way;
4. reads under the earn load: the earn clients again, and at the same time ``--read-clients`` clients on
   each of balance, movements and the 360 (random members): p99 of each read while the earns run;
5. the ledger audit runs (``prevenance.loyalty.ledger.audit``) and the count of earn postings is
   compared with the accepted requests: it must balance and match.

It prints req/s, p50 and p99 per worker count and path, and the audit result. The load generator
runs on the same machine (loopback), so on a 2-core machine it takes a share of the CPU from the
servers: read the scaling from 1 to 2 workers, not the absolute figures.

The load comes from ``wrk`` (``--driver wrk``, the default; installed with apt-get when missing and
run as root): one wrk process for the earns and one per read path, so each path's latencies are
measured by a process that does nothing else. ``--driver asyncio`` drives every path from one Python
event loop instead (the benchmark's driver until 2026-12-07): under the earn load that loop is itself
short of CPU, and the reads' latencies then include its own lag. With wrk, requests in flight when
it stops are not counted, so the check is transactions ≥ accepted instead of equal.

    python benchmarks/cluster.py [--workers 1,2,4] [--duration 15] [--clients 32] [--read-clients 4]
                                 [--members 5000] [--driver wrk|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from _server import ensure_wrk, free_port, peak_rss_kb, stop, wait_ready
from earn_api import PREVENANCE, WRK_COUNTING, Result, body_for, earn_wrk_script, finish_wrk, start_wrk


@dataclass
class Run:
    workers: int
    earn: Result = field(default_factory=lambda: Result("earn"))
    view: Result = field(default_factory=lambda: Result("360"))
    mixed_earn: Result = field(default_factory=lambda: Result("earn under reads"))
    reads: dict[str, Result] = field(default_factory=dict)
    audit_ok: bool = False
    postings_match: bool = False
    peak_rss_kb: int = 0


async def _request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, head: bytes
) -> tuple[int, float]:
    started = time.perf_counter()
    writer.write(head)
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length:
        await reader.readexactly(length)
    return (int(status_line.split()[1]) if status_line else 0), time.perf_counter() - started


async def _drive(
    port: int, heads: list[bytes] | None, make: object, clients: int, seconds: float, ok: int, out: Result
) -> None:
    deadline = time.monotonic() + seconds
    counter = iter(range(10**9))

    async def one(index: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.monotonic() < deadline:
                head = make(next(counter))  # type: ignore[operator]
                status, elapsed = await _request(reader, writer, head)
                out.statuses[status] = out.statuses.get(status, 0) + 1
                if status == ok:
                    out.accepted += 1
                    out.latencies.append(elapsed)
                else:
                    out.errors += 1
        finally:
            writer.close()

    started = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(clients)))
    out.seconds = time.monotonic() - started


READ_PATHS = ("balance", "movements", "360")

READ_REQUEST = """
request = function()
  local ref = string.format("bench-%06d", math.random(0, MEMBERS - 1))
  return wrk.format("GET", "/v1/members/" .. ref .. "/" .. PATH, HEADERS)
end
"""


def read_wrk_script(path: str, members: int, token: str) -> str:
    """A wrk script reading ``path`` of a random member on every request."""
    headers = f'{{["Authorization"]="Bearer {token}"}}'
    return f'PATH="{path}"\nMEMBERS={members}\nHEADERS={headers}\nOK=200\n' + READ_REQUEST + WRK_COUNTING


def phases_with_wrk(
    port: int, run: Run, args: argparse.Namespace, tokens: tuple[str, str], tmp: Path
) -> None:
    """The three phases driven by wrk, one process per path: the load generator's CPU is C's, and
    each read path's latencies are taken by a process of its own, not by the loop driving the earns."""
    integrator, agent = tokens
    prefix, seconds = f"w{run.workers}", args.duration

    def earn(tag: str) -> subprocess.Popen[str]:
        return start_wrk(
            port, earn_wrk_script(tag, args.members, integrator), args.clients, seconds, tmp / f"{tag}.lua"
        )

    def read(path: str, clients: int) -> subprocess.Popen[str]:
        script = read_wrk_script(path, args.members, agent)
        return start_wrk(port, script, clients, seconds, tmp / f"{prefix}-{path}-{clients}.lua")

    finish_wrk(earn(prefix), seconds, run.earn)
    finish_wrk(read("360", args.clients), seconds, run.view)
    run.reads = {path: Result(path) for path in READ_PATHS}
    mixed = earn(prefix + "m")
    readers = {path: read(path, args.read_clients) for path in READ_PATHS}
    finish_wrk(mixed, seconds, run.mixed_earn)
    for path, process in readers.items():
        finish_wrk(process, seconds, run.reads[path])


def prepare(url: str, members: int) -> tuple[str, str]:
    from prevenance.common.auth import create_key
    from prevenance.customers import service as customers
    from prevenance.db import make_engine, unit_of_work
    from prevenance.loyalty import programme
    from prevenance.migrate import upgrade

    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=now)
    products = ("green", "gold", "platinum", "centurion", "cobrand-airline")
    with unit_of_work(engine) as session:
        for i in range(members):
            data = customers.MemberData(f"Member {i}", f"member{i}@example.fr", "fr", "FR", products[i % 5])
            customers.upsert(session, ref=f"bench-{i:06d}", data=data, now=now)
        _, integrator = create_key(session, role="integrator", name="bench-integrator", now=now)
        _, agent = create_key(session, role="agent", name="bench-agent", now=now)
    engine.dispose()
    return integrator, agent


def audit(url: str, accepted: int, exact: bool = True) -> tuple[bool, bool]:
    """The ledger audit, and whether the transactions stored match the accepted requests (with
    wrk, which does not count the requests in flight when it stops, at least as many)."""
    from prevenance.db import make_engine, read_session
    from prevenance.loyalty import ledger
    from prevenance.loyalty.tables import CardTransaction

    engine = make_engine(url)
    with read_session(engine) as session:
        report = ledger.audit(session)
        transactions = session.execute(sa.select(sa.func.count()).select_from(CardTransaction)).scalar_one()
    engine.dispose()
    return bool(report.get("ok")), transactions == accepted if exact else transactions >= accepted


def one_run(url: str, workers: int, args: argparse.Namespace, tokens: tuple[str, str], tmp: Path) -> Run:
    run = Run(workers)
    port = free_port()
    log = (tmp / f"serve-{workers}.log").open("wb")
    server = subprocess.Popen(
        [PREVENANCE, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)],
        env={**os.environ, "PREVENANCE_DATABASE_URL": url},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    integrator, agent = tokens
    prefix = f"w{workers}"
    rng = random.Random(workers)

    def earn_head_for(tag: str) -> object:
        """Every request a new transaction id (the tag keeps the phases' ids apart)."""

        def head(n: int) -> bytes:
            body = body_for(tag, n, args.members)
            return (
                f"POST /v1/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {integrator}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body

        return head

    def read_head(path: str) -> object:
        def head(n: int) -> bytes:
            ref = f"bench-{rng.randrange(args.members):06d}"
            return (
                f"GET /v1/members/{ref}/{path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {agent}\r\n\r\n"
            ).encode()

        return head

    async def reads_under_earn_load() -> None:
        run.reads = {path: Result(path) for path in READ_PATHS}
        await asyncio.gather(
            _drive(port, None, earn_head_for(prefix + "m"), args.clients, args.duration, 201, run.mixed_earn),
            *(
                _drive(port, None, read_head(path), args.read_clients, args.duration, 200, result)
                for path, result in run.reads.items()
            ),
        )

    try:
        wait_ready(port, server)
        if args.driver == "wrk":
            phases_with_wrk(port, run, args, tokens, tmp)
            run.peak_rss_kb = peak_rss_kb(server.pid)
            return run
        asyncio.run(_drive(port, None, earn_head_for(prefix), args.clients, args.duration, 201, run.earn))
        asyncio.run(_drive(port, None, read_head("360"), args.clients, args.duration, 200, run.view))
        asyncio.run(reads_under_earn_load())
        run.peak_rss_kb = peak_rss_kb(server.pid)
    finally:
        stop(server)
    return run


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "PREVENANCE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--duration", type=float, default=15.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument(
        "--read-clients", type=int, default=4, help="clients per read path under the earn load"
    )
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument(
        "--driver",
        choices=("wrk", "asyncio"),
        default="wrk",
        help="wrk (default: C, a process per path) or the asyncio client (every path in one Python loop)",
    )
    args = parser.parse_args()
    if args.driver == "wrk":
        ensure_wrk()
    admin = sa.create_engine(args.url, isolation_level="AUTOCOMMIT")
    runs: list[Run] = []
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        for workers in (int(w) for w in args.workers.split(",")):
            name = f"bench_cluster_{os.getpid()}_{workers}"
            with admin.connect() as connection:
                connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
                connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = admin.url.set(database=name).render_as_string(hide_password=False)
            try:
                started = time.perf_counter()
                tokens = prepare(url, args.members)
                print(
                    f"{workers} worker(s): database ready ({time.perf_counter() - started:.1f} s)", flush=True
                )
                run = one_run(url, workers, args, tokens, tmp)
                run.audit_ok, run.postings_match = audit(
                    url, run.earn.accepted + run.mixed_earn.accepted, exact=args.driver == "asyncio"
                )
                runs.append(run)
                print(
                    f"  earn {run.earn.rps:7.1f} req/s p50 {run.earn.percentile_ms(0.5):6.1f} ms "
                    f"p99 {run.earn.percentile_ms(0.99):6.1f} ms errors {run.earn.errors} | "
                    f"360 {run.view.rps:7.1f} req/s p50 {run.view.percentile_ms(0.5):6.1f} ms "
                    f"p99 {run.view.percentile_ms(0.99):6.1f} ms errors {run.view.errors} | "
                    f"audit {'ok' if run.audit_ok else 'FAILED'}, transactions = accepted: {run.postings_match}",
                    flush=True,
                )
                print(
                    f"  under {args.clients} earn clients ({run.mixed_earn.rps:.1f} req/s, p99 "
                    f"{run.mixed_earn.percentile_ms(0.99):.1f} ms): "
                    + " | ".join(
                        f"{path} {result.rps:.1f} req/s p50 {result.percentile_ms(0.5):.1f} ms "
                        f"p99 {result.percentile_ms(0.99):.1f} ms errors {result.errors}"
                        for path, result in run.reads.items()
                    ),
                    flush=True,
                )
            finally:
                with admin.connect() as connection:
                    connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    print()
    print(
        f"{'workers':>7} {'earn req/s':>11} {'earn p99 ms':>12} {'360 req/s':>10} {'360 p99 ms':>11} {'audit':>6}"
    )
    for run in runs:
        print(
            f"{run.workers:>7} {run.earn.rps:>11.1f} {run.earn.percentile_ms(0.99):>12.1f} "
            f"{run.view.rps:>10.1f} {run.view.percentile_ms(0.99):>11.1f} {'ok' if run.audit_ok else 'FAIL':>6}"
        )
    print(f"cpu cores: {os.cpu_count()}; load generator on the same machine; python {sys.version.split()[0]}")


if __name__ == "__main__":
    main()
