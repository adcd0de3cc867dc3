import random, sys, time
from pathlib import Path
import tempfile
sys.argv_mode = sys.argv[1]
from ingest import write, member_rows, transaction_rows
from earn_api import fresh_postgres, drop_postgres
from prevenance.common.clock import SystemClock
from prevenance.db import make_engine, unit_of_work
from prevenance.loyalty import ingest, programme
from prevenance.loyalty.ingest import runner
from prevenance.migrate import upgrade
if sys.argv_mode == "generic":
    runner.tune_for_bulk = lambda session: None
n = int(sys.argv[2])
folder = Path(tempfile.mkdtemp())
rng = random.Random(7)
members_file = write(folder / "members.csv", ingest.MEMBER_COLUMNS, member_rows(20000, rng))
settlement = write(folder / "settlement.csv", ingest.TRANSACTION_COLUMNS, transaction_rows(n, 20000, rng))
server = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
url = fresh_postgres(server, "prevenance_bench_ingest_ab")
try:
    engine = make_engine(url)
    upgrade(engine)
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=SystemClock().now())
    ingest.ingest_members(engine, members_file)
    t = time.perf_counter()
    report = ingest.ingest_transactions(engine, settlement)
    s = time.perf_counter() - t
    print(sys.argv_mode, report.rows, f"{s:.1f} s", f"{report.rows / s:,.0f} rows/s", report.counts)
    engine.dispose()
finally:
    drop_postgres(server, "prevenance_bench_ingest_ab")
