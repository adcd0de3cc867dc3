"""Benchmark: ``POST /v1/transactions`` on one uvicorn worker, beside a bare FastAPI endpoint.

In one run, on fresh SQLite files in a temporary folder (or, with ``--postgres``, a fresh database on
that PostgreSQL server, with ``--workers`` uvicorn workers for both servers):

1. ``prevenance`` is migrated, members are created and an integrator key is made; ``prevenance
   serve`` (one uvicorn worker) is started and driven with ``--clients`` concurrent keep-alive
   clients for ``--duration`` seconds, every request a new transaction id;
2. the ceiling, a bare FastAPI app (one async endpoint parsing the same body and writing nothing,
   the same uvicorn settings and worker count), is driven the same way.

It prints requests/s, p50/p99/max latency, errors and the peak resident memory (``VmHWM``) of
each server, the ratio of the two throughputs against the targets (≥ 0.35× bare, p99 ≤ 25 ms),
and then proves the ledger: ``prevenance ledger audit`` passes and the number of postings equals
the number of accepted (201) requests.

The default driver is a small asyncio HTTP/1.1 client (uvloop when installed): it is light enough
not to starve a small machine's server, and each client finishes its request in flight at the
deadline, so every accepted request is counted. ``--driver wrk`` uses ``wrk`` instead (its
latencies, no exact accounting: requests in flight when wrk stops are not counted by it).

    python benchmarks/earn_api.py [--duration 20] [--clients 32] [--members 2000] [--driver asyncio|wrk]
    python benchmarks/earn_api.py --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test --workers 2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _server import cpu_seconds, ensure_wrk, free_port, peak_rss_kb, stop, wait_ready

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PREVENANCE = str(BIN / "prevenance") if (BIN / "prevenance").exists() else shutil.which("prevenance")
# The targets (throughput ratio to a bare app, p99 ms): SQLite with one worker; PostgreSQL with two
# workers against a bare app on two.
TARGETS = {"sqlite": (0.35, 25.0), "postgresql": (0.15, 50.0)}
BENCH_DATABASE = f"prevenance_bench_earn_{os.getpid()}"
"""One database per run, dropped at its end: two runs at once on one server never share (nor drop) one."""

BARE_APP = textwrap.dedent(
    '''
    """The ceiling: a bare FastAPI endpoint that parses the same body in an async handler and
    writes nothing."""
    from fastapi import FastAPI
    from fastapi.responses import JSONResponse
    from pydantic import BaseModel


    class Tx(BaseModel):
        id: str
        member_ref: str
        amount: str
        currency: str
        merchant: str
        category: str
        occurred_at: str


    app = FastAPI()


    @app.post("/v1/transactions", status_code=201)
    async def post(tx: Tx) -> JSONResponse:
        return JSONResponse({"id": tx.id, "member_ref": tx.member_ref}, status_code=201)


    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}
    '''
)

CATEGORIES = ("groceries", "dining", "travel", "books", "fuel", "fashion", "electronics", "hotels")


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds, accepted requests
    accepted: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)
    peak_rss_kb: int = 0
    cpu_seconds: float = 0.0  # the server's CPU time while driven
    wrk_summary: dict[str, float] | None = None

    @property
    def rps(self) -> float:
        if self.wrk_summary:
            return self.wrk_summary["rps"]
        return self.accepted / self.seconds if self.seconds else 0.0

    def percentile_ms(self, q: float) -> float:
        if self.wrk_summary:
            return self.wrk_summary[f"p{int(q * 100)}"]
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    @property
    def max_ms(self) -> float:
        if self.wrk_summary:
            return self.wrk_summary["max"]
        return max(self.latencies, default=float("nan")) * 1000


# --- drivers -------------------------------------------------------------------------------------


def body_for(prefix: str, n: int, members: int) -> bytes:
    return json.dumps(
        {
            "id": f"{prefix}-{n}",
            "member_ref": f"bench-{n % members:06d}",
            "amount": f"{10 + n % 490}.{n % 100:02d}",
            "currency": "EUR",
            "merchant": "Benchmark Store",
            "category": CATEGORIES[n % len(CATEGORIES)],
            "occurred_at": "2026-11-20T10:00:00Z",
        },
        separators=(",", ":"),
    ).encode()


async def _client(
    index: int, port: int, token: str, prefix: str, members: int, clients: int, deadline: float, out: Result
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    n = index
    try:
        while time.monotonic() < deadline:
            body = body_for(prefix, n, members)
            n += clients
            head = (
                f"POST /v1/transactions HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode()
            started = time.perf_counter()
            writer.write(head + body)
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
            elapsed = time.perf_counter() - started
            status = int(status_line.split()[1]) if status_line else 0
            out.statuses[status] = out.statuses.get(status, 0) + 1
            if status == 201:
                out.accepted += 1
                out.latencies.append(elapsed)
            else:
                out.errors += 1
    finally:
        writer.close()


async def _drive_asyncio(port: int, token: str, prefix: str, args: argparse.Namespace, out: Result) -> None:
    started = time.monotonic()
    deadline = started + args.duration
    await asyncio.gather(
        *(
            _client(i, port, token, prefix, args.members, args.clients, deadline, out)
            for i in range(args.clients)
        )
    )
    out.seconds = time.monotonic() - started


def drive_asyncio(port: int, token: str, prefix: str, args: argparse.Namespace, out: Result) -> None:
    try:
        import uvloop

        uvloop.run(_drive_asyncio(port, token, prefix, args, out))
    except ImportError:
        asyncio.run(_drive_asyncio(port, token, prefix, args, out))


WRK_COUNTING = """
local threads = {}
function setup(thread)
  thread:set("tid", #threads)
  table.insert(threads, thread)
end
function init(args)
  accepted = 0
  refused = 0
end
response = function(status, headers, body)
  if status == OK then accepted = accepted + 1 else refused = refused + 1 end
end
function done(summary, latency, requests)
  local a, r = 0, 0
  for _, t in ipairs(threads) do a = a + t:get("accepted"); r = r + t:get("refused") end
  io.write(string.format("RESULT %d %d %d %.3f %.3f %.3f %.3f\\n", a, r,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(99) / 1000, latency.max / 1000,
    summary.requests / (summary.duration / 1e6)))
end
"""

EARN_REQUEST = """
local counter = 0
request = function()
  counter = counter + 1
  local n = tid * 100000000 + counter
  local body = string.format(
    '{"id":"%s-%d","member_ref":"bench-%06d","amount":"%d.%02d","currency":"EUR",' ..
    '"merchant":"Benchmark Store","category":"travel","occurred_at":"2026-11-20T10:00:00Z"}',
    PREFIX, n, n % MEMBERS, 10 + n % 490, n % 100)
  return wrk.format("POST", "/v1/transactions", HEADERS, body)
end
"""


def earn_wrk_script(prefix: str, members: int, token: str) -> str:
    """A wrk script posting a new transaction id on every request (``prefix`` keeps runs apart)."""
    headers = f'{{["Content-Type"]="application/json", ["Authorization"]="Bearer {token}"}}'
    return f'PREFIX="{prefix}"\nMEMBERS={members}\nHEADERS={headers}\nOK=201\n' + EARN_REQUEST + WRK_COUNTING


def start_wrk(
    port: int, script_text: str, clients: int, seconds: float, script: Path
) -> subprocess.Popen[str]:
    """wrk on ``script_text`` (which ends with ``WRK_COUNTING``), ``clients`` connections."""
    script.write_text(script_text)
    threads = max(1, min(clients, os.cpu_count() or 1))
    command = ["wrk", "-t", str(threads), "-c", str(clients), "-d", f"{max(1, round(seconds))}s"]
    return subprocess.Popen(
        [*command, "-s", str(script), f"http://127.0.0.1:{port}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_wrk(process: subprocess.Popen[str], seconds: float, out: Result) -> None:
    """Wait for a ``start_wrk`` run and put its counts and latencies in ``out``."""
    stdout, stderr = process.communicate()
    if process.returncode != 0 or "RESULT" not in stdout:
        raise SystemExit(f"wrk failed ({process.returncode}): {stderr or stdout}")
    line = next(line for line in stdout.splitlines() if line.startswith("RESULT"))
    accepted, refused, socket_errors, p50, p99, peak, rps = line.split()[1:]
    out.accepted, out.errors = int(accepted), int(refused) + int(socket_errors)
    out.seconds = float(max(1, round(seconds)))
    out.wrk_summary = {"p50": float(p50), "p99": float(p99), "max": float(peak), "rps": float(rps)}


def drive_wrk(port: int, token: str, prefix: str, args: argparse.Namespace, out: Result, tmp: Path) -> None:
    script = earn_wrk_script(prefix, args.members, token)
    finish_wrk(
        start_wrk(port, script, args.clients, args.duration, tmp / f"{prefix}.lua"), args.duration, out
    )


def drive(port: int, token: str, prefix: str, args: argparse.Namespace, out: Result, tmp: Path) -> None:
    if args.driver == "wrk":
        drive_wrk(port, token, prefix, args, out, tmp)
    else:
        drive_asyncio(port, token, prefix, args, out)


# --- the two servers -----------------------------------------------------------------------------


def prepare_prevenance(url: str, members: int) -> str:
    """Migrate, install the programme, create the members and an integrator key."""
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
            data = customers.MemberData(
                f"Member {i}", f"member{i}@example.fr", "fr", "FR", products[i % len(products)]
            )
            customers.upsert(session, ref=f"bench-{i:06d}", data=data, now=now)
        _, token = create_key(session, role="integrator", name="benchmark", now=now)
    engine.dispose()
    return token


def fresh_postgres(server_url: str, name: str = BENCH_DATABASE) -> str:
    """A new, empty database on the given PostgreSQL server (dropped first if a run left it)."""
    from sqlalchemy.engine import make_url

    _run_on_server(
        server_url,
        f"DROP DATABASE IF EXISTS {name} WITH (FORCE)",
        f"CREATE DATABASE {name}",
    )
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_postgres(server_url: str, name: str = BENCH_DATABASE) -> None:
    """Drop this run's database (``fresh_postgres``)."""
    _run_on_server(server_url, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _run_on_server(server_url: str, *statements: str) -> None:
    """Statements outside a transaction (``CREATE``/``DROP DATABASE``) on the server's given database."""
    from sqlalchemy import create_engine, text

    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        for statement in statements:
            connection.execute(text(statement))
    admin.dispose()


def run_prevenance(args: argparse.Namespace, tmp: Path) -> tuple[Result, str]:
    url = fresh_postgres(args.postgres) if args.postgres else f"sqlite:///{tmp / 'prevenance.db'}"
    started = time.perf_counter()
    token = prepare_prevenance(url, args.members)
    print(f"prevenance: migrated, {args.members} members, key ready ({time.perf_counter() - started:.1f} s)")
    port = free_port()
    env = {**os.environ, "PREVENANCE_DATABASE_URL": url}
    log = (tmp / "prevenance.log").open("wb")
    server = subprocess.Popen(
        [PREVENANCE, "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", str(args.workers)],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    result = Result("prevenance POST /v1/transactions")
    try:
        wait_ready(port, server)
        cpu = cpu_seconds(server.pid)
        drive(port, token, "tx", args, result, tmp)
        result.cpu_seconds = cpu_seconds(server.pid) - cpu
        result.peak_rss_kb = peak_rss_kb(server.pid)
    finally:
        stop(server)
    return result, url


def run_bare(args: argparse.Namespace, tmp: Path) -> Result:
    (tmp / "bare_app.py").write_text(BARE_APP)
    port = free_port()
    # The same worker model as ``prevenance serve``: with several workers, one SO_REUSEPORT socket
    # each (prevenance.serving), so the ceiling's connections spread over its workers too.
    launcher = (
        "import uvicorn; from prevenance import serving; "
        f"config = dict(host='127.0.0.1', port={port}, workers={args.workers}, log_level='info'); "
        f"serving.run_balanced_workers(uvicorn.Config('bare_app:app', **config)) "
        f"if {args.workers} > 1 and serving.balanced_workers_supported() "
        "else uvicorn.run('bare_app:app', **config)"
    )
    log = (tmp / "bare.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-c", launcher],
        cwd=tmp,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp), str(ROOT / "src")])},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    result = Result("bare async FastAPI, parse only")
    try:
        wait_ready(port, server)
        cpu = cpu_seconds(server.pid)
        drive(port, "none", "bare", args, result, tmp)
        result.cpu_seconds = cpu_seconds(server.pid) - cpu
        result.peak_rss_kb = peak_rss_kb(server.pid)
    finally:
        stop(server)
    return result


def verify_ledger(url: str, accepted: int, exact: bool) -> bool:
    """``prevenance ledger audit`` passes and there is one posting per accepted request."""
    from sqlalchemy import create_engine, text

    env = {**os.environ, "PREVENANCE_DATABASE_URL": url}
    audit = subprocess.run([PREVENANCE, "ledger", "audit"], env=env, capture_output=True, text=True)
    print(f"ledger audit: exit {audit.returncode}: {audit.stdout.strip().splitlines()[-1]}")
    engine = create_engine(url)
    with engine.connect() as db:
        postings = db.execute(text("SELECT count(*) FROM postings")).scalar_one()
        transactions = db.execute(text("SELECT count(*) FROM card_transactions")).scalar_one()
    engine.dispose()
    if exact:
        counted = postings == accepted == transactions
        relation = "=="
    else:  # wrk does not count the requests in flight when it stops
        counted = postings == transactions and accepted <= postings
        relation = "<="
    print(
        f"postings={postings} card_transactions={transactions} accepted={accepted}: "
        f"accepted {relation} postings {'ok' if counted else 'MISMATCH'}"
    )
    return audit.returncode == 0 and counted


def report(results: list[Result], args: argparse.Namespace) -> bool:
    print()
    backend = "PostgreSQL" if args.postgres else "SQLite"
    print(
        f"{args.clients} clients, {args.duration} s each, driver {args.driver}, {backend}, {args.workers} uvicorn worker(s)"
    )
    print(
        f"{'':36} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'errors':>7} {'peak RSS':>10}"
        f" {'CPU µs/req':>11}"
    )
    for r in results:
        print(
            f"{r.name:36} {r.rps:9.0f} {r.percentile_ms(0.5):8.1f} {r.percentile_ms(0.99):8.1f} "
            f"{r.max_ms:8.1f} {r.errors:7d} {r.peak_rss_kb / 1024:8.1f} MB"
            f" {r.cpu_seconds / max(r.accepted, 1) * 1e6:11.0f}"
        )
        if any(code != 201 for code in r.statuses):
            print(f"{'':36} statuses: {dict(sorted(r.statuses.items()))}")
    ours, bare = results
    ratio = ours.rps / bare.rps if bare.rps else float("nan")
    p99 = ours.percentile_ms(0.99)
    target_ratio, target_p99 = TARGETS["postgresql" if args.postgres else "sqlite"]
    ratio_ok, p99_ok = ratio >= target_ratio, p99 <= target_p99
    print(
        f"throughput ratio: {ratio:.2f}x bare (target >= {target_ratio}): {'met' if ratio_ok else 'MISSED'}"
    )
    print(f"p99 latency: {p99:.1f} ms (target <= {target_p99:.0f} ms): {'met' if p99_ok else 'MISSED'}")
    if ours.cpu_seconds and bare.cpu_seconds:
        cost = (bare.cpu_seconds / max(bare.accepted, 1)) / (ours.cpu_seconds / max(ours.accepted, 1))
        print(f"CPU cost ratio (bare µs/req ÷ ours µs/req, insensitive to the machine's load): {cost:.2f}x")
    return ratio_ok and p99_ok and ours.errors == 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per server")
    parser.add_argument("--clients", type=int, default=32, help="concurrent keep-alive clients")
    parser.add_argument("--members", type=int, default=2000, help="members the transactions spread over")
    parser.add_argument("--driver", choices=("asyncio", "wrk"), default="asyncio")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (databases, logs)")
    parser.add_argument(
        "--postgres",
        metavar="URL",
        help=f"a PostgreSQL server (any database on it): the run creates and uses {BENCH_DATABASE} there",
    )
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers, for both servers")
    args = parser.parse_args()
    if args.driver == "wrk":
        ensure_wrk()
    if PREVENANCE is None:
        raise SystemExit("the prevenance command is not installed (make install)")
    tmp = Path(tempfile.mkdtemp(prefix="earn-bench-"))
    try:
        ours, url = run_prevenance(args, tmp)
        bare = run_bare(args, tmp)
        targets = report([ours, bare], args)
        ledger_ok = verify_ledger(url, ours.accepted, exact=args.driver == "asyncio")
        print(f"logs and databases in {tmp}" if args.keep else "")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
            if args.postgres:
                drop_postgres(args.postgres)
    if not ledger_ok:
        raise SystemExit("LEDGER CHECK FAILED")
    if not targets:
        print("targets missed (see above)")


if __name__ == "__main__":
    main()
