"""The server's SQLite WAL is checkpointed by its own thread, beside the writers: commits only append
to the WAL (the backstop aside), and what they committed is copied into the database file."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import text

from prevenance.db import (
    BACKSTOP_CHECKPOINT_PAGES,
    WalCheckpointer,
    checkpoint_wal,
    checkpoints_in_background,
    make_engine,
    unit_of_work,
)


def _fill(url: str) -> None:
    engine = make_engine(url)
    with unit_of_work(engine) as session:
        session.execute(text("CREATE TABLE rows (id INTEGER PRIMARY KEY, payload TEXT)"))
    engine.dispose()


def test_commits_leave_the_checkpoint_to_the_thread(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'wal.db'}"
    _fill(url)
    engine = make_engine(url, background_checkpoints=True)
    assert checkpoints_in_background(engine)
    with engine.connect() as connection:
        pages = connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one()
    assert pages == BACKSTOP_CHECKPOINT_PAGES
    with unit_of_work(engine) as session:
        session.execute(text("INSERT INTO rows (payload) VALUES (:p)"), [{"p": "x" * 500}] * 200)
    wal = tmp_path / "wal.db-wal"
    assert wal.stat().st_size > 0
    checkpoint_wal(engine)
    raw = engine.raw_connection()  # outside any transaction, as the checkpointer runs
    try:
        busy, logged, copied = raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    finally:
        raw.close()
    assert (busy, logged - copied) == (0, 0)  # every committed page is in the database file
    with unit_of_work(engine) as session:
        assert session.execute(text("SELECT count(*) FROM rows")).scalar_one() == 200
    engine.dispose()


def test_commit_checkpoints_stay_by_default(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'default.db'}"
    engine = make_engine(url)
    assert not checkpoints_in_background(engine)
    with engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar_one() == 1000
    engine.dispose()


def test_the_checkpointer_stops_when_told(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stop.db'}"
    _fill(url)
    engine = make_engine(url, background_checkpoints=True)
    stop = threading.Event()
    checkpointer = WalCheckpointer(engine, stop, interval=0.01)
    checkpointer.start()
    with unit_of_work(engine) as session:
        session.execute(text("INSERT INTO rows (payload) VALUES ('y')"))
    stop.set()
    checkpointer.join(timeout=5)
    assert not checkpointer.is_alive()
    engine.dispose()
