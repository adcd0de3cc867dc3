"""Benchmark: ``prevenance voice import`` of a large answers file against raw ``executemany``, in one run.

    .venv/bin/python benchmarks/voice_import.py                    # 1,000,000 answers, 20,000 members
    .venv/bin/python benchmarks/voice_import.py --answers 200000
    .venv/bin/python benchmarks/voice_import.py --answers 200000 \
        --postgres postgresql+psycopg://postgres@127.0.0.1:5432/test      # a fresh database there

Writes a member file and an answers CSV (10% with a comment, 1% with a suggestion) to a folder,
loads the members into a fresh migrated SQLite file, then imports the answers file with the command's
own code (streamed, checked, one transaction) while sampling this process's resident memory after
each chunk; then reads the same CSV and inserts its rows into a bare answers-shaped table (no index,
no constraint) of another SQLite file with ``sqlite3``'s ``executemany``, one transaction: the
ceiling. Prints answers/s of both (target: import >= 50,000/s), the ratio, and the memory after the
first chunk, halfway and at the end (target: flat, it must not grow with the file).

It also prints the **schema floor**: the time the database itself spent in the import's INSERT
statements (timed around each driver call), i.e. what writing these rows into the real tables, with
their indexes and the ``survey.answered`` outbox event of each answer, costs before any Python work;
no implementation that writes the same rows can run faster than that.

With ``--postgres`` the import runs on a fresh database of that server (created, then dropped), and
the ceiling is a bare ``COPY`` of the CSV's rows (``csv.reader`` + psycopg's ``write_row``) into a
bare table of the same database, one transaction; the time printed beside the floor is then the time
spent in the import's bulk inserts (``COPY``), the driver's formatting of the rows included, since the
server's own work runs in its process, beside Python's.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import resource
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from earn_api import drop_postgres, fresh_postgres
from sqlalchemy import event

from prevenance.common import bulk
from prevenance.common.clock import SystemClock
from prevenance.db import make_engine, read_session, run_in_transaction, unit_of_work
from prevenance.loyalty import ingest, programme
from prevenance.migrate import upgrade
from prevenance.voice import service

HEADER = (
    "id",
    "member_ref",
    "answered_at",
    "agent",
    "team",
    "channel",
    "reason",
    "recommend",
    "interaction",
    "comment",
    "suggestion",
)
COMMENTS = (
    "Conseiller très aimable, délai un peu long",
    "The agent was quick and helpful",
    "Attente trop longue",
)


def rss_mb() -> float:
    """Current resident memory of this process (``/proc/self/statm``)."""
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * resource.getpagesize() / 2**20


def write_files(folder: Path, answers: int, members: int, seed: int) -> tuple[Path, Path]:
    rng = random.Random(seed)
    members_file = folder / "members.csv"
    with members_file.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(ingest.MEMBER_COLUMNS)
        for i in range(members):
            out.writerow(
                (f"M{i:07d}", f"Membre {i}", f"m{i}@example.eu", rng.choice(("fr", "en")), "FR", "gold")
            )
    answers_file = folder / "answers.csv"
    start = datetime(2026, 1, 1, tzinfo=UTC)
    with answers_file.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(HEADER)
        for i in range(answers):
            at = start + timedelta(seconds=rng.randrange(86_400 * 28))
            agent = rng.randrange(2000)
            roll = rng.random()
            out.writerow(
                (
                    f"P{i:09d}",
                    f"M{rng.randrange(members):07d}",
                    at.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    f"agent-{agent:04d}",
                    f"team-{agent % 80:02d}",
                    "phone",
                    rng.choice(("cards.lost", "rewards.balance", "travel.booking")),
                    rng.randrange(11),
                    rng.randrange(1, 6),
                    rng.choice(COMMENTS) if roll < 0.10 else "",
                    "Un chat en ligne le soir" if roll < 0.01 else "",
                )
            )
    return members_file, answers_file


def raw_ceiling_postgres(url: str, answers_file: Path) -> float:
    """Seconds to read the CSV and ``COPY`` its rows into a bare table of the same database."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host,
        port=parsed.port,
        user=parsed.username,
        password=parsed.password,
        dbname=parsed.database,
    ) as connection:
        connection.execute(f"CREATE TABLE raw_answers ({', '.join(f'{name} text' for name in HEADER)})")
        connection.commit()
        began = time.perf_counter()
        with answers_file.open(newline="", encoding="utf-8") as handle, connection.cursor() as cursor:
            reader = csv.reader(handle)
            next(reader)
            with cursor.copy(f"COPY raw_answers ({', '.join(HEADER)}) FROM STDIN") as copy:
                for row in reader:
                    copy.write_row(row)
        connection.commit()
        return time.perf_counter() - began


def raw_ceiling(folder: Path, answers_file: Path) -> float:
    """Seconds to read the CSV and ``executemany`` its rows into a bare table, one transaction."""
    path = folder / "raw.db"
    path.unlink(missing_ok=True)
    connection = sqlite3.connect(path)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    connection.execute(f"CREATE TABLE answers ({', '.join(HEADER)})")
    sql = f"INSERT INTO answers VALUES ({', '.join('?' * len(HEADER))})"
    began = time.perf_counter()
    with answers_file.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        next(reader)
        while rows := [row for _, row in zip(range(5000), reader, strict=False)]:
            connection.executemany(sql, rows)
    connection.commit()
    seconds = time.perf_counter() - began
    connection.close()
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--answers", type=int, default=1_000_000)
    parser.add_argument("--members", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres",
        default=None,
        help="a PostgreSQL server URL: the import runs on a fresh database there (dropped after)",
    )
    parser.add_argument(
        "--dir", type=Path, default=None, help="keep the files here (else a temporary folder)"
    )
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="prevenance-voice-import-"))
    folder.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    members_file, answers_file = write_files(folder, args.answers, args.members, args.seed)
    print(f"files        : {folder}, written in {time.perf_counter() - began:.1f} s")
    database_name = f"prevenance_bench_voice_{os.getpid()}"
    try:
        return measure(args, folder, members_file, answers_file, database_name)
    finally:
        if args.postgres:
            drop_postgres(args.postgres, database_name)


def measure(
    args: argparse.Namespace, folder: Path, members_file: Path, answers_file: Path, database_name: str
) -> int:
    database = folder / "voice.db"
    for leftover in folder.glob("voice.db*"):
        leftover.unlink()
    url = fresh_postgres(args.postgres, database_name) if args.postgres else f"sqlite:///{database}"
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=SystemClock().now())
    ingest.ingest_members(engine, members_file)
    # The member load enlarges its connections' page cache for its own working set; the import runs,
    # as `prevenance voice import` does, in a process of its own: fresh connections.
    engine.dispose()

    samples: list[tuple[int, float]] = []
    insert_seconds = [0.0]

    def started(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        conn.info["insert_started"] = (
            time.perf_counter() if statement.lstrip().upper().startswith("INSERT") else None
        )

    def finished(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if (began_at := conn.info.pop("insert_started", None)) is not None:
            insert_seconds[0] += time.perf_counter() - began_at

    event.listen(engine, "before_cursor_execute", started)
    event.listen(engine, "after_cursor_execute", finished)
    copy_rows = bulk.copy_rows

    def timed_copy(*arguments: Any) -> None:
        began_at = time.perf_counter()
        copy_rows(*arguments)
        insert_seconds[0] += time.perf_counter() - began_at

    bulk.copy_rows = timed_copy  # type: ignore[assignment]
    with answers_file.open(newline="", encoding="utf-8") as handle:
        began = time.perf_counter()
        result: dict[str, Any] = run_in_transaction(
            engine,
            lambda s: service.import_answers(
                s,
                rows=csv.DictReader(handle),
                now=SystemClock().now(),
                progress=lambda done: samples.append((done, rss_mb())),
            ),
        )
        seconds = time.perf_counter() - began
    bulk.copy_rows = copy_rows  # type: ignore[assignment]
    event.remove(engine, "before_cursor_execute", started)
    event.remove(engine, "after_cursor_execute", finished)
    with read_session(engine) as session:
        stored = service.scores(session, by="team", month="2026-01")["n"]
    if result["imported"] != args.answers or stored != args.answers:
        print(f"MISMATCH: imported {result}, stored {stored}", file=sys.stderr)
        return 1
    engine.dispose()
    raw = raw_ceiling_postgres(url, answers_file) if args.postgres else raw_ceiling(folder, answers_file)
    rate, raw_rate = args.answers / seconds, args.answers / raw
    print(
        f"voice import : {seconds:.1f} s, {rate:,.0f} answers/s (target >= 50,000: {'met' if rate >= 50_000 else 'NOT met'})"
    )
    how = "COPY" if args.postgres else "executemany"
    print(f"raw ceiling  : {raw:.1f} s, {raw_rate:,.0f} rows/s (csv.reader + {how}, bare table)")
    print(f"ratio        : import runs at {rate / raw_rate:.2f} of the ceiling")
    floor = insert_seconds[0] + 0.0
    print(
        f"schema floor : {floor:.1f} s in the import's INSERTs (answers, topics, suggestions, outbox events, "
        f"with their indexes): {args.answers / floor:,.0f} answers/s at most; the rest ({seconds - floor:.1f} s) "
        "is checking and building the rows"
    )
    first, middle, last = samples[0], samples[len(samples) // 2], samples[-1]
    print(
        f"memory (RSS) : {first[1]:,.0f} MB after {first[0]:,} lines, {middle[1]:,.0f} MB after {middle[0]:,}, "
        f"{last[1]:,.0f} MB after {last[0]:,} (peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB)"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
