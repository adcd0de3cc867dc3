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
    wal_checkpoints_in_background,
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


def _checkpointer_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "prevenance-wal-checkpoint" and t.is_alive()]


def test_a_long_running_command_checkpoints_in_a_thread_for_as_long_as_it_runs(tmp_path: Path) -> None:
    # `prevenance stream run` asks for background checkpoints and wraps its work in this block.
    url = f"sqlite:///{tmp_path / 'stream.db'}"
    _fill(url)
    before = set(_checkpointer_threads())
    engine = make_engine(url, background_checkpoints=True)
    with wal_checkpoints_in_background(engine):
        started = set(_checkpointer_threads()) - before
        assert len(started) == 1
    for thread in started:
        thread.join()  # told to stop on leaving the block: it ends (waits for the thread, not a delay)
    assert not set(_checkpointer_threads()) & started
    plain = make_engine(url)
    with wal_checkpoints_in_background(plain):
        assert not set(_checkpointer_threads()) - before  # commits checkpoint as usual: no thread
    engine.dispose()
    plain.dispose()
