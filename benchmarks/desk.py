"""Benchmark: the service desk at scale, on a SQLite file.

1. ``--members`` members (default 1,000,000) are written to a CSV file and loaded with the bulk
   members ingest (``prevenance.loyalty.ingest.ingest_members``);
2. ``--contacts`` contacts (default 200,000) over a year are logged through the desk service
   (``desk.service.log_contact``, in process, a unit of work per 5,000) on ``--contact-members``
   members (default a quarter of the contacts), with about a quarter of them taking a follow-up in
   the same case, plus half as many communications (``log_communication``) on the same members;
3. ``prevenance serve`` (one uvicorn worker) is started on the file and measured over HTTP with a
   small asyncio HTTP/1.1 client:

   - contact-logging throughput: ``POST /v1/contacts`` from ``--clients`` concurrent keep-alive
     clients for ``--duration`` seconds, every request a new contact (a new case);
   - the 360: ``GET /v1/members/{ref}/360`` for ``--samples`` random members, one request at a
     time (half of them members with contacts, half drawn from all members): p50/p95/p99/max
     against the target p95 ≤ 100 ms;
   - the reason analysis: ``GET /v1/desk/reasons?month=`` and ``GET /v1/desk/fcr?by=reason&month=``
     for the last full month, ``--repeats`` times each.

It prints the figures, the server's peak resident memory (``VmHWM``) and this process's
(``ru_maxrss``, which includes the seeding).

    python benchmarks/desk.py [--members 1000000] [--contacts 200000] [--duration 15] [--clients 16]
    python benchmarks/desk.py --members 20000 --contacts 20000      # a quick run
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _server import cpu_seconds, free_port, peak_rss_kb, stop, wait_ready

BIN = Path(sys.executable).parent
PREVENANCE = str(BIN / "prevenance") if (BIN / "prevenance").exists() else shutil.which("prevenance")
TARGET_360_P95_MS = 100.0
COUNTRIES = ("FR", "GB", "DE", "IT", "ES")
PRODUCTS = ("green", "gold", "platinum", "centurion", "cobrand-airline")
CHANNELS = ("phone",) * 6 + ("email", "email", "chat", "chat", "web", "social", "letter")
SEED_CHUNK = 5_000


def ref(i: int) -> str:
    return f"bm-{i:07d}"


# --- building the database -----------------------------------------------------------------------


def write_members(path: Path, count: int, rng: random.Random) -> None:
    from prevenance.loyalty import ingest

    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(ingest.MEMBER_COLUMNS)
        for i in range(count):
            country = rng.choice(COUNTRIES)
            out.writerow(
                (
                    ref(i),
                    f"Member {i}",
                    f"m{i}@example.eu",
                    "fr" if country == "FR" else "en",
                    country,
                    rng.choice(PRODUCTS),
                )
            )


def drain_outbox(engine: Any, now: datetime) -> None:
    """Run the in-process handlers of the seeded events (each closed contact becomes a survey
    invitation), as the server's maintenance thread would over the year: measured here, so the
    server measured next is not still catching up with 200,000 events in the background."""
    from prevenance.common import outbox
    from prevenance.db import unit_of_work
    from prevenance.maintenance import HANDLERS

    started, delivered = time.perf_counter(), 0
    while True:
        with unit_of_work(engine) as session:
            done = outbox.deliver_pending(session, handlers=HANDLERS, now=now, limit=5_000)
        delivered += done
        if done == 0:
            break
        print(f"\r  delivered {delivered:,} events", end="", flush=True)
    seconds = time.perf_counter() - started
    print(
        f"\nevents:       {delivered:,} delivered to their handlers (survey invitations) in {seconds:.1f} s "
        f"({delivered / max(seconds, 1e-9):,.0f} events/s)"
    )


def seed_desk(url: str, args: argparse.Namespace, rng: random.Random, now: datetime) -> list[int]:
    """Contacts and communications through the desk service; returns the members that have them."""
    from prevenance.db import make_engine, unit_of_work
    from prevenance.desk import service as desk

    reasons = [r["code"] for r in desk.list_reasons()]
    engine = make_engine(url)
    with_contacts = rng.sample(range(args.members), min(args.members, args.contact_members))
    made = 0
    comms = 0
    started = time.perf_counter()
    while made < args.contacts:
        with unit_of_work(engine) as session:
            for _ in range(min(SEED_CHUNK, args.contacts - made)):
                member = ref(rng.choice(with_contacts))
                reason = rng.choice(reasons)
                begin = now - timedelta(seconds=rng.uniform(3_600, 365 * 86_400))
                channel = rng.choice(CHANNELS)
                follow_up = rng.random() < 0.25
                case_id = None
                for step in range(2 if follow_up else 1):
                    made += 1
                    at = begin + timedelta(days=step * rng.uniform(0.1, 3))
                    end = at + timedelta(seconds=rng.uniform(60, 900))
                    outcome = desk.log_contact(
                        session,
                        contact=desk.ContactInput(
                            id=f"bm-ct-{made}",
                            member_ref=member,
                            channel=channel,
                            direction="inbound",
                            agent=f"agent-{rng.randint(1, 40):02d}",
                            team=f"team-{rng.randint(1, 5)}",
                            reason=reason,
                            started_at=at,
                            ended_at=end,
                            notes="benchmark contact",
                            outcome="pending" if follow_up and step == 0 else "resolved",
                            case_id=case_id,
                        ),
                        now=min(now, end + timedelta(seconds=5)),
                    )
                    case_id = str(outcome.body["case_id"])
                if made % 2 == 0:
                    comms += 1
                    desk.log_communication(
                        session,
                        communication=desk.CommunicationInput(
                            id=f"bm-cm-{comms}",
                            member_ref=member,
                            kind="statement",
                            template="statement-monthly",
                            channel="email",
                            language="en",
                            sent_at=begin,
                            subject="Your statement",
                            summary="",
                        ),
                        source="benchmark",
                        now=now,
                    )
        print(f"\r  seeded {made:,} contacts, {comms:,} communications", end="", flush=True)
    seconds = time.perf_counter() - started
    print(
        f"\ncontacts:     {made:,} (+{comms:,} communications) through the service in {seconds:.1f} s "
        f"({made / seconds:,.0f} contacts/s in process, one writer)"
    )
    drain_outbox(engine, now)
    engine.dispose()
    return with_contacts


def prepare(folder: Path, args: argparse.Namespace) -> tuple[str, str, list[int]]:
    from prevenance.common.auth import create_key
    from prevenance.db import make_engine, unit_of_work
    from prevenance.loyalty import ingest, programme
    from prevenance.migrate import upgrade

    rng = random.Random(args.seed)
    url = f"sqlite:///{folder / 'desk.db'}"
    now = datetime.now(UTC)
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=now)
    began = time.perf_counter()
    members_file = folder / "members.csv"
    write_members(members_file, args.members, rng)
    report = ingest.ingest_members(engine, members_file)
    print(
        f"members:      {report.rows:,} (CSV written and bulk-ingested in {time.perf_counter() - began:.1f} s, "
        f"ingest {report.seconds:.1f} s) rejected={report.rejected}"
    )
    with unit_of_work(engine) as session:
        _, token = create_key(session, role="agent", name="benchmark", now=now)
    engine.dispose()
    with_contacts = seed_desk(url, args, rng, now)
    return url, token, with_contacts


def reopen(folder: Path) -> tuple[str, str, list[int]]:
    """The database of an earlier run (``--reuse``): a new key, and the members that have contacts."""
    from sqlalchemy import text

    from prevenance.common.auth import create_key
    from prevenance.db import make_engine, unit_of_work

    url = f"sqlite:///{folder / 'desk.db'}"
    engine = make_engine(url)
    with unit_of_work(engine) as session:
        _, token = create_key(session, role="agent", name="benchmark", now=datetime.now(UTC))
        refs = session.execute(
            text(
                "SELECT DISTINCT m.ref FROM desk_contacts c JOIN members m ON m.id = c.member_id "
                "WHERE m.ref LIKE 'bm-%'"
            )
        ).scalars()
        with_contacts = sorted(int(r.removeprefix("bm-")) for r in refs)
    engine.dispose()
    print(f"reusing {folder / 'desk.db'}: {len(with_contacts):,} members with contacts")
    return url, token, with_contacts


# --- the server ----------------------------------------------------------------------------------


# --- an HTTP/1.1 keep-alive client ---------------------------------------------------------------


@dataclass
class Timings:
    name: str
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    seconds: float = 0.0
    cpu_us: float | None = None
    """The server's CPU per request (user + system), when measured: insensitive to the machine's load."""

    def add(self, status: int, elapsed: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(elapsed)

    def pct(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return (
            ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000 if ordered else float("nan")
        )

    def line(self) -> str:
        ok = sum(n for s, n in self.statuses.items() if 200 <= s < 300)
        rate = f"{ok / self.seconds:8.0f} req/s" if self.seconds else " " * 14
        return (
            f"{self.name:44} n={len(self.latencies):6d} {rate} p50={self.pct(0.5):7.1f} "
            f"p95={self.pct(0.95):7.1f} p99={self.pct(0.99):7.1f} max={self.pct(1.0):7.1f} ms "
            f"statuses={dict(sorted(self.statuses.items()))}"
            + ("" if self.cpu_us is None else f" server CPU {self.cpu_us:,.0f} µs/req")
        )


class Client:
    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, float]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert self.reader is not None
        head = (
            f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {self.token}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        started = time.perf_counter()
        self.writer.write(head + body)
        status_line = await self.reader.readline()
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if length:
            await self.reader.readexactly(length)
        return (int(status_line.split()[1]) if status_line else 0), time.perf_counter() - started

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


RUN = f"{time.time_ns():x}"
"""Part of every live contact's id, so that a run on a reused database makes new contacts."""


def contact_body(n: int, member: str, now: datetime) -> bytes:
    start = now - timedelta(minutes=10 + n % 600)
    return json.dumps(
        {
            "id": f"bm-live-{RUN}-{n}",
            "member_ref": member,
            "channel": CHANNELS[n % len(CHANNELS)],
            "direction": "inbound",
            "agent": f"agent-{n % 40 + 1:02d}",
            "team": f"team-{n % 5 + 1}",
            "reason": "statement.question",
            "started_at": start.isoformat(),
            "ended_at": (start + timedelta(minutes=6)).isoformat(),
            "notes": "benchmark",
            "outcome": "resolved",
        }
    ).encode()


async def measure(
    port: int, token: str, args: argparse.Namespace, with_contacts: list[int], server_pid: int
) -> list[Timings]:
    rng = random.Random(args.seed + 1)
    now = datetime.now(UTC)
    results = []

    # 1. contact logging throughput, concurrent clients
    logging = Timings(f"POST /v1/contacts ({args.clients} clients)")
    deadline = time.monotonic() + args.duration
    counter = iter(range(10**9))

    async def writer() -> None:
        client = Client(port, token)
        try:
            while time.monotonic() < deadline:
                n = next(counter)
                member = ref(with_contacts[n % len(with_contacts)])
                status, elapsed = await client.request("POST", "/v1/contacts", contact_body(n, member, now))
                logging.add(status, elapsed)
        finally:
            client.close()

    began, cpu_before = time.monotonic(), cpu_seconds(server_pid)
    await asyncio.gather(*(writer() for _ in range(args.clients)))
    logging.seconds = time.monotonic() - began
    logging.cpu_us = (cpu_seconds(server_pid) - cpu_before) * 1e6 / max(1, len(logging.latencies))
    results.append(logging)

    # 2. the 360, one request at a time
    client = Client(port, token)
    view = Timings("GET /v1/members/{ref}/360 (1 client)")
    for i in range(args.samples):
        member = rng.choice(with_contacts) if i % 2 == 0 else rng.randrange(args.members)
        status, elapsed = await client.request("GET", f"/v1/members/{ref(member)}/360")
        view.add(status, elapsed)
    results.append(view)

    # 3. the reason analysis and FCR for the last full month
    month = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    for path in (f"/v1/desk/reasons?month={month}", f"/v1/desk/fcr?by=reason&month={month}"):
        timing = Timings(f"GET {path}")
        for _ in range(args.repeats):
            status, elapsed = await client.request("GET", path)
            timing.add(status, elapsed)
        results.append(timing)
    client.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", type=int, default=1_000_000)
    parser.add_argument("--contacts", type=int, default=200_000, help="contacts seeded through the service")
    parser.add_argument(
        "--contact-members", type=int, default=None, help="members the contacts go to (default contacts / 4)"
    )
    parser.add_argument("--duration", type=float, default=15.0, help="seconds of POST /v1/contacts")
    parser.add_argument("--clients", type=int, default=16, help="concurrent clients for POST /v1/contacts")
    parser.add_argument("--samples", type=int, default=2_000, help="360 requests")
    parser.add_argument("--repeats", type=int, default=5, help="requests of each report")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--dir", type=Path, default=None, help="keep the database here (else a temporary folder)"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="measure the database a previous run left in --dir instead of seeding a new one",
    )
    args = parser.parse_args()
    args.contact_members = args.contact_members or max(1, args.contacts // 4)
    if PREVENANCE is None:
        raise SystemExit("the prevenance command is not installed (make install)")
    folder = args.dir or Path(tempfile.mkdtemp(prefix="desk-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    reuse = args.reuse and args.dir is not None and (folder / "desk.db").exists()
    if not reuse:
        for leftover in folder.glob("desk.db*"):
            leftover.unlink()
    try:
        url, token, with_contacts = reopen(folder) if reuse else prepare(folder, args)
        port = free_port()
        log = (folder / "server.log").open("wb")
        server = subprocess.Popen(
            [PREVENANCE, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"],
            env={**os.environ, "PREVENANCE_DATABASE_URL": url},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_ready(port, server)
            results = asyncio.run(measure(port, token, args, with_contacts, server.pid))
            server_rss = peak_rss_kb(server.pid)
        finally:
            stop(server)
        size = sum(p.stat().st_size for p in folder.glob("desk.db*")) / 2**20
        print()
        print(
            f"{args.members:,} members, {args.contacts:,} seeded contacts on {len(with_contacts):,} members, "
            f"database {size:,.0f} MB; prevenance serve, one uvicorn worker, SQLite"
        )
        for timing in results:
            print(timing.line())
        p95 = results[1].pct(0.95)
        verdict = "met" if p95 <= TARGET_360_P95_MS else "MISSED"
        print(f"360 p95: {p95:.1f} ms (target <= {TARGET_360_P95_MS:.0f} ms): {verdict}")
        print(
            f"peak RSS: server {server_rss / 1024:,.0f} MB (VmHWM), "
            f"benchmark process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB (ru_maxrss)"
        )
    finally:
        if args.dir is None:
            shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
