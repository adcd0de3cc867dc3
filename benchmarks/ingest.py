"""Settlement-file ingest against raw ``sqlite3`` ``executemany``, in one run.

    .venv/bin/python benchmarks/ingest.py                       # 1,000,000 transactions, 100,000 members
    .venv/bin/python benchmarks/ingest.py --transactions 20000 --members 2000
    .venv/bin/python benchmarks/ingest.py --transactions 100000 --members 10000 --floor

Generates a member file and a settlement file (CSV or Parquet) in a temporary folder, loads the
members with ``prevenance ingest members``' code, ingests the settlement file into a fresh SQLite
file, then inserts the same number of posting-shaped rows into a bare table (no index, no
constraint) of another fresh SQLite file with ``sqlite3``'s ``executemany``, in chunks of the same
size, one transaction per chunk, with the same pragmas. Prints rows, seconds, rows/s, the ratio
(target: ingest ≥ 0.25 × raw), per-chunk latency and peak memory. With ``--floor`` it also
times the *schema floor*: raw ``executemany`` of exactly the rows the ingest wrote, into the same
migrated schema (see ``schema_floor``), the ceiling of any ingest code on this schema.
"""

from __future__ import annotations

import argparse
import csv
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import tracemalloc
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prevenance.common.clock import SystemClock
from prevenance.db import make_engine, read_session, unit_of_work
from prevenance.loyalty import earn_rows, ingest, ledger, programme
from prevenance.migrate import upgrade

PRODUCTS = ("green", "gold", "gold", "platinum", "centurion", "cobrand-airline")
COUNTRIES = ("FR", "GB", "DE", "IT", "ES")
CURRENCIES = ("EUR",) * 16 + ("GBP", "USD", "CHF", "JPY")
CATEGORIES = ("travel", "dining", "retail", "books", "fuel", "hotel")
MERCHANTS = ("Air Lumière", "Café de Flore", "Galeries", "Librairie", "Total", "Hôtel du Lac")


def member_rows(count: int, rng: random.Random) -> list[tuple[Any, ...]]:
    return [
        (
            f"M{i:07d}",
            f"Membre {i}",
            f"m{i}@example.eu",
            rng.choice(("fr", "en")),
            rng.choice(COUNTRIES),
            rng.choice(PRODUCTS),
        )
        for i in range(count)
    ]


def transaction_rows(count: int, members: int, rng: random.Random) -> list[tuple[Any, ...]]:
    start = datetime(2025, 1, 1, tzinfo=UTC)
    rows = []
    for i in range(count):
        currency = rng.choice(CURRENCIES)
        cents = rng.randint(50, 250_000)
        amount = str(cents) if currency == "JPY" else f"{cents // 100}.{cents % 100:02d}"
        when = start + timedelta(seconds=i * 31_536_000 // max(count, 1))
        rows.append(
            (
                f"TX{i:09d}",
                f"M{rng.randrange(members):07d}",
                amount,
                currency,
                rng.choice(MERCHANTS),
                rng.choice(CATEGORIES),
                when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
        )
    return rows


def write(path: Path, header: tuple[str, ...], rows: list[tuple[Any, ...]]) -> Path:
    if path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        columns = list(zip(*rows, strict=True)) if rows else [()] * len(header)
        table = pa.table(
            {name: pa.array(col, type=pa.string()) for name, col in zip(header, columns, strict=True)}
        )
        pq.write_table(table, path)
        return path
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def raw_sqlite(path: Path, count: int, chunk_size: int) -> tuple[float, list[float]]:
    """``executemany`` of posting-shaped rows into a bare table; only the database work is timed."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(
        "CREATE TABLE postings (id INTEGER PRIMARY KEY, idempotency_key TEXT, debit_account_id INTEGER,"
        " credit_account_id INTEGER, amount INTEGER, unit TEXT, reason TEXT, reference TEXT,"
        " member_id INTEGER, balance_after INTEGER, created_at TEXT)"
    )
    sql = (
        "INSERT INTO postings (idempotency_key, debit_account_id, credit_account_id, amount, unit, reason,"
        " reference, member_id, balance_after, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    total = 0.0
    latencies = []
    for start in range(0, count, chunk_size):
        rows = [
            (
                f"earn:TX{i:09d}",
                1,
                2 + i % 100_000,
                1 + i % 500,
                "points",
                "earn",
                f"TX{i:09d}",
                1 + i % 100_000,
                i,
                now,
            )
            for i in range(start, min(start + chunk_size, count))
        ]
        began = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        connection.executemany(sql, rows)
        connection.execute("COMMIT")
        latencies.append(time.perf_counter() - began)
        total += latencies[-1]
    connection.close()
    return total, latencies


FLOOR_TABLES = ("card_transactions", "postings", "idempotency_keys", "outbox_events")


def schema_floor(source: Path, target: Path, earns: int, chunk_size: int) -> tuple[float, list[float], int]:
    """``executemany`` of exactly the rows the ingest wrote, into the same schema: the ceiling no
    code can pass without writing less per earn.

    ``target`` is a fresh database with the migrated schema (every index and constraint) and the
    members and accounts of ``source`` (copied untimed). Then, per chunk of ``chunk_size`` earns,
    one transaction: the chunk's share of each table's rows (card transactions, postings,
    idempotency keys, outbox events, read back byte for byte from ``source``) with one
    ``executemany`` each, and one balance ``UPDATE`` per account the chunk touched. No reading,
    validation or rule: only the database work. Returns the seconds, the per-chunk latencies and
    the number of rows written.
    """
    connection = sqlite3.connect(target, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute(f"PRAGMA cache_size = -{256 * 1024}")  # as the ingest's tune_for_bulk
    connection.execute("ATTACH DATABASE ? AS src", (str(source),))
    connection.execute("PRAGMA foreign_keys=OFF")  # the untimed copy, in any table order
    connection.execute("BEGIN IMMEDIATE")
    names = "SELECT name FROM {}.sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    shared = {r[0] for r in connection.execute(names.format("main"))} & {
        r[0] for r in connection.execute(names.format("src"))
    }
    for table in sorted(shared - set(FLOOR_TABLES)):
        connection.execute(f"DELETE FROM main.{table}")
        connection.execute(f"INSERT INTO main.{table} SELECT * FROM src.{table}")
    connection.execute("UPDATE main.accounts SET balance = 0")
    connection.execute("COMMIT")
    connection.execute("PRAGMA foreign_keys=ON")
    connection.execute("DETACH DATABASE src")
    chunks = max(1, -(-earns // chunk_size))
    # The source is read chunk by chunk (outside the timed part), so memory stays that of a chunk.
    source_db = sqlite3.connect(source)
    tables = []
    for table in FLOOR_TABLES:
        columns = [row[1] for row in connection.execute(f"PRAGMA main.table_info({table})")]
        count = source_db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        cursor = source_db.cursor()
        cursor.execute(f"SELECT * FROM {table} ORDER BY rowid")
        marks = ", ".join("?" * len(columns))
        sql = f"INSERT INTO main.{table} ({', '.join(columns)}) VALUES ({marks})"
        tables.append((table, columns, count, cursor, sql))
    written = 0
    total = 0.0
    latencies = []
    for n in range(chunks):
        statements: list[tuple[str, list[tuple[Any, ...]]]] = []
        for table, columns, count, cursor, sql in tables:
            rows = cursor.fetchmany((n + 1) * count // chunks - n * count // chunks)
            written += len(rows)
            statements.append((sql, rows))
            if table == "postings":
                credit = columns.index("credit_account_id")
                debit = columns.index("debit_account_id")
                after = columns.index("balance_after")
                balances: dict[int, int] = {}
                for row in rows:
                    balances[row[credit]] = row[after]
                    balances.setdefault(row[debit], 0)
                update = "UPDATE main.accounts SET balance = ? WHERE id = ?"
                statements.append((update, [(b, a) for a, b in balances.items()]))
        began = time.perf_counter()
        connection.execute("BEGIN IMMEDIATE")
        for sql, rows in statements:
            connection.executemany(sql, rows)
        connection.execute("COMMIT")
        latencies.append(time.perf_counter() - began)
        total += latencies[-1]
    source_db.close()
    connection.close()
    return total, latencies, written


def _time_database_writes(engine: Any) -> dict[str, float]:
    """Add up the time the ingest spends in its bulk writes and in COMMIT (the database's share)."""
    from sqlalchemy import event

    spent = {"write": 0.0, "commit": 0.0}
    writer = earn_rows.Writer

    def timed(method: Any) -> Any:
        def wrapper(*args: Any) -> Any:
            began = time.perf_counter()
            try:
                return method(*args)
            finally:
                spent["write"] += time.perf_counter() - began

        return wrapper

    writer.insert = timed(writer.insert)  # type: ignore[method-assign]
    writer.update = timed(writer.update)  # type: ignore[method-assign]
    started: list[float] = []
    event.listen(engine, "commit", lambda _conn: started.append(time.perf_counter()))

    def after_commit(_session: Any) -> None:
        if started:
            spent["commit"] += time.perf_counter() - started.pop()

    from sqlalchemy.orm import Session

    event.listen(Session, "after_commit", after_commit)
    return spent


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def peak_rss_mb() -> float:
    # ru_maxrss is in kilobytes on Linux (bytes on macOS).
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / scale


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--transactions", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=100_000)
    parser.add_argument("--format", choices=("csv", "parquet"), default="csv")
    parser.add_argument("--chunk-size", type=int, default=ingest.DEFAULT_CHUNK_SIZE)
    parser.add_argument("--method", choices=("batch", "rowwise"), default="batch")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="keep the files and databases here (else a temporary folder, removed)",
    )
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time raw executemany of exactly the rows the ingest wrote, same schema (the ceiling)",
    )
    parser.add_argument("--audit", action="store_true", help="run the ledger audit after the ingest")
    parser.add_argument(
        "--tracemalloc", action="store_true", help="also trace Python allocations (slows the ingest down)"
    )
    args = parser.parse_args()

    folder = args.dir or Path(tempfile.mkdtemp(prefix="prevenance-bench-"))
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(args.seed)
    began = time.perf_counter()
    members_file = write(
        folder / f"members.{args.format}", ingest.MEMBER_COLUMNS, member_rows(args.members, rng)
    )
    settlement = write(
        folder / f"settlement.{args.format}",
        ingest.TRANSACTION_COLUMNS,
        transaction_rows(args.transactions, args.members, rng),
    )
    print(f"files:        {folder} ({args.format}), generated in {time.perf_counter() - began:.1f} s")

    database = folder / "ingest.db"
    for leftover in folder.glob("*.db*"):
        leftover.unlink()
    engine = make_engine(f"sqlite:///{database}")
    upgrade(engine)
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=SystemClock().now())

    members = ingest.ingest_members(engine, members_file, chunk_size=args.chunk_size)
    print(
        f"members:      rows={members.rows:,} seconds={members.seconds:.2f} "
        f"rows/s={members.rows / members.seconds:,.0f} {members.counts} rejected={members.rejected}"
    )
    writes = _time_database_writes(engine)
    if args.tracemalloc:
        tracemalloc.start()
    cpu_began = time.process_time()
    report = ingest.ingest_transactions(engine, settlement, chunk_size=args.chunk_size, method=args.method)
    cpu = time.process_time() - cpu_began
    traced = tracemalloc.get_traced_memory()[1] / 2**20 if args.tracemalloc else None
    tracemalloc.stop()
    ingest_rss = peak_rss_mb()
    rate = report.rows / report.seconds if report.seconds else 0.0
    print(
        f"ingest:       rows={report.rows:,} seconds={report.seconds:.2f} rows/s={rate:,.0f} "
        f"{report.counts} rejected={report.rejected} chunks={report.chunks} (chunk size {args.chunk_size:,})"
    )
    print(
        f"  cpu:        {cpu:.2f} s of this process (user + system; steadier than wall time on a shared "
        f"machine), {cpu / max(report.rows, 1) * 1e6:.0f} µs per row"
    )
    print(
        f"  per chunk:  p50={percentile(report.chunk_seconds, 0.5) * 1000:.0f} ms "
        f"p99={percentile(report.chunk_seconds, 0.99) * 1000:.0f} ms "
        f"max={max(report.chunk_seconds, default=0) * 1000:.0f} ms "
        f"(the longest an API writer waits for the write lock)"
    )
    print(
        f"  of which:   {writes['write']:.2f} s writing rows (executemany), {writes['commit']:.2f} s committing, "
        f"the rest reading, checking and computing in Python"
    )
    if args.audit:
        audit_began = time.perf_counter()
        with read_session(engine) as session:
            audit = ledger.audit(session)
        print(
            f"  audit:      ok={audit['ok']} postings={audit['postings']:,} in {time.perf_counter() - audit_began:.1f} s"
        )
    engine.dispose()

    raw_seconds, raw_latencies = raw_sqlite(folder / "raw.db", report.rows, args.chunk_size)
    raw_rate = report.rows / raw_seconds if raw_seconds else 0.0
    print(
        f"raw sqlite3:  rows={report.rows:,} seconds={raw_seconds:.2f} rows/s={raw_rate:,.0f} "
        f"(executemany, bare table, p50 chunk {statistics.median(raw_latencies or [0]) * 1000:.0f} ms)"
    )
    ratio = rate / raw_rate if raw_rate else 0.0
    print(f"ratio:        {ratio:.3f} × raw (target ≥ 0.25) -> {'met' if ratio >= 0.25 else 'MISSED'}")
    if args.floor:
        posted = report.counts.get("posted", 0)
        floor_database = folder / "floor.db"
        floor_engine = make_engine(f"sqlite:///{floor_database}")
        upgrade(floor_engine)  # the same migrations, so the same tables, indexes and triggers
        floor_engine.dispose()
        floor_seconds, floor_latencies, written = schema_floor(
            database, floor_database, posted, args.chunk_size
        )
        floor_rate = posted / floor_seconds if floor_seconds else 0.0
        print(
            f"schema floor: earns={posted:,} rows={written:,} seconds={floor_seconds:.2f} tx/s={floor_rate:,.0f} "
            f"(executemany of the ingest's own rows, same schema and indexes, p50 chunk "
            f"{statistics.median(floor_latencies or [0]) * 1000:.0f} ms)"
        )
        print(
            f"  ceiling:    floor = {floor_rate / raw_rate if raw_rate else 0:.3f} × raw; "
            f"ingest = {rate / floor_rate if floor_rate else 0:.3f} × floor"
        )
    memory = f"peak RSS={ingest_rss:,.0f} MB (ru_maxrss, after the ingest)"
    if traced is not None:
        memory += f", tracemalloc peak during the ingest={traced:,.0f} MB"
    print(f"memory:       {memory}")
    if args.dir is None:
        shutil.rmtree(folder, ignore_errors=True)  # about 1.2 GB at full size


if __name__ == "__main__":
    main()
