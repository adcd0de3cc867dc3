"""Bulk loads: ``prevenance ingest members`` and ``prevenance ingest transactions``.

The settlement ingest must be indistinguishable from ``POST /v1/transactions``: the same points,
postings, idempotency keys and answers. These tests ingest one file through the batch path, the
row-by-row path and the API, and compare the ledgers row for row; they check the rejects file and
the exit status, reruns, API replays of ingested ids, and a run killed with SIGKILL part-way.
"""

from __future__ import annotations

import csv
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import Result
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from prevenance.cli import app as cli_app
from prevenance.common.clock import FrozenClock
from prevenance.common.idempotency import IdempotencyKey
from prevenance.common.outbox import OutboxEvent
from prevenance.customers.tables import Member
from prevenance.db import read_session, run_in_transaction, unit_of_work
from prevenance.loyalty import ingest, ledger, programme, service
from prevenance.loyalty.ingest import runner as ingest_runner
from prevenance.loyalty.tables import Account, CardTransaction, Posting, Referral
from prevenance.metadata import metadata
from prevenance.settings import get_settings
from tests.conftest import Api, empty_tables, member_body, tx_body

MEMBER_HEADER = list(ingest.MEMBER_COLUMNS)
TX_HEADER = list(ingest.TRANSACTION_COLUMNS)
PRODUCTS = ("green", "gold", "platinum", "centurion", "cobrand-airline")


# --- files -------------------------------------------------------------------------------------


def write_csv(path: Path, header: list[str], rows: list[dict[str, Any]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows([row[c] for c in header] for row in rows)
    return path


def write_parquet(path: Path, header: list[str], rows: list[dict[str, Any]]) -> Path:
    table = pa.table({c: pa.array([row[c] for row in rows], type=pa.string()) for c in header})
    pq.write_table(table, path)
    return path


def member_rows(count: int) -> list[dict[str, Any]]:
    countries = ("FR", "UK", "DE", "IT", "ES")
    return [
        {
            "ref": f"M{i:03d}",
            "name": f"Membre {i}",
            "email": f"m{i}@example.fr",
            "language": "fr" if i % 3 else "en",
            "country": countries[i % len(countries)],
            "product": PRODUCTS[i % len(PRODUCTS)],
        }
        for i in range(count)
    ]


def tx_row(tx_id: str, member_ref: str, amount: str, **overrides: Any) -> dict[str, Any]:
    return {key: str(value) for key, value in tx_body(tx_id, member_ref, amount, **overrides).items()}


def mixed_transactions(count: int, members: int, seed: int = 11) -> list[dict[str, Any]]:
    """Random good rows in several currencies and categories, then every kind of trouble."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        currency = rng.choice(["EUR"] * 6 + ["GBP", "USD", "JPY", "KWD"])
        if currency == "JPY":
            amount = str(rng.randint(1, 90_000))
        elif currency == "KWD":
            amount = f"{rng.randint(1, 900_000) / 1000:.3f}"
        else:
            amount = f"{rng.randint(1, 500_000) / 100:.2f}"
        when = rng.choice(["2026-01-02T10:00:00Z", "2026-01-02T12:30:00+02:00", "2026-01-03T08:00:00"])
        rows.append(
            tx_row(
                f"T{i:04d}",
                f"M{rng.randrange(2, members):03d}",
                amount,
                currency=currency,
                merchant=rng.choice(["Air Lumière", "Librairie", "Café de Flore"]),
                category=rng.choice(["travel", "books", "dining"]),
                occurred_at=when,
            )
        )
    # The referee M001 first sends a refused row, then its first good transaction.
    rows.insert(count // 3, tx_row("R-bad", "M001", "10.00", currency="XYZ"))
    rows.insert(count // 3 + 5, tx_row("R-first", "M001", "12.00"))
    rows.insert(count // 3 + 9, tx_row("R-second", "M001", "13.00"))
    rows += [
        dict(rows[3]),  # the same id and body again: a replay
        {**rows[4], "amount": "1.00"},  # the same id with another body: 409
        tx_row("X-unknown", "NOBODY", "10.00"),
        tx_row("X-negative", "M002", "-5"),
        tx_row("X-zero", "M002", "0"),
        tx_row("X-digits", "M002", "1.234"),
        tx_row("X-letters", "M002", "abc"),
        tx_row("X-empty", "M002", ""),
        tx_row("X-yen", "M002", "100.5", currency="JPY"),
        tx_row("X-currency", "M002", "10.00", currency="XYZ"),
        tx_row("X-lower", "M002", "10.00", currency="eur"),
        tx_row("X-merchant", "M002", "10.00", merchant="   "),
        tx_row("X-when", "M002", "10.00", occurred_at="yesterday"),
        tx_row("X" * 201, "M002", "10.00"),
        tx_row("X-huge", "M002", "1000000000000.00"),
        tx_row("X-small", "M002", "0.40"),
        tx_row("T0005", "M003", "5.00"),  # T0005 was posted by the API before, with another body
    ]
    return rows


# --- database helpers --------------------------------------------------------------------------


def reset(engine: Engine, clock: FrozenClock) -> None:
    """Empty every table but the API keys and reinstall the programme (a fresh database)."""
    tables = [t for t in metadata.sorted_tables if t.name != "api_keys"]
    with engine.begin() as connection:
        empty_tables(connection, tables)
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=clock.now())


def snapshot(engine: Engine, *, with_times: bool = True) -> dict[str, Any]:
    """The whole ledger, with internal ids replaced by what they stand for."""

    def when(value: datetime | None) -> datetime | None:
        return value if with_times else None

    with read_session(engine) as session:
        refs = dict(session.execute(select(Member.id, Member.ref)).all())
        codes = {
            aid: f"member:{refs[member_id]}:{unit}" if member_id else code
            for aid, code, member_id, unit in session.execute(
                select(Account.id, Account.code, Account.member_id, Account.unit)
            )
        }
        postings = [
            (
                p.idempotency_key,
                codes[p.debit_account_id],
                codes[p.credit_account_id],
                p.amount,
                p.unit,
                p.reason,
                p.reference,
                refs.get(p.member_id),
                p.balance_after,
                when(p.created_at),
            )
            for p in session.scalars(select(Posting).order_by(Posting.id))
        ]
        balances = {
            codes[aid]: balance
            for aid, balance in session.execute(
                select(Account.id, Account.balance).where(Account.tracks_balance.is_(True))
            )
        }
        cards = [
            (
                t.id,
                refs[t.member_id],
                t.amount_minor,
                t.currency,
                t.merchant,
                t.category,
                t.occurred_at,
                t.fx_rate,
                t.amount_eur,
                t.product,
                t.unit,
                t.units_per_euro,
                t.minimum_earn,
                t.units_earned,
                t.units_current,
                t.refunded_minor,
                when(t.created_at),
            )
            for t in session.scalars(select(CardTransaction).order_by(CardTransaction.id))
        ]
        keys = [
            (k.key, k.fingerprint, k.status_code, k.response, when(k.created_at))
            for k in session.scalars(
                select(IdempotencyKey)
                .where(IdempotencyKey.scope == "transaction")
                .order_by(IdempotencyKey.key)
            )
        ]
        referrals = [
            (r.id, r.status, r.rewarding_transaction_id, when(r.rewarded_at))
            for r in session.scalars(select(Referral).order_by(Referral.id))
        ]
        events = [
            (e.type, e.payload, when(e.occurred_at))
            for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        ]
        # What is stored, as the database holds it: the same bytes whichever path wrote them.
        stamp = "CAST({} AS TEXT)" if with_times else "NULL"
        stored_text = [
            tuple(row)
            for sql in (
                "SELECT k.key, CAST(k.response AS TEXT), CAST(t.occurred_at AS TEXT),"
                f" {stamp.format('t.created_at')}, {stamp.format('k.created_at')}"
                " FROM idempotency_keys k JOIN card_transactions t ON t.id = k.key ORDER BY k.key",
                f"SELECT CAST(payload AS TEXT), {stamp.format('occurred_at')} FROM outbox_events ORDER BY id",
                f"SELECT idempotency_key, {stamp.format('created_at')} FROM postings ORDER BY id",
            )
            for row in session.execute(text(sql))
        ]
        audit = ledger.audit(session)
    assert audit["ok"], audit
    return {
        "stored_text": stored_text,
        "postings": postings,
        "balances": balances,
        "accounts": sorted(codes.values()),
        "card_transactions": cards,
        "idempotency_keys": keys,
        "referrals": referrals,
        "events": events,
    }


def count(engine: Engine, model: Any) -> int:
    with read_session(engine) as session:
        return int(session.execute(select(func.count()).select_from(model)).scalar_one())


def url_of(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=False)


@pytest.fixture
def cli(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Result]]:
    """``prevenance …`` against the test database, in process."""
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", url_of(engine))
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli_app, [str(a) for a in args])
    get_settings.cache_clear()


def read_rejects(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def prepare(api: Api, engine: Engine, clock: FrozenClock, folder: Path, rows: list[dict[str, Any]]) -> None:
    """Members from a file, two referrals, and two of the file's ids posted through the API first:
    one with the file's body (the file replays it), one with another body (the file's row is 409)."""
    path = write_csv(folder / "m.csv", MEMBER_HEADER, member_rows(40))
    report = ingest.ingest_members(engine, path, clock=clock)
    assert report.counts["created"] == 40 and report.ok
    for referrer, referee in (("M000", "M001"), ("M002", "M039")):
        made = api.post("/v1/referrals", {"referrer_ref": referrer, "referee_ref": referee}, role="agent")
        assert made.status_code == 201, made.text
    for row in (rows[9], {**rows[5], "amount": "7"}):
        assert api.post("/v1/transactions", row, role="integrator").status_code == 201


# --- the batch path, the row-by-row path and the API agree ----------------------------------------


def test_batch_rowwise_and_api_write_the_same_ledger(
    api: Api, engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    rows = mixed_transactions(300, members=40)
    rows[8] = {**rows[9], "id": rows[8]["id"]}  # same member twice in a row, same amounts
    path = write_csv(tmp_path / "settlement.csv", TX_HEADER, rows)

    outcomes: dict[str, Any] = {}
    for method in ("batch", "rowwise"):
        reset(engine, clock)
        prepare(api, engine, clock, tmp_path, rows)
        report = ingest.ingest_transactions(engine, path, chunk_size=37, clock=clock, method=method)
        rejects = [
            (r["line"], r["key"], r["status"], r["problem"], r["field"])
            for r in read_rejects(report.rejects_path)
        ]
        outcomes[method] = (report.counts, rejects, snapshot(engine))

    reset(engine, clock)
    prepare(api, engine, clock, tmp_path, rows)
    answers = []
    for line, row in enumerate(rows, start=2):
        response = api.post("/v1/transactions", row, role="integrator")
        answers.append((line, row["id"], response.status_code, response.json(), response.headers))
    via_api = snapshot(engine)

    batch_counts, batch_rejects, batch_ledger = outcomes["batch"]
    rowwise_counts, rowwise_rejects, rowwise_ledger = outcomes["rowwise"]
    assert batch_counts == rowwise_counts
    assert batch_rejects == rowwise_rejects
    assert batch_ledger == rowwise_ledger
    assert batch_ledger == via_api

    api_rejects = [
        (str(line), key, str(status), body["type"].rsplit("/", 1)[-1], body.get("field") or "")
        for line, key, status, body, _ in answers
        if status >= 400
    ]
    assert batch_rejects == api_rejects
    replays = sum(1 for *_, headers in answers if headers.get("Idempotent-Replayed") == "true")
    assert batch_counts == {"posted": len(rows) - len(api_rejects) - replays, "replayed": replays}
    assert replays == 2  # rows[9], posted by the API first, and the copy of rows[3]

    # What the scenario was meant to exercise did happen.
    kinds = {r[3] for r in batch_rejects}
    assert {"unknown-member", "invalid-input", "idempotency-key-reused"} <= kinds
    referral = next(r for r in batch_ledger["referrals"] if r[0] == "M000->M001")
    assert referral[1:3] == ("rewarded", "R-first")
    assert any(p[5] == "referral" and p[2] == "member:M000:points" for p in batch_ledger["postings"])
    assert any(c[10] == "miles" for c in batch_ledger["card_transactions"])


def test_csv_and_parquet_load_the_same_ledger(
    engine: Engine, clock: FrozenClock, tmp_path: Path, cli: Any
) -> None:
    members = member_rows(30)
    rows = mixed_transactions(120, members=30)
    ledgers = []
    for writer, suffix in ((write_csv, "csv"), (write_parquet, "parquet")):
        reset(engine, clock)
        loaded = cli("ingest", "members", writer(tmp_path / f"members.{suffix}", MEMBER_HEADER, members))
        assert loaded.exit_code == 0, loaded.output
        result = cli("ingest", "transactions", writer(tmp_path / f"settlement.{suffix}", TX_HEADER, rows))
        assert result.exit_code == 1, result.output  # the file has bad rows on purpose
        ledgers.append(snapshot(engine, with_times=False))
        assert len(read_rejects(tmp_path / "settlement.rejects.csv")) == 16
    assert ledgers[0] == ledgers[1]


def test_parquet_typed_columns(engine: Engine, clock: FrozenClock, tmp_path: Path) -> None:
    """Decimal amounts are exact and read as their decimal string; timestamps are instants;
    a float amount is refused as the API refuses a JSON number."""
    ingest.ingest_members(engine, write_csv(tmp_path / "m.csv", MEMBER_HEADER, member_rows(3)), clock=clock)
    table = pa.table(
        {
            "id": ["P1", "P2"],
            "member_ref": ["M001", "M002"],
            "amount": pa.array([Decimal("42.50"), Decimal("7.00")], type=pa.decimal128(10, 2)),
            "currency": ["EUR", "EUR"],
            "merchant": ["Librairie", "Librairie"],
            "category": ["books", "books"],
            "occurred_at": pa.array(
                [datetime(2026, 1, 2, 10, tzinfo=UTC), datetime(2026, 1, 2, 11, tzinfo=UTC)],
                type=pa.timestamp("us", tz="UTC"),
            ),
        }
    )
    pq.write_table(table, tmp_path / "typed.parquet")
    report = ingest.ingest_transactions(engine, tmp_path / "typed.parquet", clock=clock)
    assert report.ok and report.counts == {"posted": 2, "replayed": 0}
    floats = table.set_column(2, "amount", pa.array([42.5, 7.0], type=pa.float64()))
    pq.write_table(floats, tmp_path / "floats.parquet")
    refused = ingest.ingest_transactions(engine, tmp_path / "floats.parquet", clock=clock)
    assert refused.rejected == 2
    assert {r["field"] for r in read_rejects(tmp_path / "floats.rejects.csv")} == {"amount"}
    with read_session(engine) as session:
        amounts = dict(session.execute(select(CardTransaction.id, CardTransaction.amount_minor)).all())
    assert amounts == {"P1": 4250, "P2": 700}


# --- rejects, exit status, reruns, replays --------------------------------------------------------


def test_rejects_file_lists_line_and_reason_and_exit_status_says_so(
    api: Api, engine: Engine, tmp_path: Path, cli: Any
) -> None:
    api.put("/v1/members/M1", member_body())
    path = tmp_path / "settlement.csv"
    path.write_text(
        "occurred_at,id,member_ref,amount,currency,merchant,category,terminal\n"
        "2026-01-02T10:00:00Z,T1,M1,42.99,EUR,Librairie,books,A\n"
        "2026-01-02T10:00:00Z,T2,NOBODY,10.00,EUR,Librairie,books,A\n"
        "\n"
        '2026-01-02T10:00:00Z,T3,M1,10.00,EUR,"Librairie\nGallimard",books,A\n'
        "2026-01-02T10:00:00Z,T4,M1,abc,EUR,Librairie,books,A\n"
        "2026-01-02T10:00:00Z,T5,M1,10.00,EUR,Librairie\n"
        "2026-01-02T10:00:00Z,T1,M1,43.00,EUR,Librairie,books,A\n"
        "2026-01-02T10:00:00Z,T6,M1,10.00,XYZ,Librairie,books,A\n",
        encoding="utf-8",
    )
    custom = tmp_path / "out" / "refused.csv"
    result = cli("ingest", "transactions", path, "--rejects", custom, "--chunk-size", 2)
    assert result.exit_code == 1, result.output
    assert "posted=2" in result.stdout and "rejected=5" in result.stdout
    refused = read_rejects(custom)
    assert [(r["line"], r["key"], r["status"], r["problem"], r["field"]) for r in refused] == [
        ("3", "T2", "422", "unknown-member", "member_ref"),
        ("7", "T4", "422", "invalid-input", "amount"),
        ("8", "", "422", "invalid-input", ""),
        ("9", "T1", "409", "idempotency-key-reused", "id"),
        ("10", "T6", "422", "invalid-input", "currency"),
    ]
    assert refused[2]["reason"] == "expected 8 fields, found 6"
    # Every other reason is the API's own answer to the same body (which writes nothing).
    bodies = {
        "T2": tx_row("T2", "NOBODY", "10.00", occurred_at="2026-01-02T10:00:00Z"),
        "T4": tx_row("T4", "M1", "abc", occurred_at="2026-01-02T10:00:00Z"),
        "T1": tx_row("T1", "M1", "43.00", occurred_at="2026-01-02T10:00:00Z"),
        "T6": tx_row("T6", "M1", "10.00", currency="XYZ", occurred_at="2026-01-02T10:00:00Z"),
    }
    for reject in refused[:2] + refused[3:]:
        answer = api.post("/v1/transactions", bodies[reject["key"]], role="integrator")
        assert (str(answer.status_code), answer.json()["detail"]) == (reject["status"], reject["reason"])
    # The good rows landed: T1 (42 points) and T3 (10 points).
    assert api.get("/v1/members/M1/balance").json()["points"] == 52

    clean = write_csv(tmp_path / "clean.csv", TX_HEADER, [tx_row("T7", "M1", "1.00")])
    ok = cli("ingest", "transactions", clean)
    assert ok.exit_code == 0, ok.output
    assert read_rejects(tmp_path / "clean.rejects.csv") == []


def test_unreadable_files_exit_2_and_load_nothing(engine: Engine, tmp_path: Path, cli: Any) -> None:
    wrong = tmp_path / "settlement.txt"
    wrong.write_text("id\n", encoding="utf-8")
    assert cli("ingest", "transactions", wrong).exit_code == 2
    assert cli("ingest", "transactions", tmp_path / "missing.csv").exit_code == 2
    partial = tmp_path / "partial.csv"
    partial.write_text("id,member_ref,amount\nT1,M1,1.00\n", encoding="utf-8")
    result = cli("ingest", "transactions", partial)
    assert result.exit_code == 2 and "currency" in result.output
    assert count(engine, CardTransaction) == 0


def test_rerun_adds_nothing(api: Api, engine: Engine, clock: FrozenClock, tmp_path: Path, cli: Any) -> None:
    rows = mixed_transactions(200, members=40)
    prepare(api, engine, clock, tmp_path, rows)
    path = write_csv(tmp_path / "settlement.csv", TX_HEADER, rows)
    first = cli("ingest", "transactions", path, "--chunk-size", 64)
    assert first.exit_code == 1
    before = snapshot(engine)
    first_rejects = read_rejects(tmp_path / "settlement.rejects.csv")
    again = cli("ingest", "transactions", path, "--chunk-size", 50)
    assert again.exit_code == 1
    assert "posted=0" in again.stdout
    assert snapshot(engine) == before
    assert read_rejects(tmp_path / "settlement.rejects.csv") == first_rejects


def test_api_replays_an_ingested_transaction(
    api: Api, engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    api.put("/v1/members/M1", member_body())
    api.put("/v1/members/C1", member_body(product="cobrand-airline"))
    rows = [
        tx_row("T1", "M1", "42.99"),
        tx_row("T2", "C1", "100.00", currency="GBP"),
        tx_row("T3", "M1", "0.40"),
    ]
    report = ingest.ingest_transactions(engine, write_csv(tmp_path / "s.csv", TX_HEADER, rows), clock=clock)
    assert report.ok
    expected = {
        "T1": {"id": "T1", "member_ref": "M1", "points_earned": 42, "unit": "points", "balance": 42},
        "T2": {"id": "T2", "member_ref": "C1", "points_earned": 117, "unit": "miles", "balance": 117},
        "T3": {"id": "T3", "member_ref": "M1", "points_earned": 1, "unit": "points", "balance": 43},
    }
    for row in rows:
        replay = api.post("/v1/transactions", row, role="integrator")
        assert replay.status_code == 201
        assert replay.json() == expected[row["id"]]
        assert replay.headers.get("Idempotent-Replayed") == "true"
    other = api.post("/v1/transactions", {**rows[0], "amount": "10.00"}, role="integrator")
    assert other.status_code == 409
    assert other.json()["type"].endswith("/idempotency-key-reused")
    assert api.get("/v1/members/M1/balance").json() == {"member_ref": "M1", "points": 43, "miles": 0}
    # And the other way round: what the API posted first, the file replays.
    api.post("/v1/transactions", tx_row("T4", "M1", "5.00"), role="integrator")
    again = ingest.ingest_transactions(
        engine, write_csv(tmp_path / "s2.csv", TX_HEADER, [tx_row("T4", "M1", "5.00")]), clock=clock
    )
    assert again.counts == {"posted": 0, "replayed": 1}


# --- members -------------------------------------------------------------------------------------


def test_members_load_like_put_and_report_bad_rows(
    api: Api, engine: Engine, clock: FrozenClock, tmp_path: Path, cli: Any
) -> None:
    api.put("/v1/members/M001", member_body(name="Before"))
    api.put(
        "/v1/members/M002",
        member_body(name="Membre 2", email="m2@example.fr", country="DE", product="platinum"),
    )
    rows = member_rows(5)
    bad = [
        ({**rows[0], "ref": "bad ref"}, "invalid-input", "ref"),
        ({**rows[0], "ref": "B1", "email": "nope"}, "invalid-input", "email"),
        ({**rows[0], "ref": "B2", "language": "de"}, "invalid-input", "language"),
        ({**rows[0], "ref": "B3", "country": "XX"}, "invalid-input", "country"),
        ({**rows[0], "ref": "B4", "product": "diamond"}, "unknown-product", "product"),
        ({**rows[0], "ref": "B5", "name": ""}, "invalid-input", "name"),
    ]
    rows += [row for row, _, _ in bad] + [{**rows[0], "ref": "B6", "country": "uk"}]
    csv_run = cli("ingest", "members", write_csv(tmp_path / "members.csv", MEMBER_HEADER, rows))
    assert csv_run.exit_code == 1, csv_run.output
    assert "created=4 updated=1 unchanged=1 rejected=6" in csv_run.stdout
    refused = read_rejects(tmp_path / "members.rejects.csv")
    assert [(r["line"], r["key"], r["problem"], r["field"]) for r in refused] == [
        (str(line), row["ref"], problem, field) for line, (row, problem, field) in enumerate(bad, start=7)
    ]
    parquet_run = cli("ingest", "members", write_parquet(tmp_path / "members.parquet", MEMBER_HEADER, rows))
    assert parquet_run.exit_code == 1
    assert "created=0 updated=0 unchanged=6 rejected=6" in parquet_run.stdout
    assert read_rejects(tmp_path / "members.rejects.csv") == [
        {**r, "line": str(int(r["line"]) - 1)} for r in refused
    ]
    # The API refuses the same rows, naming the same field.
    for row, _, field in bad:
        answer = api.put(f"/v1/members/{row['ref']}", {k: v for k, v in row.items() if k != "ref"})
        assert (answer.status_code, answer.json()["field"]) == (422, field), answer.text
    got = api.get("/v1/members/M001").json()
    assert (got["name"], got["email"], got["country"], got["product"]) == (
        "Membre 1",
        "m1@example.fr",
        "GB",
        "gold",
    )
    assert api.get("/v1/members/B6").json()["country"] == "GB"

    def stored() -> dict[str, tuple[str, ...]]:
        with read_session(engine) as session:
            return {
                m.ref: (m.name, m.email, m.language, m.country, m.product)
                for m in session.scalars(select(Member).where(Member.ref.in_([r["ref"] for r in rows])))
            }

    loaded = stored()
    reset(engine, clock)
    for row in rows:
        api.put(f"/v1/members/{row['ref']}", {k: v for k, v in row.items() if k != "ref"})
    assert stored() == loaded


def test_members_rerun_is_unchanged_and_updates_apply(
    engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    rows = member_rows(25)
    path = write_csv(tmp_path / "members.csv", MEMBER_HEADER, rows)
    first = ingest.ingest_members(engine, path, chunk_size=10, clock=clock)
    assert first.counts == {"created": 25, "updated": 0, "unchanged": 0} and first.chunks == 3
    again = ingest.ingest_members(engine, path, chunk_size=10, clock=clock)
    assert again.counts == {"created": 0, "updated": 0, "unchanged": 25}
    rows[7]["product"] = "centurion"
    rows.append({**rows[8], "name": "Last One Wins"})  # the same ref twice: the later row wins
    changed = ingest.ingest_members(engine, write_csv(path, MEMBER_HEADER, rows), chunk_size=100, clock=clock)
    assert changed.counts == {"created": 0, "updated": 2, "unchanged": 23}
    with read_session(engine) as session:
        assert session.scalars(select(Member.product).where(Member.ref == "M007")).one() == "centurion"
        assert session.scalars(select(Member.name).where(Member.ref == "M008")).one() == "Last One Wins"


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_members_city_and_phone_columns_load_like_put_and_are_kept_when_absent(
    api: Api, engine: Engine, clock: FrozenClock, tmp_path: Path, suffix: str
) -> None:
    """city and phone are optional columns: present, they are read as PUT reads them (a national
    number in the member's country becomes E.164, a blank clears, a bad number is refused naming
    the field); absent from the file, the stored values stay as they were."""
    writer = write_csv if suffix == "csv" else write_parquet
    header = [*MEMBER_HEADER, "city", "phone"]
    rows = [
        {**row, "city": city, "phone": phone}
        for row, (city, phone) in zip(
            member_rows(4),
            [("Paris", "06 12 34 56 78"), ("London", "+44 20 7946 0958"), ("", ""), ("Berlin", "12")],
            strict=True,
        )
    ]
    report = ingest.ingest_members(engine, writer(tmp_path / f"m.{suffix}", header, rows), clock=clock)
    assert report.counts == {"created": 3, "updated": 0, "unchanged": 0}
    assert [(r["key"], r["field"]) for r in read_rejects(report.rejects_path)] == [("M003", "phone")]
    refused = api.put("/v1/members/M003", {k: v for k, v in rows[3].items() if k != "ref"})
    assert (refused.status_code, refused.json()["field"]) == (422, "phone")
    by_ref = {ref: api.get(f"/v1/members/{ref}").json() for ref in ("M000", "M001", "M002")}
    assert [(m["city"], m["phone"]) for m in by_ref.values()] == [
        ("Paris", "+33612345678"),
        ("London", "+442079460958"),
        (None, None),
    ]
    again = ingest.ingest_members(engine, writer(tmp_path / f"m2.{suffix}", header, rows[:3]), clock=clock)
    assert again.counts == {"created": 0, "updated": 0, "unchanged": 3}
    # A file without the optional columns changes the name and leaves city and phone alone.
    renamed = [{**row, "name": "Renamed"} for row in member_rows(2)]
    ingest.ingest_members(engine, write_csv(tmp_path / "m3.csv", MEMBER_HEADER, renamed), clock=clock)
    got = api.get("/v1/members/M000").json()
    assert (got["name"], got["city"], got["phone"]) == ("Renamed", "Paris", "+33612345678")
    # A blank phone in a file that has the column clears it, as PUT without a phone does.
    cleared = [{**rows[0], "phone": ""}]
    ingest.ingest_members(engine, writer(tmp_path / f"m4.{suffix}", header, cleared), clock=clock)
    assert api.get("/v1/members/M000").json()["phone"] is None


def test_the_api_keeps_answering_between_chunks(
    api: Api, engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    """Each chunk commits on its own: between two chunks the API reads and writes, and sees the
    rows committed so far."""
    path = write_csv(tmp_path / "members.csv", MEMBER_HEADER, member_rows(60))
    seen: list[int] = []

    def between(stats: ingest.ChunkStats) -> None:
        seen.append(count(engine, Member))
        put = api.put(f"/v1/members/API{len(seen)}", member_body())
        assert put.status_code == 201
        assert api.get("/v1/members/M000").status_code == 200

    ingest.ingest_members(engine, path, chunk_size=20, clock=clock, on_chunk=between)
    assert seen == [20, 41, 62]


def test_api_writes_during_an_ingest_are_neither_lost_nor_doubled(
    engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    """API earns on the same members while a file loads, some with ids the file also carries:
    every transaction is posted exactly once and the ledger audit holds."""
    ingest.ingest_members(engine, write_csv(tmp_path / "m.csv", MEMBER_HEADER, member_rows(12)), clock=clock)
    rows = [tx_row(f"T{i:04d}", f"M{i % 10 + 2:03d}", f"{i % 97 + 1}.00") for i in range(1500)]
    path = write_csv(tmp_path / "s.csv", TX_HEADER, rows)
    api_rows = [tx_row(f"A{i:04d}", f"M{i % 10 + 2:03d}", "3.00") for i in range(150)]
    api_rows += rows[::25]  # ids the file carries too, with the same body
    failures: list[BaseException] = []

    def post_through_the_api() -> None:
        try:
            for row in api_rows:
                tx = service.TransactionInput(
                    **{**row, "occurred_at": datetime.fromisoformat(row["occurred_at"])}
                )
                run_in_transaction(
                    engine, lambda s, tx=tx: service.record_transaction(s, tx=tx, now=clock.now())
                )
        except BaseException as error:  # reported by the main thread
            failures.append(error)

    poster = threading.Thread(target=post_through_the_api)
    poster.start()
    report = ingest.ingest_transactions(engine, path, chunk_size=100, clock=clock)
    poster.join(timeout=300)
    assert not failures, failures
    assert report.ok and report.counts["posted"] + report.counts["replayed"] == len(rows)
    assert count(engine, CardTransaction) == len(rows) + 150
    assert count(engine, Posting) == len(rows) + 150
    expected: dict[str, int] = {}
    for row in rows + api_rows[:150]:
        expected[row["member_ref"]] = expected.get(row["member_ref"], 0) + int(Decimal(row["amount"]))
    ledger_now = snapshot(engine, with_times=False)
    assert {code.split(":")[1]: v for code, v in ledger_now["balances"].items()} == expected


def test_an_id_the_api_claims_during_a_chunk_is_replayed_not_doubled(
    engine: Engine, clock: FrozenClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The API posts one of the chunk's ids while the chunk waits for its locks: on PostgreSQL the
    chunk's insert then meets the API's key, is rolled back and re-run, and replays that row; on
    SQLite the chunk waits for the API's transaction and finds the key."""
    ingest.ingest_members(engine, write_csv(tmp_path / "m.csv", MEMBER_HEADER, member_rows(3)), clock=clock)
    rows = [tx_row(f"T{i}", "M002", f"{i}.00") for i in range(1, 6)]
    path = write_csv(tmp_path / "s.csv", TX_HEADER, rows)
    reports: list[ingest.Report] = []
    loader_begins = threading.Event()
    tune = ingest.tune_for_bulk

    def tune_noting_the_begin(session: Session) -> None:
        loader_begins.set()
        tune(session)  # its first statement begins the chunk's transaction

    monkeypatch.setattr(ingest_runner, "tune_for_bulk", tune_noting_the_begin)
    with Session(engine) as session, session.begin():
        tx = service.TransactionInput(
            **{**rows[2], "occurred_at": datetime.fromisoformat(rows[2]["occurred_at"])}
        )
        service.record_transaction(session, tx=tx, now=clock.now())  # holds M002's account row
        loader = threading.Thread(
            target=lambda: reports.append(ingest.ingest_transactions(engine, path, clock=clock)),
            name="ingest-loader",
        )
        loader.start()
        if engine.dialect.name == "postgresql":
            # Wait until the chunk waits for the account lock. Each look is its own transaction:
            # PostgreSQL snapshots pg_stat_activity once per transaction, so polling inside one
            # transaction would see the first reading for ever (the loader slow to start on a busy
            # machine then looks like a loader that never waits).
            for _ in range(3000):
                with engine.connect() as watcher:
                    waiting = watcher.execute(
                        text(
                            "SELECT count(*) FROM pg_stat_activity"
                            " WHERE wait_event_type = 'Lock' AND datname = current_database()"
                        )
                    ).scalar_one()
                if waiting:
                    break
                time.sleep(0.01)
            assert waiting, "the chunk never waited for the API's lock"
        else:
            # The chunk's transaction begins while the API's is open: its BEGIN IMMEDIATE can only
            # return once the API has committed, so the chunk then finds the API's key.
            assert loader_begins.wait(timeout=120), "the chunk never began its transaction"
    loader.join(timeout=120)
    [report] = reports
    assert report.ok and report.counts == {"posted": 4, "replayed": 1}
    if engine.dialect.name == "postgresql":
        assert report.retries >= 1
    assert count(engine, Posting) == 5
    assert snapshot(engine)["balances"]["member:M002:points"] == 15


# --- a run killed part-way --------------------------------------------------------------------------


def _start_ingest(engine: Engine, path: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PREVENANCE_DATABASE_URL": url_of(engine)}
    command = [sys.executable, "-m", "prevenance.cli", "ingest", "transactions", str(path), *extra]
    return subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _setup_kill_scenario(engine: Engine, clock: FrozenClock, folder: Path) -> None:
    report = ingest.ingest_members(
        engine, write_csv(folder / "m.csv", MEMBER_HEADER, member_rows(500)), clock=clock
    )
    assert report.ok
    with unit_of_work(engine) as session:
        service.create_referral(session, referrer_ref="M000", referee_ref="M001", key=None, now=clock.now())


@pytest.mark.slow
def test_sigkill_part_way_then_rerun_gives_the_ledger_of_one_clean_run(
    engine: Engine, clock: FrozenClock, tmp_path: Path
) -> None:
    rows = mixed_transactions(30_000, members=500, seed=5)
    path = write_csv(tmp_path / "settlement.csv", TX_HEADER, rows)
    total = len(rows)
    _setup_kill_scenario(engine, clock, tmp_path)

    process = _start_ingest(engine, path, "--chunk-size", "1000")
    deadline = time.monotonic() + 120
    committed = 0
    while time.monotonic() < deadline and process.poll() is None:
        committed = count(engine, CardTransaction)
        if committed >= 3000:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.01)
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, process.stderr.read() if process.stderr else ""
    at_kill = count(engine, CardTransaction)
    assert 3000 <= at_kill < total - 1000, at_kill  # killed part-way, whole chunks committed

    rerun = _start_ingest(engine, path, "--chunk-size", "1000")
    out, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 1, err.decode()  # the file's bad rows are refused again
    assert b"rejected=16" in out, out
    after_kill = snapshot(engine, with_times=False)
    rejects_after_kill = read_rejects(tmp_path / "settlement.rejects.csv")

    reset(engine, clock)
    _setup_kill_scenario(engine, clock, tmp_path)
    clean = ingest.ingest_transactions(engine, path, chunk_size=1000, clock=clock)
    assert clean.rejected == 16
    assert snapshot(engine, with_times=False) == after_kill
    assert read_rejects(tmp_path / "settlement.rejects.csv") == rejects_after_kill
    with read_session(engine) as session:
        assert ledger.audit(session)["ok"] is True


def test_a_database_that_fails_exits_3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No schema (``db upgrade`` never ran): the load stops with exit status 3, not a traceback."""
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    get_settings.cache_clear()
    try:
        path = write_csv(tmp_path / "s.csv", TX_HEADER, [tx_row("T1", "M1", "1.00")])
        result = CliRunner().invoke(cli_app, ["ingest", "transactions", str(path)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 3, result.output
    assert "run the same file again" in result.output
