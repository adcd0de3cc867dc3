"""Running a file chunk by chunk: one unit of work per chunk, re-run when a concurrent writer won a
race, the rejects file written as the chunks commit, and where a stopped run stands."""

from __future__ import annotations

import contextlib
import csv
import itertools
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine, Table
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from prevenance.common.bulk import tune_for_bulk
from prevenance.common.problems import PrevenanceError
from prevenance.db import lost_race, run_in_transaction
from prevenance.loyalty import earning
from prevenance.loyalty.ingest.constants import REJECT_COLUMNS
from prevenance.loyalty.ingest.files import (
    ChunkStats,
    FileError,
    LoadStopped,
    ReadFailure,
    Record,
    Report,
    count_records,
    default_rejects_path,
    file_format,
    read_chunks,
)

ATTEMPTS = 8
T = TypeVar("T")


def _chunk_may_rerun(error: BaseException) -> bool:
    """A chunk re-runs when a concurrent writer won a race (a unique key the API claimed first, a
    deadlock, a serialisation failure, a busy SQLite file) or changed the chunk's members."""
    return isinstance(error, earning.PlanChanged) or lost_race(error)


def with_retries(engine: Engine, work: Callable[[Session], T]) -> tuple[T, int]:
    """Run a chunk in one unit of work (``run_in_transaction``); returns the chunk's result and how
    many times it was re-run."""
    reruns: list[BaseException] = []
    try:
        result = run_in_transaction(
            engine,
            work,
            attempts=ATTEMPTS,
            retry_when=_chunk_may_rerun,
            prepare=tune_for_bulk,
            on_retry=reruns.append,
        )
    except earning.PlanChanged:
        raise RuntimeError("the chunk's members kept changing under it; try again later")
    return result, len(reruns)


def run_file(
    kind: str,
    path: Path,
    *,
    columns: Sequence[str],
    chunk_size: int,
    rejects_path: Path | None,
    apply: Callable[[list[Record]], ChunkStats],
    on_chunk: Callable[[ChunkStats], None] | None,
    engine: Engine,
    tables: Sequence[Table],
    optional: Sequence[str] = (),
) -> Report:
    started = time.perf_counter()
    target = rejects_path or default_rejects_path(path)
    _check_rejects_target(path, target)
    chunks = read_chunks(path, columns, chunk_size=chunk_size, optional=optional)
    # Reading the first chunk checks the header: a file that cannot be read fails before anything
    # is written, the rejects file included.
    first = next(chunks, None)
    report = Report(kind=kind, rejects_path=target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(REJECT_COLUMNS)
        records_left = itertools.chain([first] if first else [], chunks)
        while True:
            try:
                records = next(records_left, None)
            except ReadFailure as error:
                raise _stopped(report, path, str(error), engine, tables) from None
            if records is None:
                break
            try:
                stats = apply(records)
            except (SQLAlchemyError, PrevenanceError, RuntimeError) as error:
                reason = getattr(error, "detail", None) or str(getattr(error, "orig", None) or error)
                raise _stopped(report, path, reason, engine, tables) from error
            report.chunks += 1
            report.rows += stats.rows
            report.rejected += len(stats.rejects)
            report.chunk_seconds.append(stats.seconds)
            report.retries += stats.retries
            for name, value in stats.counts.items():
                report.counts[name] = report.counts.get(name, 0) + value
            writer.writerows(r.as_row() for r in stats.rejects)
            out.flush()
            if on_chunk is not None:
                on_chunk(stats)
    if report.rows > report.rejected:
        _refresh_statistics(engine, tables)
    report.seconds = time.perf_counter() - started
    return report


def _check_rejects_target(path: Path, target: Path) -> None:
    """Refuse (``FileError``) a rejects file that is the input itself (the same path, a link to it):
    it is rewritten from its first line while the input is read, so the load would end after the
    rows already buffered, without a word, and the sender's file would be gone."""
    try:
        same = target.exists() and path.exists() and os.path.samefile(path, target)
    except OSError:
        same = False
    if same:
        raise FileError(f"{target}: the rejects file would overwrite the input; nothing was loaded")


def _stopped(report: Report, path: Path, reason: str, engine: Engine, tables: Sequence[Table]) -> LoadStopped:
    """What to raise when a load stops part-way: the committed chunks' report and the row count."""
    total: int | None = None
    if file_format(path) == "parquet":
        try:
            total = count_records(path)
        except FileError:
            total = None
    if report.rows > report.rejected:
        # The database may be what failed: the statistics can then wait for autovacuum.
        with contextlib.suppress(SQLAlchemyError):
            _refresh_statistics(engine, tables)
    return LoadStopped(report, reason, total)


def _refresh_statistics(engine: Engine, tables: Sequence[Table]) -> None:
    """``ANALYZE`` the tables a load grew, on PostgreSQL.

    Autovacuum analyses a table only after a while; until then the planner still believes the row
    counts of before the load and may choose nested loops that scan a million rows per row (the
    ledger audit went from milliseconds to minutes after loading 30,000 transactions into an
    emptied table).
    """
    if engine.dialect.name != "postgresql":
        return
    with engine.begin() as connection:
        for table in tables:
            connection.exec_driver_sql(f"ANALYZE {engine.dialect.identifier_preparer.quote(table.name)}")
