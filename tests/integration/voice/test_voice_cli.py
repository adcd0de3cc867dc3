"""``prevenance voice``: import, scores, scorecards (files and publication), barometers, report and
the invitation relay, from the command line on a SQLite file."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from typer.testing import CliRunner

from prevenance.cli import app as cli
from prevenance.common.clock import FrozenClock
from prevenance.customers import service as customers
from prevenance.db import make_engine, read_session, unit_of_work
from prevenance.desk import service as desk
from prevenance.maintenance import run_once
from prevenance.settings import get_settings
from prevenance.voice import service
from tests.conftest import member_body
from tests.integration.voice.conftest import Smtp

COLUMNS = [
    "id",
    "member_ref",
    "answered_at",
    "agent",
    "team",
    "channel",
    "reason",
    "recommend",
    "interaction",
    "comment",
]


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", url)
    get_settings.cache_clear()
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(url)
    with unit_of_work(engine) as session:
        for ref, country, language in (("M1", "FR", "fr"), ("M2", "GB", "en")):
            data = customers.MemberData(
                **member_body(email=f"{ref}@example.org", country=country, language=language)
            )
            customers.upsert(session, ref=ref, data=data, now=datetime(2026, 1, 1, tzinfo=UTC))
    engine.dispose()
    yield url
    get_settings.cache_clear()


def write_csv(path: Path, rows: list[dict[str, Any]], columns: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns)
        writer.writeheader()
        writer.writerows(rows)
    return path


def answers(count: int) -> list[dict[str, Any]]:
    return [
        {
            "id": f"P{i}",
            "member_ref": "M1" if i % 2 else "M2",
            "answered_at": f"2026-01-{1 + i % 28:02d}T09:00:00Z",
            "agent": f"agent-{i % 3}",
            "team": "t1",
            "channel": "phone",
            "reason": "rewards.balance",
            "recommend": str(i % 11),
            "interaction": str(1 + i % 5),
            "comment": "attente trop longue" if i % 7 == 0 else "",
        }
        for i in range(count)
    ]


def test_import_scores_scorecards_and_report(sqlite_url: str, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = write_csv(
        tmp_path / "bad.csv", [*answers(3), {**answers(1)[0], "id": "X", "recommend": "12"}], COLUMNS
    )
    refused = runner.invoke(cli, ["voice", "import", str(bad)])
    assert refused.exit_code == 2
    assert "line 5: recommend" in refused.output
    good = write_csv(tmp_path / "answers.csv", answers(60), COLUMNS)
    imported = runner.invoke(cli, ["voice", "import", str(good)])
    assert imported.exit_code == 0, imported.output
    assert "60 answer(s) imported, 0 already there" in imported.output
    assert (
        "0 answer(s) imported, 60 already there" in runner.invoke(cli, ["voice", "import", str(good)]).output
    )
    assert "recommend" in runner.invoke(cli, ["voice", "import", "--help"]).output

    table = runner.invoke(cli, ["voice", "scores", "--by", "agent", "--month", "2026-01"])
    assert table.exit_code == 0, table.output
    assert "agent-0" in table.output and "agent-2" in table.output and "docs/methods.md" in table.output
    assert runner.invoke(cli, ["voice", "scores", "--by", "mood", "--month", "2026-01"]).exit_code == 2

    out = tmp_path / "cards"
    draft = runner.invoke(cli, ["voice", "scorecards", "--month", "2026-01", "--out", str(out)])
    assert draft.exit_code == 0, draft.output
    assert "version 1 (draft, not published)" in draft.output
    with (out / "scorecards-2026-01-v1.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["agent"] for r in rows] == ["agent-0", "agent-1", "agent-2"]
    assert sum(int(r["n"]) for r in rows) == 60
    sheet = load_workbook(out / "scorecards-2026-01-v1.xlsx").active
    assert sheet is not None
    cells = list(sheet.iter_rows(values_only=True))
    assert cells[0][0] == "agent" and [c[0] for c in cells[1:]] == ["agent-0", "agent-1", "agent-2"]

    assert runner.invoke(cli, ["voice", "scorecards", "--month", "2026-01", "--publish"]).exit_code == 2
    published = runner.invoke(
        cli,
        [
            "voice",
            "scorecards",
            "--month",
            "2026-01",
            "--out",
            str(out),
            "--publish",
            "--by",
            "Claire",
            "--reason",
            "close",
        ],
    )
    assert published.exit_code == 0 and "version 1 (published)" in published.output, published.output
    same = runner.invoke(cli, ["voice", "scorecards", "--month", "2026-01", "--out", str(out)])
    assert "version 1 (same as published)" in same.output

    barometers = write_csv(
        tmp_path / "barometers.csv",
        [
            {
                "source": "Kantar",
                "country": "FR",
                "quarter": "2026Q1",
                "metric": "rtf",
                "value": "20",
                "n": "900",
            }
        ],
        ["source", "country", "quarter", "metric", "value", "n"],
    )
    assert "1 inserted" in runner.invoke(cli, ["voice", "barometers", "import", str(barometers)]).output
    assert "1 unchanged" in runner.invoke(cli, ["voice", "barometers", "import", str(barometers)]).output

    report = runner.invoke(
        cli, ["voice", "report", "--quarter", "2026Q1", "--lang", "en", "--out", str(tmp_path)]
    )
    assert report.exit_code == 0, report.output
    html = (tmp_path / "voice-report-2026Q1-en.html").read_text(encoding="utf-8")
    assert "<svg" in html or "data:image" in html
    assert runner.invoke(cli, ["voice", "report", "--quarter", "2026Q7"]).exit_code == 2


def test_scorecard_files_never_hand_a_spreadsheet_a_formula(sqlite_url: str, tmp_path: Path) -> None:
    """The files ``voice scorecards`` writes go to the payroll team's spreadsheet: an agent or team
    name starting with = + - or @ is an apostrophe-prefixed text in the CSV and a text cell in the
    XLSX, never a formula (CSV injection); numbers stay numbers."""
    hostile = [
        {**row, "agent": '=HYPERLINK("http://evil.example/")', "team": "@SUM(A1:A9)"} for row in answers(4)
    ]
    source = write_csv(tmp_path / "hostile.csv", hostile, COLUMNS)
    runner = CliRunner()
    assert runner.invoke(cli, ["voice", "import", str(source)]).exit_code == 0
    out = tmp_path / "cards"
    draft = runner.invoke(cli, ["voice", "scorecards", "--month", "2026-01", "--out", str(out)])
    assert draft.exit_code == 0, draft.output
    with (out / "scorecards-2026-01-v1.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["agent"], r["team"], r["n"]) for r in rows] == [
        ('\'=HYPERLINK("http://evil.example/")', "'@SUM(A1:A9)", "4")
    ]
    sheet = load_workbook(out / "scorecards-2026-01-v1.xlsx").active
    assert sheet is not None
    header = [cell.value for cell in sheet[1]]
    agent, team, n = (sheet.cell(row=2, column=header.index(name) + 1) for name in ("agent", "team", "n"))
    assert (agent.value, agent.data_type) == ('=HYPERLINK("http://evil.example/")', "s")
    assert (team.value, team.data_type) == ("@SUM(A1:A9)", "s")
    assert (n.value, n.data_type) == (4, "n")


def test_send_invitations(sqlite_url: str, smtp: Smtp, monkeypatch: pytest.MonkeyPatch) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["voice", "send-invitations"]).exit_code == 2  # no SMTP configured
    engine = make_engine(sqlite_url)
    at = datetime(2026, 1, 5, 9, tzinfo=UTC)
    with unit_of_work(engine) as session:
        contact = desk.ContactInput(
            id="C1",
            member_ref="M2",
            channel="email",
            direction="inbound",
            agent="bob",
            team="t1",
            reason="rewards.balance",
            started_at=at,
            ended_at=at,
            notes="",
            outcome="resolved",
        )
        desk.log_contact(session, contact=contact, now=at)
    run_once(engine, FrozenClock(at), smtp_url=None)  # the event becomes a pending invitation
    monkeypatch.setenv("PREVENANCE_SMTP_URL", smtp.url)
    get_settings.cache_clear()
    sent = runner.invoke(cli, ["voice", "send-invitations"])
    assert sent.exit_code == 0 and "1 invitation(s) sent" in sent.output, sent.output
    assert [str(m["To"]) for m in smtp.inbox.take()] == ["M2@example.org"]
    with read_session(engine) as session:
        assert service.get_survey_consent(session, member_ref="M2")["opted_out"] is False
    engine.dispose()


@pytest.mark.parametrize(
    ("content", "says"),
    [
        ("id,member_ref\nP1,M1\nP2," + "x" * 200_000 + "\n", "unreadable CSV near line 3"),
        (b"id,member_ref,comment\nP1,M1,caf\xe9\n", "unreadable CSV"),
    ],
)
def test_an_unreadable_file_is_refused_with_exit_2_and_nothing_written(
    sqlite_url: str, tmp_path: Path, content: str | bytes, says: str
) -> None:
    path = tmp_path / "bad.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(cli, ["voice", "import", str(path)])
    assert result.exit_code == 2, result.output
    assert says in result.output
    engine = make_engine(sqlite_url)
    with read_session(engine) as session:
        assert service.scores(session, by="team", month="2026-01")["n"] == 0
    engine.dispose()


@pytest.mark.parametrize(
    "content",
    [
        "source,country,quarter,metric,value,n\nKantar,FR,2026Q1," + "x" * 200_000 + ",21.5,\n",
        b"source,country,quarter,metric,value,n\nKantar \xe9tude,FR,2026Q1,rtf,21.5,\n",
    ],
)
def test_an_unreadable_barometer_file_is_refused_with_exit_2_and_nothing_written(
    sqlite_url: str, tmp_path: Path, content: str | bytes
) -> None:
    """Bytes that are not UTF-8 (a Latin-1 export) or a field past the csv module's limit ended the
    barometer import with a traceback (exit 1); like the answers import it is a clear line, exit 2."""
    path = tmp_path / "barometers.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    result = CliRunner().invoke(cli, ["voice", "barometers", "import", str(path)])
    assert result.exit_code == 2, result.output
    assert "unreadable CSV" in result.output
    engine = make_engine(sqlite_url)
    with read_session(engine) as session:
        assert service.list_barometers(session) == []
    engine.dispose()
