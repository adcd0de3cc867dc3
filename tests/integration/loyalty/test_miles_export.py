"""``prevenance partners export --date D``: the co-brand miles file an airline takes, each mile once."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from prevenance.cli import app as cli
from prevenance.common.clock import FrozenClock
from prevenance.db import read_session
from prevenance.loyalty.tables import MilesExport, MilesExportLine
from prevenance.settings import get_settings
from tests.conftest import Api, member_body, tx_body

HEADER = ["partner", "export_date", "member_ref", "miles"]


@pytest.fixture
def export(engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """Run the export command against the test database; returns the rows of the partner's file."""
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    out = tmp_path / "exports"

    def run(day: str, partner: str = "skyline") -> list[list[str]]:
        result = CliRunner().invoke(cli, ["partners", "export", "--date", day, "--out", str(out)])
        assert result.exit_code == 0, result.output
        path = out / f"miles_{partner}_{day}.csv"
        assert str(path) in result.output
        with path.open(newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
        assert rows[0] == HEADER
        return rows[1:]

    yield run
    get_settings.cache_clear()


def _setup(api: Api) -> None:
    for ref, product in [("C1", "cobrand-airline"), ("C2", "cobrand-airline"), ("G1", "gold")]:
        assert api.put(f"/v1/members/{ref}", member_body(product=product)).status_code == 201


def _earn(api: Api, tx_id: str, ref: str, amount: str) -> None:
    response = api.post("/v1/transactions", tx_body(tx_id, ref, amount), role="integrator")
    assert response.status_code == 201, response.text


def _exported_total(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.execute(select(func.coalesce(func.sum(MilesExportLine.miles), 0))).scalar_one())


def test_the_file_lists_each_members_miles_for_the_airline(api: Api, export, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    _setup(api)
    _earn(api, "T1", "C1", "100.00")
    _earn(api, "T2", "C2", "50.40")
    _earn(api, "T3", "C1", "20.00")
    _earn(api, "T4", "G1", "500.00")  # points, not miles: not the airline's business
    rows = export("2026-01-01")
    assert rows == [["skyline", "2026-01-01", "C1", "120"], ["skyline", "2026-01-01", "C2", "50"]]
    with read_session(engine) as session:
        stored = session.scalars(select(MilesExport)).one()
        assert (stored.partner_code, stored.export_date, stored.total_miles, stored.line_count) == (
            "skyline",
            "2026-01-01",
            170,
            3,
        )


def test_exporting_the_same_date_twice_sends_nothing_more(api: Api, export, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    _setup(api)
    _earn(api, "T1", "C1", "100.00")
    first = export("2026-01-01")
    again = export("2026-01-01")
    assert again == first == [["skyline", "2026-01-01", "C1", "100"]]
    assert _exported_total(engine) == 100
    with read_session(engine) as session:
        assert session.execute(select(func.count()).select_from(MilesExport)).scalar_one() == 1


def test_a_later_date_sends_only_what_is_new(  # type: ignore[no-untyped-def]
    api: Api, export, engine: Engine, clock: FrozenClock
) -> None:
    _setup(api)
    _earn(api, "T1", "C1", "100.00")
    assert export("2026-01-01") == [["skyline", "2026-01-01", "C1", "100"]]
    assert export("2026-01-02") == []  # nothing new: the day-one miles are not sent again
    clock.advance(timedelta(days=2))  # 2026-01-03
    _earn(api, "T2", "C2", "75.00")
    assert export("2026-01-02") == []
    assert export("2026-01-01") == [["skyline", "2026-01-01", "C1", "100"]]
    assert export("2026-01-03") == [["skyline", "2026-01-03", "C2", "75"]]
    assert export("2026-01-10") == []
    assert _exported_total(engine) == 175


def test_miles_earned_after_the_export_date_wait_for_their_day(  # type: ignore[no-untyped-def]
    api: Api, export, clock: FrozenClock
) -> None:
    _setup(api)
    _earn(api, "T1", "C1", "100.00")
    clock.advance(timedelta(days=1))
    _earn(api, "T2", "C1", "10.00")
    assert export("2026-01-01") == [["skyline", "2026-01-01", "C1", "100"]]
    assert export("2026-01-02") == [["skyline", "2026-01-02", "C1", "10"]]


def test_a_refund_after_export_is_a_negative_line_later(  # type: ignore[no-untyped-def]
    api: Api, export, engine: Engine, clock: FrozenClock
) -> None:
    _setup(api)
    _earn(api, "T1", "C1", "100.00")
    _earn(api, "T2", "C2", "50.40")
    assert export("2026-01-01") == [
        ["skyline", "2026-01-01", "C1", "100"],
        ["skyline", "2026-01-01", "C2", "50"],
    ]
    clock.advance(timedelta(days=1))
    refund = api.post("/v1/transactions/T2/refunds", {"id": "RF1", "amount": "20.40"}, role="integrator")
    assert refund.status_code == 201 and refund.json()["points_reversed"] == 20
    _earn(api, "T3", "C1", "30.00")
    assert export("2026-01-02") == [
        ["skyline", "2026-01-02", "C1", "30"],
        ["skyline", "2026-01-02", "C2", "-20"],
    ]
    balances = [api.get(f"/v1/members/{ref}/balance").json()["miles"] for ref in ("C1", "C2")]
    assert balances == [130, 30]
    assert _exported_total(engine) == sum(balances)  # what the airline got is what members hold


def test_referral_miles_are_owed_to_the_airline_too(api: Api, export) -> None:  # type: ignore[no-untyped-def]
    _setup(api)
    assert api.post("/v1/referrals", {"referrer_ref": "C1", "referee_ref": "G1"}).status_code == 201
    _earn(api, "T1", "G1", "10.00")
    assert export("2026-01-01") == [["skyline", "2026-01-01", "C1", "5000"]]


def test_a_bad_date_is_refused(engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    out = tmp_path / "exports"
    try:
        result = CliRunner().invoke(cli, ["partners", "export", "--date", "01/02/2026", "--out", str(out)])
    finally:
        get_settings.cache_clear()
    assert result.exit_code == 2
    assert not out.exists()
    with read_session(engine) as session:
        assert session.execute(select(func.count()).select_from(MilesExport)).scalar_one() == 0
