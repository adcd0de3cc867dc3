"""Reading settlement and member files (CSV or Parquet) chunk by chunk, checking the whole file
first, and what a run reports: its counts and its rejected rows."""

from __future__ import annotations

import csv
import operator
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from prevenance.common.inputs import NUL_MESSAGE, nul_field, printable
from prevenance.common.problems import PrevenanceError


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


class ReadFailure(Exception):
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
    check_columns(path, names, columns)
    return count_records(path)


def check_columns(
    path: Path, names: Sequence[str], columns: Sequence[str], optional: Sequence[str] = ()
) -> None:
    """Refuse (``FileError``) a header without one of ``columns``, or naming one of the columns the
    load reads (``columns`` and ``optional``) twice: which of two ``amount`` columns is the amount?
    Taking the first (or the last) would load the other's figures without a word. A column the
    load does not read may repeat."""
    missing = [c for c in columns if c not in names]
    if missing:
        raise FileError(f"{path.name}: missing column(s) {', '.join(missing)} in the header")
    twice = [c for c in (*columns, *optional) if names.count(c) > 1]
    if twice:
        raise FileError(
            f"{path.name}: column(s) {', '.join(twice)} named twice in the header; nothing was loaded"
        )


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
        check_columns(path, names, columns, optional)
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
                chunk.append((start, None, _spanning(start, previous, f"unreadable CSV record: {error}")))
            else:
                previous = reader.line_num
                if not fields:
                    continue  # a blank line
                if len(fields) != width:
                    found = f"expected {width} fields, found {len(fields)}"
                    chunk.append((start, None, _spanning(start, previous, found)))
                else:
                    chunk.append((start, dict(zip(columns, pick(fields), strict=True)), None))
            if len(chunk) >= chunk_size:
                yield chunk
                chunk = []
        if chunk:
            yield chunk


def _spanning(start: int, end: int, problem: str) -> str:
    """Why a CSV record was refused, naming every line it covers when it runs over several.

    A quoted field may hold line breaks (RFC 4180), so a quote left open runs on over the next
    lines, up to the reader's field limit (128 KiB, some 2,000 rows) or the end of the file: the
    rows on those lines are neither loaded nor refused one by one. Naming the lines makes sure none
    of them is lost unnamed."""
    if end <= start:
        return problem
    return f"lines {start}–{end}: {problem} (a quoted field runs over {end - start + 1} lines: a quote left open?)"


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
    check_columns(path, names, columns, optional)
    columns = [*columns, *(c for c in optional if c in names)]
    line = 0
    batches = parquet.iter_batches(batch_size=chunk_size, columns=list(columns))
    while True:
        try:
            batch = next(batches, None)
        except (pa.ArrowException, OSError, ValueError) as error:
            raise ReadFailure(f"{path.name}: rows from {line + 1} cannot be read ({error})") from None
        if batch is None:
            return
        values = [_parquet_column(batch.column(c)) for c in columns]
        chunk: list[Record] = []
        for row in zip(*values, strict=True):
            line += 1
            chunk.append((line, dict(zip(columns, row, strict=True)), None))
        yield chunk


class Unreadable:
    """A Parquet value Python cannot hold: no model field accepts it, so its row alone is refused
    naming the field ("Input should be a valid string", "… datetime")."""

    def __repr__(self) -> str:
        return "<unreadable value>"


def _parquet_column(column: Any) -> list[Any]:
    """A column's values as Python objects. A value Python cannot hold refuses its row alone,
    naming its field (``_unreadable``)."""
    import pyarrow as pa

    try:
        return [_parquet_value(v) for v in column.to_pylist()]
    except (ValueError, OverflowError, pa.ArrowException):
        values = []
        for index in range(len(column)):
            try:
                values.append(_parquet_value(column[index].as_py()))
            except (ValueError, OverflowError, pa.ArrowException):
                values.append(_unreadable(column, index))
        return values


def _unreadable(column: Any, index: int) -> Any:
    """What stands for a value Python cannot hold, so that the model refuses it naming its field.

    A timestamp beyond year 9999 is passed on as text saying so (a bad date like any other). A
    string whose bytes are not UTF-8 (a writer that did not check them) is passed on as those bytes,
    which the model refuses as not UTF-8: turning it into text would have it accepted as a merchant
    or a name, and the fallback used to fail in turn (``ArrowInvalid``), stopping the load with a
    traceback. Anything else is an ``Unreadable``."""
    import pyarrow as pa

    kind = column.type
    try:
        if pa.types.is_timestamp(kind):
            return f"{column.cast(pa.int64())[index].as_py()} ({kind}) is out of range"
        if pa.types.is_string(kind) or pa.types.is_large_string(kind):
            binary = pa.large_binary() if pa.types.is_large_string(kind) else pa.binary()
            return column.view(binary)[index].as_py()
    except (ValueError, OverflowError, pa.ArrowException):
        pass
    return Unreadable()


def _parquet_value(value: Any) -> Any:
    # A decimal column is exact, so it is read as the decimal string it stands for; a float column
    # is not, and is refused like a JSON number would be by the API.
    if isinstance(value, Decimal):
        return str(value)
    # A binary column is read as the text its bytes hold, as the API's model would read them, so the
    # NUL check sees the characters the database would be given (it searches text only: a NUL byte
    # was stored by SQLite and stopped the load on PostgreSQL). Bytes that are not UTF-8 stay bytes,
    # and the model refuses them naming the field.
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    return value


def problem_reject(error: PrevenanceError, line: int, key: str) -> Reject:
    return Reject(line, key, error.status, error.type_slug, error.field, error.detail)


def validation_reject(error: ValidationError, line: int, key: str) -> Reject:
    first = error.errors()[0]
    location = [str(p) for p in first.get("loc", ())]
    where = ".".join(location) or None
    message = str(first.get("msg", "invalid value"))
    return Reject(line, key, 422, "invalid-input", where, f"{where}: {message}" if where else message)


def nul_reject(values: dict[str, Any], line: int, key: str) -> Reject | None:
    """A row with a NUL character in a field is refused naming it, as the API refuses the body."""
    field = nul_field(values)
    if field is None:
        return None
    return Reject(line, key, 422, "invalid-input", field, f"{field}: {NUL_MESSAGE}")


def text_of(value: Any) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)
