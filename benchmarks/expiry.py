"""Benchmark: ``prevenance ledger expire`` over many members against a raw SQL ceiling, in one run.

    PYTHONPATH=src .venv/bin/python benchmarks/expiry.py                  # 5,000 members, SQLite
    PYTHONPATH=src .venv/bin/python benchmarks/expiry.py --members 1000
    PYTHONPATH=src .venv/bin/python benchmarks/expiry.py --database-url postgresql+psycopg://…/bench

Loads ``--members`` members into a fresh migrated database and earns them one card transaction a
month for 18 months (the settlement ingest, with the clock set to each month, so every earn is a
lot of its own age); a fifth of the members redeem a catalogue item half-way. With the programme's
policy set to ``after_earn`` 12 months, it then runs the expiry as of the last month with the
command's own code (lots replayed per member under its lock, the expiry posting, ``expired_lots``,
the warnings, one transaction per chunk) and prints members/s. The ceiling, in the same run on the
same database: one set-based SQL statement computing each member's expired points in closed form
(FIFO with only earns and spending: what was earned before the cutoff less everything spent, when
positive) and one ``INSERT`` of the results into a bare table (no lock, no lot, no warning, no
posting). Both figures and their ratio are printed; the run is checked (the points expired by the
command equal the ceiling's, and the ledger audit holds).
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from datetime import UTC, date, datetime
from pathlib import Path

from sqlalchemy import bindparam, create_engine, text

from prevenance.common.base import UtcDateTime
from prevenance.common.clock import FrozenClock
from prevenance.db import make_engine, read_session, run_in_transaction, unit_of_work
from prevenance.loyalty import expiry, ingest, ledger, programme, service
from prevenance.loyalty.expiry_rules import add_months
from prevenance.migrate import upgrade

MONTHS = 18
POLICY_MONTHS = 12


def fresh_database(url: str | None, folder: Path) -> str:
    if url is None:
        return f"sqlite:///{folder / 'expiry.db'}"
    base = create_engine(url.rsplit("/", 1)[0] + "/postgres", isolation_level="AUTOCOMMIT")
    name = url.rsplit("/", 1)[1]
    with base.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    base.dispose()
    return url


def load(url: str, folder: Path, members: int) -> tuple[FrozenClock, date]:
    engine = make_engine(url)
    upgrade(engine)
    clock = FrozenClock(datetime(2024, 1, 15, 12, tzinfo=UTC))
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=clock.now())
        found = programme.current_document(session)
        assert found is not None
        document = {**found[1], "points_expiry": {"kind": "after_earn", "months": POLICY_MONTHS}}
        programme.install(session, document=document, now=clock.now(), by="benchmark")
    members_file = folder / "members.csv"
    with members_file.open("w", newline="", encoding="utf-8") as handle:
        out = csv.writer(handle)
        out.writerow(ingest.MEMBER_COLUMNS)
        for i in range(members):
            out.writerow((f"M{i:07d}", f"Membre {i}", f"m{i}@example.eu", ("fr", "en")[i % 2], "FR", "gold"))
    assert ingest.ingest_members(engine, members_file, clock=clock).ok
    start = clock.now().date()
    for month in range(MONTHS):
        day = add_months(start, month)
        clock.current = datetime(day.year, day.month, day.day, 12, tzinfo=UTC)
        path = folder / f"tx{month}.csv"
        with path.open("w", newline="", encoding="utf-8") as handle:
            out = csv.writer(handle)
            out.writerow(ingest.TRANSACTION_COLUMNS)
            for i in range(members):
                amount = 50 + (i * 7 + month * 13) % 400
                out.writerow(
                    (
                        f"T{month}-{i}",
                        f"M{i:07d}",
                        f"{amount}.00",
                        "EUR",
                        "Galeries",
                        "books",
                        clock.now().isoformat(),
                    )
                )
        assert ingest.ingest_transactions(engine, path, clock=clock).ok
        if month == 9:
            now = clock.now()
            run_in_transaction(
                engine,
                lambda s, now=now: service.put_catalogue_item(
                    s, sku="pen", name="Pen", points=300, stock=members, now=now
                ),
            )
            for i in range(0, members, 5):
                request = {"id": f"R{i}", "kind": "catalogue", "sku": "pen", "quantity": 1}
                run_in_transaction(
                    engine,
                    lambda s, ref=f"M{i:07d}", request=request, now=now: service.redeem(
                        s, member_ref=ref, request=request, now=now
                    ),
                )
    engine.dispose()
    return clock, clock.now().date()


CEILING = """
INSERT INTO bench_expired (member_id, points)
SELECT member_id, earned_before - spent FROM (
  SELECT a.member_id AS member_id,
         SUM(CASE WHEN p.credit_account_id = a.id AND p.created_at <= :cutoff THEN p.amount ELSE 0 END) AS earned_before,
         SUM(CASE WHEN p.debit_account_id = a.id THEN p.amount ELSE 0 END) AS spent
  FROM accounts a JOIN postings p ON p.credit_account_id = a.id OR p.debit_account_id = a.id
  WHERE a.unit = 'points' AND a.tracks_balance = :yes AND a.balance > 0
  GROUP BY a.member_id
) AS per_member
WHERE earned_before > spent
"""


def ceiling(url: str, cutoff: datetime) -> tuple[float, int, int]:
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP TABLE IF EXISTS bench_expired"))
        connection.execute(text("CREATE TABLE bench_expired (member_id BIGINT, points BIGINT)"))
    started = time.perf_counter()
    with engine.begin() as connection:
        statement = text(CEILING).bindparams(bindparam("cutoff", type_=UtcDateTime()))
        connection.execute(statement, {"cutoff": cutoff, "yes": True})
    seconds = time.perf_counter() - started
    with engine.connect() as connection:
        rows, total = connection.execute(
            text("SELECT COUNT(*), COALESCE(SUM(points), 0) FROM bench_expired")
        ).one()
        connection.execute(text("DROP TABLE bench_expired"))
        connection.commit()
    engine.dispose()
    return seconds, int(rows), int(total)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--members", type=int, default=5000)
    parser.add_argument("--database-url", default=None, help="a PostgreSQL URL (its database is recreated)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        url = fresh_database(args.database_url, folder)
        loading = time.perf_counter()
        clock, as_of = load(url, folder, args.members)
        print(
            f"loaded {args.members} members x {MONTHS} monthly earns in {time.perf_counter() - loading:.0f} s"
        )
        cutoff_day = add_months(as_of, -POLICY_MONTHS)
        cutoff = datetime(cutoff_day.year, cutoff_day.month, cutoff_day.day, 23, 59, 59, tzinfo=UTC)
        ceiling_seconds, ceiling_members, ceiling_points = ceiling(url, cutoff)
        engine = make_engine(url)
        started = time.perf_counter()
        report = expiry.expire(engine, as_of=as_of, now=clock.now())
        seconds = time.perf_counter() - started
        with read_session(engine) as session:
            audit = ledger.audit(session)
        engine.dispose()
    backend = "postgresql" if args.database_url else "sqlite"
    print(
        f"expire ({backend}): {report.members} members in {seconds:.2f} s = {report.members / seconds:,.0f} members/s; "
        f"{report.members_expired} expired {report.points_expired} points, {report.warnings} warnings queued"
    )
    print(
        f"raw SQL ceiling: {ceiling_members} members' expiry computed and written in {ceiling_seconds:.2f} s = "
        f"{report.members / ceiling_seconds:,.0f} members/s ({ceiling_points} points)"
    )
    print(f"ratio: the command runs at {ceiling_seconds / seconds:.1%} of the ceiling's speed")
    assert report.points_expired == ceiling_points, (report.points_expired, ceiling_points)
    assert audit["ok"], [c for c in audit["checks"] if not c["ok"]]
    print("checked: the command expired exactly the ceiling's points; the ledger audit holds")


if __name__ == "__main__":
    main()
