"""Bulk loads: members and settlement files of card transactions (CSV or Parquet).

A file is read in chunks and each chunk is one unit of work: one database transaction that
commits its rows, their idempotency keys and their outbox events together. A run killed at any
point has committed a prefix of whole chunks and nothing else; running the file again replays
that prefix from its idempotency keys (writing nothing) and posts the rest, in file order, so the
ledger ends exactly as after one clean run.

Transactions obey the rules of ``POST /v1/transactions`` (``service.record_transaction``) exactly:
the same body validation, the same points, postings, idempotency keys (scope ``transaction``, the
body's fingerprint, the stored answer), the same outbox events and referral bonuses, and the same
transaction hooks (offers) unless ``hooks`` is false (``--no-hooks``, for back-filling history).
Two paths do that work:

* ``rowwise``: the service function row by row, each row inside a SAVEPOINT so a refused row does
  not abort its chunk. The reference behaviour; slow.
* ``batch`` (the default): the chunk goes through the earn engine every door uses
  (``loyalty.earning.apply_earns``): one query per chunk for its members, idempotency keys and
  pending referrals, the rules in Python, the rows written with ``executemany`` (``COPY`` on
  PostgreSQL), balances computed in file order from the locked account rows. A test ingests the
  same file both ways and compares the ledgers row for row.

A refused row is written to the rejects file with its line number and why; the rest land.
"""

from __future__ import annotations

import contextlib
import csv
import itertools
import operator
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, TypeVar, cast

from pydantic import ValidationError
from sqlalchemy import Engine, Table, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from prevenance.common.clock import Clock, SystemClock
from prevenance.common.inputs import NUL_MESSAGE, nul_field, printable
from prevenance.common.problems import PrevenanceError
from prevenance.customers import rules as member_rules
from prevenance.customers import service as customers
from prevenance.customers.schemas import MemberPut
from prevenance.customers.tables import Member
from prevenance.db import lost_race, run_in_transaction
from prevenance.loyalty import earning, service
from prevenance.loyalty.schemas import TransactionCreate

MEMBER_COLUMNS = ("ref", "name", "email", "language", "country", "product")
# Read when the file has them; a file without the column leaves the stored value as it is.
MEMBER_OPTIONAL_COLUMNS = ("city", "phone")
TRANSACTION_COLUMNS = ("id", "member_ref", "amount", "currency", "merchant", "category", "occurred_at")
REJECT_COLUMNS = ("line", "key", "status", "problem", "field", "reason")
DEFAULT_CHUNK_SIZE = 10_000
Method = Literal["batch", "rowwise"]

_ATTEMPTS = 8
_SQLITE_CACHE_KIB = 256 * 1024

T = TypeVar("T")

_MEMBERS = cast(Table, Member.__table__)
# Shared with the earn engine (the bulk writer, its JSON text and the body fingerprint).
_Writer = earning.Writer
_matching = earning.matching
json_text = earning.json_text
transaction_fingerprint = earning.transaction_fingerprint


class FileError(Exception):
    """The file cannot be read as a member or settlement file (nothing was loaded)."""


class LoadStopped(Exception):
    """The load stopped part-way (a part of the file that cannot be read, a database that fails):
    ``report`` says what the committed chunks did — rows ``1..report.rows`` of the file are done
    (posted, replayed or in the rejects file), the rest are not. Running the same file again (once
    it can be read) replays the done rows from their idempotency keys and loads the rest."""

    def __init__(self, report: Report, reason: str, total: int | None = None) -> None:
        super().__init__(reason)
        self.report, self.reason, self.total = report, reason, total

    def summary(self) -> str:
        """One line saying exactly which rows landed and which did not."""
        done = self.report.rows
        counts = " ".join(f"{name}={value}" for name, value in self.report.counts.items())
        rest = (
            f"rows {done + 1}–{self.total}"
            if self.total and self.total > done
            else f"rows {done + 1} onwards"
        )
        if done == 0:
            return f"no row committed; {rest} not loaded"
        return f"rows 1–{done} committed ({counts} rejected={self.report.rejected}), {rest} not loaded"


class _ReadFailure(Exception):
    """A part of the file after the rows already handed out cannot be read."""


@dataclass(frozen=True)
class Reject:
    """A row that was refused: where it is, which key it carried, and why (as the API would say)."""

    line: int
    key: str
    status: int
    problem: str
    field: str | None
    reason: str

    def as_row(self) -> list[str]:
        row = [str(self.line), self.key, str(self.status), self.problem, self.field or "", self.reason]
        return [printable(value) for value in row]  # a NUL would make the rejects file unreadable


@dataclass
class ChunkStats:
    """What one committed chunk did."""

    rows: int
    seconds: float
    counts: dict[str, int]
    rejects: list[Reject]
    retries: int = 0


@dataclass
class Report:
    """What a whole run did. ``counts`` holds posted/replayed (transactions) or
    created/updated/unchanged (members); ``rejected`` rows are in ``rejects_path``."""

    kind: str
    rejects_path: Path
    rows: int = 0
    rejected: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    chunks: int = 0
    chunk_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0
    retries: int = 0

    @property
    def ok(self) -> bool:
        return self.rejected == 0


# --- reading files -----------------------------------------------------------------------------

# A record: its line (CSV: the physical line it starts on, the header being line 1; Parquet: the
# row number, the first row being 1), and its values or why it could not even be split into fields.
Record = tuple[int, dict[str, Any] | None, str | None]


def default_rejects_path(path: Path) -> Path:
    """``settlement.csv`` → ``settlement.rejects.csv``, beside the input."""
    return path.with_name(f"{path.stem}.rejects.csv")


def file_format(path: Path) -> str:
    """``csv`` or ``parquet``, from the file name's extension."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix in (".parquet", ".pq"):
        return "parquet"
    raise FileError(f"{path.name}: unknown format (expected a .csv or .parquet file)")


def count_records(path: Path) -> int:
    """How many records the file holds (for a progress bar; CSV counts lines, quoted newlines
    included, so it may overestimate)."""
    if file_format(path) == "parquet":
        return int(open_parquet(path).metadata.num_rows)
    lines = 0
    last = b"\n"
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
            last = block[-1:]
    if last != b"\n":
        lines += 1
    return max(lines - 1, 0)


def verify_file(path: Path, columns: Sequence[str]) -> int:
    """Check, before anything is written, that the whole file can be read as a load of
    ``columns``: the format, the encoding (CSV: UTF-8 throughout), the header or the Parquet footer,
    layout and schema. Returns how many records it holds (``count_records``); ``FileError`` else."""
    if not path.is_file():
        raise FileError(f"{path}: no such file")
    if file_format(path) == "parquet":
        names = open_parquet(path).schema_arrow.names
    else:
        check_utf8(path)
        with path.open("r", newline="", encoding="utf-8-sig") as handle:
            try:
                names = [h.strip() for h in next(csv.reader(handle))]
            except StopIteration:
                raise FileError(f"{path.name}: empty file (a header line is expected)") from None
            except csv.Error as error:
                raise FileError(f"{path.name}: cannot read the header: {error}") from None
    missing = [c for c in columns if c not in names]
    if missing:
        raise FileError(f"{path.name}: missing column(s) {', '.join(missing)} in the header")
    return count_records(path)


def read_chunks(
    path: Path, columns: Sequence[str], *, chunk_size: int, optional: Sequence[str] = ()
) -> Iterator[list[Record]]:
    """The file's records, ``chunk_size`` at a time; only ``columns`` are kept (others ignored),
    with those of the ``optional`` columns the file has (a record has no key for the others)."""
    if not path.is_file():
        raise FileError(f"{path}: no such file")
    if chunk_size < 1:
        raise FileError("chunk size must be at least 1")
    if file_format(path) == "parquet":
        return _parquet_chunks(path, columns, chunk_size, optional)
    return _csv_chunks(path, columns, chunk_size, optional)


def check_utf8(path: Path) -> None:
    """Refuse (``FileError``) a CSV file that is not UTF-8 throughout, naming the first bad line,
    before anything is written: one pass decoding the bytes, much cheaper than the load itself."""
    import codecs

    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with path.open("rb") as handle:
        while True:
            block = handle.read(1 << 20)
            try:
                decoder.decode(block, final=not block)
            except UnicodeDecodeError as error:
                line += block[: error.start].count(b"\n")
                raise FileError(
                    f"{path.name}: not UTF-8 text (line {line}: {error.reason}); nothing was loaded"
                ) from None
            if not block:
                return
            line += block.count(b"\n")


def _csv_chunks(
    path: Path, columns: Sequence[str], chunk_size: int, optional: Sequence[str] = ()
) -> Iterator[list[Record]]:
    check_utf8(path)
    with path.open("r", newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        try:
            header = next(reader)
        except StopIteration:
            raise FileError(f"{path.name}: empty file (a header line is expected)")
        except (csv.Error, UnicodeDecodeError) as error:
            raise FileError(f"{path.name}: cannot read the header: {error}")
        names = [h.strip() for h in header]
        missing = [c for c in columns if c not in names]
        if missing:
            raise FileError(f"{path.name}: missing column(s) {', '.join(missing)} in the header")
        columns = [*columns, *(c for c in optional if c in names)]
        pick = operator.itemgetter(*(names.index(c) for c in columns))
        width = len(names)
        chunk: list[Record] = []
        previous = reader.line_num
        while True:
            start = previous + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except (csv.Error, UnicodeDecodeError) as error:
                previous = reader.line_num
                chunk.append((start, None, f"unreadable CSV record: {error}"))
            else:
                previous = reader.line_num
                if not fields:
                    continue  # a blank line
                if len(fields) != width:
                    chunk.append((start, None, f"expected {width} fields, found {len(fields)}"))
                else:
                    chunk.append((start, dict(zip(columns, pick(fields), strict=True)), None))
            if len(chunk) >= chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def open_parquet(path: Path) -> Any:
    """The file's ``ParquetFile``, its footer and layout checked: a garbage, truncated or
    inconsistent file is refused (``FileError``) here, before anything is written. Page checksums,
    when the writer stored them, are verified as pages are read."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path, page_checksum_verification=True)
        metadata = parquet.metadata
        parquet.schema_arrow  # noqa: B018 - decoding the schema is part of the check
        _check_layout(metadata, path.stat().st_size)
    except (pa.ArrowException, OSError, ValueError) as error:
        raise FileError(f"{path.name}: not a readable Parquet file ({error}); nothing was loaded") from None
    return parquet


def _check_layout(metadata: Any, size: int) -> None:
    """Every column chunk the footer describes lies inside the file, before the footer."""
    end = size - 8 - int(metadata.serialized_size)  # data ends where the footer begins
    for group in range(metadata.num_row_groups):
        row_group = metadata.row_group(group)
        for index in range(row_group.num_columns):
            chunk = row_group.column(index)
            starts = [chunk.data_page_offset]
            if chunk.has_dictionary_page and chunk.dictionary_page_offset:
                starts.append(chunk.dictionary_page_offset)
            start = min(starts)
            if start < 4 or start + chunk.total_compressed_size > end:
                raise ValueError(
                    f"row group {group + 1}, column {chunk.path_in_schema}: "
                    f"bytes {start}–{start + chunk.total_compressed_size} lie outside the data ({end} bytes)"
                )


def _parquet_chunks(
    path: Path, columns: Sequence[str], chunk_size: int, optional: Sequence[str] = ()
) -> Iterator[list[Record]]:
    import pyarrow as pa

    parquet = open_parquet(path)
    names = parquet.schema_arrow.names
    missing = [c for c in columns if c not in names]
    if missing:
        raise FileError(f"{path.name}: missing column(s) {', '.join(missing)}")
    columns = [*columns, *(c for c in optional if c in names)]
    line = 0
    batches = parquet.iter_batches(batch_size=chunk_size, columns=list(columns))
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError, ValueError) as error:
            raise _ReadFailure(f"{path.name}: rows from {line + 1} cannot be read ({error})") from None
        if batch is None:
            return
        values = [_parquet_column(batch.column(c)) for c in columns]
        chunk: list[Record] = []
        for row in zip(*values, strict=True):
            line += 1
            chunk.append((line, dict(zip(columns, row, strict=True)), None))
        yield chunk


def _parquet_column(column: Any) -> list[Any]:
    """A column's values as Python objects. A timestamp Python cannot hold (beyond year 9999) is
    passed on as text, so that row alone is refused naming its field, like any bad date."""
    import pyarrow as pa

    try:
        return [_parquet_value(v) for v in column.to_pylist()]
    except (ValueError, OverflowError, pa.ArrowException):
        values = []
        for index in range(len(column)):
            try:
                values.append(_parquet_value(column[index].as_py()))
            except (ValueError, OverflowError, pa.ArrowException):
                values.append(f"{column.cast(pa.int64())[index].as_py()} ({column.type}) is out of range")
        return values


def _parquet_value(value: Any) -> Any:
    # A decimal column is exact, so it is read as the decimal string it stands for; a float column
    # is not, and is refused like a JSON number would be by the API.
    if isinstance(value, Decimal):
        return str(value)
    return value


def _problem(error: PrevenanceError, line: int, key: str) -> Reject:
    return Reject(line, key, error.status, error.type_slug, error.field, error.detail)


def _validation_reject(error: ValidationError, line: int, key: str) -> Reject:
    first = error.errors()[0]
    location = [str(p) for p in first.get("loc", ())]
    where = ".".join(location) or None
    message = str(first.get("msg", "invalid value"))
    return Reject(line, key, 422, "invalid-input", where, f"{where}: {message}" if where else message)


def _nul_reject(values: dict[str, Any], line: int, key: str) -> Reject | None:
    """A row with a NUL character in a field is refused naming it, as the API refuses the body."""
    field = nul_field(values)
    if field is None:
        return None
    return Reject(line, key, 422, "invalid-input", field, f"{field}: {NUL_MESSAGE}")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)


# --- running a file chunk by chunk -------------------------------------------------------------


def tune_for_bulk(session: Session) -> None:
    """Give SQLite a page cache the size of a load's working set.

    The default (2 MiB) holds a sliver of the indexes a load appends to at random places (a
    member's postings, a random event id), so past a few hundred thousand rows nearly every insert
    re-reads index pages from the operating system. The setting belongs to the connection (the
    cache fills only as pages are used) and is harmless for the API's use of it afterwards.
    """
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql(f"PRAGMA cache_size = -{_SQLITE_CACHE_KIB}")


def _chunk_may_rerun(error: BaseException) -> bool:
    """A chunk re-runs when a concurrent writer won a race (a unique key the API claimed first, a
    deadlock, a serialisation failure, a busy SQLite file) or changed the chunk's members."""
    return isinstance(error, earning.PlanChanged) or lost_race(error)


def _with_retries(engine: Engine, work: Callable[[Session], T]) -> tuple[T, int]:
    """Run a chunk in one unit of work (``run_in_transaction``); returns the chunk's result and how
    many times it was re-run."""
    reruns: list[BaseException] = []
    try:
        result = run_in_transaction(
            engine,
            work,
            attempts=_ATTEMPTS,
            retry_when=_chunk_may_rerun,
            prepare=tune_for_bulk,
            on_retry=reruns.append,
        )
    except earning.PlanChanged:
        raise RuntimeError("the chunk's members kept changing under it; try again later")
    return result, len(reruns)


def _run(
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
    chunks = read_chunks(path, columns, chunk_size=chunk_size, optional=optional)
    # Reading the first chunk checks the header: a file that cannot be read fails before anything
    # is written, the rejects file included.
    first = next(chunks, None)
    target = rejects_path or default_rejects_path(path)
    report = Report(kind=kind, rejects_path=target)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(REJECT_COLUMNS)
        records_left = itertools.chain([first] if first else [], chunks)
        while True:
            try:
                records = next(records_left, None)
            except _ReadFailure as error:
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


# --- members -----------------------------------------------------------------------------------


@dataclass(slots=True)
class _MemberRow:
    line: int
    ref: str
    data: customers.MemberData | None
    reject: Reject | None
    optional: tuple[str, ...] = ()  # the optional columns the file has


def _parse_member(record: Record) -> _MemberRow:
    line, values, problem = record
    if values is None:
        return _MemberRow(line, "", None, Reject(line, "", 422, "invalid-input", None, problem or ""))
    ref = _text(values.get("ref"))
    nul = _nul_reject(values, line, ref)
    if nul is not None:
        return _MemberRow(line, ref, None, nul)
    if not (isinstance(values.get("ref"), str) and member_rules.is_valid_ref(ref)):
        reject = Reject(
            line, ref, 422, "invalid-input", "ref", "member ref must be 1-64 characters [A-Za-z0-9._:-]"
        )
        return _MemberRow(line, ref, None, reject)
    optional = tuple(c for c in MEMBER_OPTIONAL_COLUMNS if c in values)
    fields = (*MEMBER_COLUMNS[1:], *optional)
    try:
        body = MemberPut.model_validate({c: values.get(c) for c in fields})
    except ValidationError as error:
        return _MemberRow(line, ref, None, _validation_reject(error, line, ref))
    data = customers.MemberData(
        body.name, body.email, body.language, body.country, body.product, body.city, body.phone
    )
    return _MemberRow(line, ref, data, None, optional)


_MEMBER_FIELDS = ("name", "email", "language", "country", "product")


def _apply_members(
    session: Session, rows: list[_MemberRow], now: datetime
) -> tuple[dict[str, int], list[Reject]]:
    """Create or replace the chunk's members as ``PUT /v1/members/{ref}`` would, in bulk."""
    # ``customers.validate`` looks each product up by primary key; holding them here keeps them in
    # the session's identity map, so those lookups cost no query.
    products = customers.list_products(session)
    optional = next((row.optional for row in rows if row.reject is None), ())
    fields = (*_MEMBER_FIELDS, *optional)
    rejects: list[Reject] = []
    latest: dict[str, customers.MemberData] = {}
    for row in rows:
        if row.reject is not None:
            rejects.append(row.reject)
            continue
        assert row.data is not None
        try:
            latest[row.ref] = customers.validate(row.data, session=session)
        except PrevenanceError as error:
            rejects.append(_problem(error, row.line, row.ref))
    refs = list(latest)
    existing: dict[str, tuple[Any, ...]] = {}
    for condition in _matching(session, Member.ref, refs):
        statement = select(Member.id, Member.ref, *(getattr(Member, f) for f in fields)).where(condition)
        for found in session.execute(statement.with_for_update()):
            existing[found[1]] = tuple(found)
    del products
    writer = _Writer(session)
    at = writer.time(now)
    fresh: list[tuple[Any, ...]] = []
    changed: list[tuple[Any, ...]] = []
    unchanged = 0
    for ref, data in latest.items():
        values = tuple(getattr(data, f) for f in fields)
        stored = existing.get(ref)
        if stored is None:
            fresh.append((ref, *values, at, at))
        elif tuple(stored[2:]) == values:
            unchanged += 1  # the stored record already says this: nothing to write
        else:
            changed.append((*values, at, stored[0]))
    writer.insert(_MEMBERS, ("ref", *fields, "created_at", "updated_at"), fresh)
    writer.update(_MEMBERS, (*fields, "updated_at"), ("id",), changed)
    return {"created": len(fresh), "updated": len(changed), "unchanged": unchanged}, rejects


def ingest_members(
    engine: Engine,
    path: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rejects_path: Path | None = None,
    clock: Clock | None = None,
    on_chunk: Callable[[ChunkStats], None] | None = None,
) -> Report:
    """Create or update members from a CSV or Parquet file, one transaction per chunk."""
    clock = clock or SystemClock()

    def apply(records: list[Record]) -> ChunkStats:
        started = time.perf_counter()
        parsed = [_parse_member(r) for r in records]
        (counts, rejects), retries = _with_retries(engine, lambda s: _apply_members(s, parsed, clock.now()))
        rejects.sort(key=lambda r: r.line)
        return ChunkStats(len(records), time.perf_counter() - started, counts, rejects, retries)

    return _run(
        "members",
        path,
        columns=MEMBER_COLUMNS,
        chunk_size=chunk_size,
        rejects_path=rejects_path,
        apply=apply,
        on_chunk=on_chunk,
        engine=engine,
        tables=(_MEMBERS,),
        optional=MEMBER_OPTIONAL_COLUMNS,
    )


# --- transactions ------------------------------------------------------------------------------


@dataclass(slots=True)
class _TxRow:
    line: int
    key: str
    tx: service.TransactionInput | None
    fingerprint: str
    reject: Reject | None


def parse_transaction(record: Record) -> _TxRow:
    """Validate a record as the API validates the body of ``POST /v1/transactions``."""
    line, values, problem = record
    if values is None:
        return _TxRow(line, "", None, "", Reject(line, "", 422, "invalid-input", None, problem or ""))
    key = _text(values.get("id"))
    nul = _nul_reject(values, line, key)
    if nul is not None:
        return _TxRow(line, key, None, "", nul)
    try:
        body = TransactionCreate.model_validate(values)
    except ValidationError as error:
        return _TxRow(line, key, None, "", _validation_reject(error, line, key))
    tx = service.TransactionInput(
        id=body.id,
        member_ref=body.member_ref,
        amount=body.amount,
        currency=body.currency,
        merchant=body.merchant,
        category=body.category,
        occurred_at=body.occurred_at,
    )
    return _TxRow(line, key, tx, transaction_fingerprint(tx), None)


def _apply_transactions_rowwise(
    session: Session, rows: list[_TxRow], now: datetime
) -> tuple[dict[str, int], list[Reject]]:
    """The reference path: ``service.record_transaction`` per row, each inside a SAVEPOINT."""
    rejects: list[Reject] = []
    posted = replayed = 0
    for row in rows:
        if row.reject is not None:
            rejects.append(row.reject)
            continue
        assert row.tx is not None
        try:
            with session.begin_nested():
                outcome = service.record_transaction(session, tx=row.tx, now=now)
        except PrevenanceError as error:
            rejects.append(_problem(error, row.line, row.key))
            continue
        if outcome.replayed:
            replayed += 1
        else:
            posted += 1
    return {"posted": posted, "replayed": replayed}, rejects


def _apply_transactions_batch(
    session: Session,
    rows: list[_TxRow],
    now: datetime,
    *,
    hooks: bool = True,
    refused: dict[int, PrevenanceError] | None = None,
) -> tuple[dict[str, int], list[Reject]]:
    """The chunk through the earn engine (``earning.apply_earns``): the rows of
    ``service.record_transaction``, written in bulk. ``refused`` holds the rows a hook refused in
    an earlier attempt (answered with that refusal, left out of the batch)."""
    refused = refused or {}
    rejects: list[Reject] = []
    requests: list[earning.EarnRequest] = []
    owners: list[int] = []
    for position, row in enumerate(rows):
        if row.reject is not None:
            rejects.append(row.reject)
        elif position in refused:
            rejects.append(_problem(refused[position], row.line, row.key))
        else:
            assert row.tx is not None
            requests.append(earning.EarnRequest(row.tx, row.fingerprint))
            owners.append(position)
    try:
        results = earning.apply_earns(session, requests, now=now, hooks=hooks)
    except earning.HookRefused as refusal:
        raise earning.HookRefused(owners[refusal.index], refusal.error) from refusal
    posted = replayed = 0
    for position, result in zip(owners, results, strict=True):
        if isinstance(result, PrevenanceError):
            row = rows[position]
            rejects.append(_problem(result, row.line, row.key))
        elif result.replayed:
            replayed += 1
        else:
            posted += 1
    return {"posted": posted, "replayed": replayed}, rejects


def ingest_transactions(
    engine: Engine,
    path: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rejects_path: Path | None = None,
    clock: Clock | None = None,
    method: Method = "batch",
    on_chunk: Callable[[ChunkStats], None] | None = None,
    hooks: bool = True,
) -> Report:
    """Earn points for every transaction of a settlement file, exactly as the API would: the same
    rows and, unless ``hooks`` is false (back-filling history), the same transaction hooks (offers)."""
    clock = clock or SystemClock()

    def apply(records: list[Record]) -> ChunkStats:
        started = time.perf_counter()
        parsed = [parse_transaction(r) for r in records]
        refused: dict[int, PrevenanceError] = {}
        retries = 0
        while True:
            try:
                if method == "batch":
                    (counts, rejects), tried = _with_retries(
                        engine,
                        lambda s: _apply_transactions_batch(
                            s, parsed, clock.now(), hooks=hooks, refused=refused
                        ),
                    )
                else:
                    (counts, rejects), tried = _with_retries(
                        engine, lambda s: _apply_transactions_rowwise(s, parsed, clock.now())
                    )
            except earning.HookRefused as refusal:  # run the chunk again without that row
                refused[refusal.index] = refusal.error
                retries += 1
                continue
            retries += tried
            break
        rejects.sort(key=lambda r: r.line)
        return ChunkStats(len(records), time.perf_counter() - started, counts, rejects, retries)

    return _run(
        "transactions",
        path,
        columns=TRANSACTION_COLUMNS,
        chunk_size=chunk_size,
        rejects_path=rejects_path,
        apply=apply,
        on_chunk=on_chunk,
        engine=engine,
        tables=(earning.CARD_TRANSACTIONS, earning.POSTINGS, earning.ACCOUNTS, earning.KEYS, earning.EVENTS),
    )
