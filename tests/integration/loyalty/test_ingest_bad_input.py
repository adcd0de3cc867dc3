"""Settlement files with bad values and damaged files, on SQLite and PostgreSQL.

* A row dated outside the accepted window (2000-01-01 to 2100-01-01, exclusive) or holding a NUL
  character goes to the rejects file naming its field, as the API answers 422; the rest land.
* A file that cannot be read — garbage or truncated Parquet, CSV that is not UTF-8, a wrong header —
  is refused before anything is written: exit 2, one line, no traceback.
* A Parquet row group that cannot be read in the middle of a file stops the load with exit 3 and one
  line saying exactly which rows landed; running it again (damaged or repaired) doubles nothing,
  and the repaired file finishes the load.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import Result
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from prevenance.cli import app as cli_app
from prevenance.common.clock import FrozenClock
from prevenance.customers.tables import Member
from prevenance.db import read_session
from prevenance.loyalty import ingest, ledger
from prevenance.loyalty.tables import CardTransaction, Posting
from prevenance.settings import get_settings
from tests.integration.loyalty.test_ingest import (
    MEMBER_HEADER,
    TX_HEADER,
    member_rows,
    read_rejects,
    tx_row,
    url_of,
    write_csv,
    write_parquet,
)


@pytest.fixture
def cli(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """``prevenance …`` against the test database, in process (stdout and stderr apart)."""
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", url_of(engine))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli_app, [str(a) for a in args])
    get_settings.cache_clear()


def count(engine: Engine, model: Any) -> int:
    with read_session(engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def stored_ids(engine: Engine) -> list[str]:
    with read_session(engine) as session:
        return sorted(session.scalars(select(CardTransaction.id)))


def load_members(engine: Engine, clock: FrozenClock, folder: Path, count: int = 5) -> None:
    report = ingest.ingest_members(
        engine, write_csv(folder / "m.csv", MEMBER_HEADER, member_rows(count)), clock=clock
    )
    assert report.ok


# --- rows with bad values go to the rejects file --------------------------------------------------

BAD_ROWS: list[tuple[str, dict[str, str], str]] = [
    ("X-year-1", {"occurred_at": "0001-01-01T00:00:00Z"}, "occurred_at"),
    ("X-year-9999", {"occurred_at": "9999-12-31T23:59:59-05:00"}, "occurred_at"),
    ("X-1999", {"occurred_at": "1999-12-31T23:59:59Z"}, "occurred_at"),
    ("X-2100", {"occurred_at": "2100-01-01T00:00:00Z"}, "occurred_at"),
    ("X-garbage", {"occurred_at": "31/12/2026"}, "occurred_at"),
    ("X-nul-merchant", {"merchant": "Libr\x00airie"}, "merchant"),
    ("X-nul-category", {"category": "bo\x00oks"}, "category"),
]


def _bad_file_rows() -> list[dict[str, str]]:
    rows = [tx_row("T1", "M001", "10.00")]
    rows += [tx_row(key, "M002", "10.00", **change) for key, change, _ in BAD_ROWS]
    rows += [tx_row("X\x00nul-id", "M002", "10.00"), tx_row("T2", "M003", "20.00")]
    return rows


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_rows_out_of_the_window_or_with_a_nul_are_rejected_and_the_rest_land(
    engine: Engine, clock: FrozenClock, tmp_path: Path, cli: Any, suffix: str
) -> None:
    load_members(engine, clock, tmp_path)
    writer = write_csv if suffix == "csv" else write_parquet
    path = writer(tmp_path / f"settlement.{suffix}", TX_HEADER, _bad_file_rows())
    result = cli("ingest", "transactions", path, "--chunk-size", 3)
    assert result.exit_code == 1, result.output
    assert "posted=2" in result.stdout and f"rejected={len(BAD_ROWS) + 1}" in result.stdout
    assert stored_ids(engine) == ["T1", "T2"]
    rejects = read_rejects(tmp_path / "settlement.rejects.csv")
    fields = {r["key"]: r["field"] for r in rejects}
    assert fields == {**{key: field for key, _, field in BAD_ROWS}, "X\\x00nul-id": "id"}
    assert all(r["status"] == "422" and r["problem"] == "invalid-input" for r in rejects)
    assert "\x00" not in (tmp_path / "settlement.rejects.csv").read_text(encoding="utf-8")


def test_parquet_timestamps_beyond_what_python_holds_are_rejected_alone(
    engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    """A typed ``occurred_at`` of year 1 or past year 9999 refuses its row, not the file."""
    load_members(engine, clock, tmp_path)
    seconds = [
        int(datetime(2026, 1, 2, 10, tzinfo=UTC).timestamp()),
        int(datetime(1, 1, 1, tzinfo=UTC).timestamp()),
        400_000_000_000,  # about year 14645: no Python datetime holds it
        int(datetime(2026, 1, 3, tzinfo=UTC).timestamp()),
    ]
    table = pa.table(
        {
            "id": ["P1", "P-year-1", "P-far", "P2"],
            "member_ref": ["M001"] * 4,
            "amount": ["1.00"] * 4,
            "currency": ["EUR"] * 4,
            "merchant": ["Librairie"] * 4,
            "category": ["books"] * 4,
            "occurred_at": pa.array(seconds, type=pa.timestamp("s", tz="UTC")),
        }
    )
    pq.write_table(table, tmp_path / "typed.parquet")
    report = ingest.ingest_transactions(engine, tmp_path / "typed.parquet", clock=clock)
    assert report.counts == {"posted": 2, "replayed": 0} and report.rejected == 2
    rejects = read_rejects(tmp_path / "typed.rejects.csv")
    assert {(r["key"], r["field"]) for r in rejects} == {
        ("P-year-1", "occurred_at"),
        ("P-far", "occurred_at"),
    }
    assert stored_ids(engine) == ["P1", "P2"]


def test_a_member_row_with_a_nul_is_rejected_and_the_rest_land(
    engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    rows = [{**row, "city": "Lyon"} for row in member_rows(3)]
    rows[1]["city"] = "Ly\x00on"  # a free-text column no other check looks at
    path = write_csv(tmp_path / "m.csv", [*MEMBER_HEADER, "city"], rows)
    report = ingest.ingest_members(engine, path, clock=clock)
    assert report.counts["created"] == 2 and report.rejected == 1
    assert [(r["key"], r["field"]) for r in read_rejects(tmp_path / "m.rejects.csv")] == [("M001", "city")]
    assert count(engine, Member) == 2


# --- files that cannot be read: refused before anything is written --------------------------------


def _good_parquet(path: Path, rows: int = 300, group: int = 100) -> Path:
    body = [tx_row(f"T{i:04d}", f"M{i % 5:03d}", "10.00") for i in range(rows)]
    table = pa.table({c: pa.array([row[c] for row in body], type=pa.string()) for c in TX_HEADER})
    pq.write_table(table, path, row_group_size=group)
    return path


def _refused_before_writing(result: Result, engine: Engine, rejects: Path) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    assert count(engine, CardTransaction) == 0
    assert not rejects.exists()  # not even the rejects file was written


def test_garbage_and_truncated_parquet_are_refused_before_anything_is_written(
    engine: Engine, clock: FrozenClock, tmp_path: Path, cli: Any
) -> None:
    load_members(engine, clock, tmp_path)
    garbage = tmp_path / "garbage.parquet"
    garbage.write_bytes(b"PAR1" + bytes(range(256)) * 40)
    result = cli("ingest", "transactions", garbage)
    _refused_before_writing(result, engine, tmp_path / "garbage.rejects.csv")
    assert "not a readable Parquet file" in result.output

    whole = _good_parquet(tmp_path / "whole.parquet").read_bytes()
    for name, data in [("truncated", whole[: len(whole) // 2]), ("tail", whole[:-3]), ("empty", b"")]:
        path = tmp_path / f"{name}.parquet"
        path.write_bytes(data)
        _refused_before_writing(cli("ingest", "transactions", path), engine, tmp_path / f"{name}.rejects.csv")


def test_a_footer_pointing_outside_the_file_is_refused_up_front(tmp_path: Path) -> None:
    """The layout check: a footer whose column chunks lie past the data is refused at once."""
    good = _good_parquet(tmp_path / "good.parquet")
    data = good.read_bytes()
    footer_length = int.from_bytes(data[-8:-4], "little")
    # Cut bytes out of the data, keep the footer: every later offset now points too far.
    cut = data[: 4 + 200] + data[4 + 400 : len(data) - 8 - footer_length] + data[-8 - footer_length :]
    path = tmp_path / "cut.parquet"
    path.write_bytes(cut)
    with pytest.raises(ingest.FileError, match=r"outside the data|not a readable Parquet"):
        ingest.open_parquet(path)


def test_broken_csv_files_are_refused_before_anything_is_written(
    engine: Engine, clock: FrozenClock, tmp_path: Path, cli: Any
) -> None:
    load_members(engine, clock, tmp_path)
    rows = [tx_row(f"T{i}", "M001", "10.00", merchant="Café") for i in range(5)]
    latin = tmp_path / "latin.csv"
    write_csv(tmp_path / "utf8.csv", TX_HEADER, rows)
    latin.write_bytes((tmp_path / "utf8.csv").read_text(encoding="utf-8").encode("latin-1"))
    result = cli("ingest", "transactions", latin)
    _refused_before_writing(result, engine, tmp_path / "latin.rejects.csv")
    assert "not UTF-8" in result.output and "line 2" in result.output

    late = tmp_path / "late.csv"
    late.write_bytes(
        (tmp_path / "utf8.csv").read_bytes() + b"T9,M001,1.00,EUR,Caf\xe9,books,2026-01-01T00:00:00Z\n"
    )
    result = cli("ingest", "transactions", late)
    _refused_before_writing(result, engine, tmp_path / "late.rejects.csv")
    assert "line 7" in result.output

    wrong = tmp_path / "wrong.csv"
    wrong.write_text("identifier,who,amount\nT1,M001,1.00\n", encoding="utf-8")
    result = cli("ingest", "transactions", wrong)
    _refused_before_writing(result, engine, tmp_path / "wrong.rejects.csv")
    assert "missing column" in result.output


def test_a_column_named_twice_refuses_the_file_before_anything_is_written(
    engine: Engine, clock: FrozenClock, tmp_path: Path, cli: Any
) -> None:
    """Which of two ``amount`` columns is the amount? The CSV reader used to take the first without
    a word (and ``stream publish`` the last), and a Parquet file with a column twice stopped the
    load with a ``KeyError`` traceback. A column the load reads, named twice, is refused."""
    load_members(engine, clock, tmp_path)
    row = tx_row("T1", "M001", "10.00")
    twice = tmp_path / "twice.csv"
    twice.write_text(",".join([*TX_HEADER, "amount"]) + "\n" + ",".join([*row.values(), "999.00"]) + "\n")
    result = cli("ingest", "transactions", twice)
    _refused_before_writing(result, engine, tmp_path / "twice.rejects.csv")
    assert "amount" in result.output and "twice" in result.output

    padded = tmp_path / "padded.csv"  # the names are compared stripped, as they are read
    padded.write_text(",".join([*TX_HEADER, " id "]) + "\n" + ",".join([*row.values(), "T2"]) + "\n")
    _refused_before_writing(cli("ingest", "transactions", padded), engine, tmp_path / "padded.rejects.csv")

    table = pa.table(
        [*(pa.array([row[c]]) for c in TX_HEADER), pa.array(["999.00"])], names=[*TX_HEADER, "amount"]
    )
    pq.write_table(table, tmp_path / "twice.parquet")
    result = cli("ingest", "transactions", tmp_path / "twice.parquet")
    _refused_before_writing(result, engine, tmp_path / "twice.rejects.parquet")
    with pytest.raises(ingest.FileError, match="twice"):
        ingest.ingest_transactions(engine, tmp_path / "twice.parquet", clock=clock)

    members = tmp_path / "members.csv"  # an optional column counts too
    members.write_text(
        ",".join([*MEMBER_HEADER, "city", "city"]) + "\nM9,N,n@example.fr,fr,FR,gold,Lyon,Paris\n"
    )
    result = cli("ingest", "members", members)
    assert result.exit_code == 2 and "city" in result.output, result.output
    assert count(engine, Member) == 5

    extra = tmp_path / "extra.csv"  # a column the load does not read may repeat: it is ignored
    extra.write_text(
        ",".join([*TX_HEADER, "note", "note"]) + "\n" + ",".join([*row.values(), "a", "b"]) + "\n"
    )
    assert cli("ingest", "transactions", extra).exit_code == 0
    assert stored_ids(engine) == ["T1"]


@pytest.mark.parametrize("kind", ["transactions", "members"])
def test_a_nul_byte_in_a_binary_parquet_column_is_rejected_like_one_in_text(
    engine: Engine, clock: FrozenClock, tmp_path: Path, kind: str
) -> None:
    """A binary column's values are read as the text their bytes hold (as the API's model would
    read them), so a NUL byte refuses its row naming the field. It used to pass the NUL check (only
    text was searched): SQLite stored it, PostgreSQL refused the whole chunk and stopped the load."""
    if kind == "transactions":
        load_members(engine, clock, tmp_path)
        rows = [tx_row(f"T{i}", "M001", "10.00") for i in range(3)]
        header, field, key, model = TX_HEADER, "merchant", "id", CardTransaction
    else:  # city: a free-text column no other check looks at (a name is refused as a control)
        rows = [{**row, "city": "Lyon"} for row in member_rows(3)]
        header, field, key, model = [*MEMBER_HEADER, "city"], "city", "ref", Member
    columns = {c: pa.array([row[c] for row in rows]) for c in header}
    columns[field] = pa.array([b"Good", b"Sh\x00op", b"Fine"], type=pa.binary())
    path = tmp_path / f"{kind}.parquet"
    pq.write_table(pa.table(columns), path)
    run = ingest.ingest_transactions if kind == "transactions" else ingest.ingest_members
    report = run(engine, path, clock=clock)
    assert report.rejected == 1
    rejects = read_rejects(report.rejects_path)
    assert [(r["line"], r["key"], r["field"]) for r in rejects] == [("2", rows[1][key], field)]
    assert "NUL" in rejects[0]["reason"]
    with read_session(engine) as session:
        stored = set(session.scalars(select(getattr(model, field))))
    assert {"Good", "Fine"} <= stored and not any("\x00" in value for value in stored)


def test_a_quote_left_open_names_every_line_its_record_swallowed(
    engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    """A quoted field may hold line breaks (RFC 4180), so a quote left open runs on over the next
    lines, up to the reader's field limit (128 KiB: some 2,000 rows) or the end of the file. The
    rejects file named only the line it started on; the rows it swallowed were neither posted nor
    listed. Such a record's reason now names every line it covers, so nothing is lost unnamed."""
    load_members(engine, clock, tmp_path)
    lines = [",".join(tx_row(f"T{i}", "M001", "10.00").values()) for i in range(3000)]
    lines[2] = lines[2].replace("Librairie", '"Librairie')  # line 4 of the file
    lines[2990] = lines[2990].replace("Librairie", '"Librairie')  # runs to the end of the file
    path = tmp_path / "open.csv"
    path.write_text(",".join(TX_HEADER) + "\n" + "\n".join(lines) + "\n")
    report = ingest.ingest_transactions(engine, path, clock=clock)
    rejects = read_rejects(report.rejects_path)
    assert [r["line"] for r in rejects] == ["4", "2992"]
    spans = [r["reason"].split(": ")[0] for r in rejects]
    assert spans[0].startswith("lines 4–") and int(spans[0].split("–")[1]) > 1000, spans
    assert spans[1] == "lines 2992–3001"
    assert "field limit" in rejects[0]["reason"] and "quote" in rejects[0]["reason"]
    # Every line of the file is either posted or covered by a reject's span.
    covered = set()
    for span in spans:
        start, end = (int(n) for n in span.removeprefix("lines ").split("–"))
        covered |= set(range(start, end + 1))
    posted = {int(tx_id[1:]) + 2 for tx_id in stored_ids(engine)}  # T<i> is on line i + 2
    assert posted | covered == set(range(2, 3002)) and not posted & covered


# --- a row group that fails mid-file --------------------------------------------------------------


def _damage_row_group(source: Path, target: Path, group: int) -> None:
    """A copy of ``source`` whose row group ``group`` (0-based) has its first column's pages
    overwritten: the footer is intact, the pages cannot be decoded."""
    metadata = pq.ParquetFile(source).metadata
    chunk = metadata.row_group(group).column(0)
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data = bytearray(source.read_bytes())
    for index in range(start + 2, start + chunk.total_compressed_size - 2):
        data[index] = 0xFF
    target.write_bytes(bytes(data))


def test_a_damaged_row_group_stops_the_load_saying_which_rows_landed_and_a_rerun_doubles_nothing(
    engine: Engine, clock: FrozenClock, tmp_path: Path, cli: Any
) -> None:
    load_members(engine, clock, tmp_path)
    good = _good_parquet(tmp_path / "good.parquet", rows=300, group=100)
    damaged = tmp_path / "settlement.parquet"
    _damage_row_group(good, damaged, group=1)

    first = cli("ingest", "transactions", damaged, "--chunk-size", 100)
    assert first.exit_code == 3, first.output
    assert "Traceback" not in first.output
    assert "rows 1–100 committed" in first.stdout and "rows 101–300 not loaded" in first.stdout
    assert "run the same file again" in first.output
    assert stored_ids(engine) == [f"T{i:04d}" for i in range(100)]

    again = cli("ingest", "transactions", damaged, "--chunk-size", 100)
    assert again.exit_code == 3, again.output
    assert "replayed=100" in again.stdout and "posted=0" in again.stdout
    assert count(engine, CardTransaction) == 100 and count(engine, Posting) == 100

    damaged.write_bytes(good.read_bytes())  # the sender's file again, whole this time
    done = cli("ingest", "transactions", damaged, "--chunk-size", 100)
    assert done.exit_code == 0, done.output
    assert "posted=200" in done.stdout and "replayed=100" in done.stdout
    assert stored_ids(engine) == [f"T{i:04d}" for i in range(300)]
    assert count(engine, Posting) == 300
    with read_session(engine) as session:
        assert ledger.audit(session)["ok"] is True


def test_a_damaged_row_group_in_a_larger_chunk_commits_only_whole_chunks(
    engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    """Chunks of 150 over row groups of 100: the second chunk needs the damaged group, so only the
    first chunk (rows 1–150) is committed, and the report says so."""
    load_members(engine, clock, tmp_path)
    good = _good_parquet(tmp_path / "good.parquet", rows=400, group=100)
    damaged = tmp_path / "damaged.parquet"
    _damage_row_group(good, damaged, group=2)
    with pytest.raises(ingest.LoadStopped) as stopped:
        ingest.ingest_transactions(engine, damaged, chunk_size=150, clock=clock)
    assert stopped.value.report.rows == 150
    assert stopped.value.summary().startswith("rows 1–150 committed") and "rows 151–400 not loaded" in (
        stopped.value.summary()
    )
    assert count(engine, CardTransaction) == 150


def test_a_rejects_file_that_is_the_input_is_refused_before_anything_is_written(
    engine: Engine, clock: FrozenClock, tmp_path: Path, cli: Any
) -> None:
    """``--rejects`` naming the input itself (or a link to it) truncated the settlement file while
    it was being read: the load ended after the rows already buffered, said so with exit 0, and the
    sender's file was gone, replaced by a rejects header. It is refused up front."""
    load_members(engine, clock, tmp_path)
    rows = [tx_row(f"T{i}", "M001", "10.00") for i in range(30)]
    path = write_csv(tmp_path / "settlement.csv", TX_HEADER, rows)
    original = path.read_bytes()
    (tmp_path / "link.csv").symlink_to(path)
    for target in (path, tmp_path / "link.csv", tmp_path / "." / "settlement.csv"):
        result = cli("ingest", "transactions", path, "--chunk-size", 10, "--rejects", target)
        assert result.exit_code == 2, result.output
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
        assert result.output.splitlines()[-1].startswith("error: "), result.output
        assert "would overwrite the input" in result.output
        assert path.read_bytes() == original
        assert count(engine, CardTransaction) == 0


def test_a_parquet_string_that_is_not_utf8_is_rejected_alone_naming_its_field(
    engine: Engine, clock: FrozenClock, tmp_path: Path, cli: Any
) -> None:
    """A string column whose bytes are not UTF-8 (a writer that did not validate them) made the
    reader's fallback for unreadable values fail in turn (``ArrowInvalid``): the load stopped with
    a traceback and no summary of what had landed. Such a value now refuses its row, naming it."""
    load_members(engine, clock, tmp_path)
    rows = [tx_row(f"T{i}", "M001", "10.00") for i in range(4)]
    columns = {c: pa.array([row[c] for row in rows]) for c in TX_HEADER}
    raw = [b"Librairie", b"\xff\xfe", b"\xed\xa0\x80", b"Caf\xc3\xa9"]  # the last one is UTF-8
    columns["merchant"] = pa.array(raw, type=pa.binary()).view(pa.string())
    path = tmp_path / "settlement.parquet"
    pq.write_table(pa.table(columns), path)
    result = cli("ingest", "transactions", path)
    assert result.exit_code == 1, result.output
    rejects = read_rejects(tmp_path / "settlement.rejects.csv")
    assert [(r["line"], r["key"], r["field"]) for r in rejects] == [
        ("2", "T1", "merchant"),
        ("3", "T2", "merchant"),
    ]
    assert stored_ids(engine) == ["T0", "T3"]
