"""``prevenance desk``: reports from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prevenance.cli import app as cli
from prevenance.db import make_engine, unit_of_work
from prevenance.desk import service
from prevenance.settings import get_settings
from tests.conftest import member_body


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_fcr_and_card_replacement_reports(sqlite_url: str) -> None:
    from prevenance.customers import service as customers

    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(sqlite_url)
    past = datetime(2026, 1, 5, 9, tzinfo=UTC)
    with unit_of_work(engine) as session:
        customers.upsert(session, ref="M1", data=customers.MemberData(**member_body()), now=past)
        contact = service.ContactInput(
            id="C1",
            member_ref="M1",
            channel="chat",
            direction="inbound",
            agent="alice",
            team="t1",
            reason="rewards.balance",
            started_at=past,
            ended_at=past,
            notes="",
            outcome="resolved",
        )
        service.log_contact(session, contact=contact, now=past)
        order = service.CardReplacementInput(id="R1", member_ref="M1", city="Paris", country="FR", address="")
        service.order_card_replacement(session, order=order, now=past)
    engine.dispose()
    table = runner.invoke(cli, ["desk", "fcr", "--by", "channel", "--month", "2026-01"])
    assert table.exit_code == 0, table.output
    assert "chat" in table.output and "100.0" in table.output
    as_json = runner.invoke(cli, ["desk", "fcr", "--by", "agent", "--json"])
    assert json.loads(as_json.output)["overall"]["n"] == 1
    assert runner.invoke(cli, ["desk", "fcr", "--by", "mood"]).exit_code == 2
    reasons = runner.invoke(cli, ["desk", "reasons", "--month", "2026-01"])
    assert reasons.exit_code == 0, reasons.output
    assert "rewards.balance" in reasons.output and "avoidable" in reasons.output
    assert (
        json.loads(runner.invoke(cli, ["desk", "reasons", "--month", "2026-01", "--json"]).output)["contacts"]
        == 1
    )
    assert runner.invoke(cli, ["desk", "reasons", "--month", "January"]).exit_code == 2
    breached = runner.invoke(cli, ["desk", "card-replacements", "--state", "breached"])
    assert breached.exit_code == 0 and "R1" in breached.output and "1 order(s) breached" in breached.output


def test_may_send_marketing_reads_the_stored_preference(sqlite_url: str) -> None:
    from prevenance.customers import service as customers

    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    engine = make_engine(sqlite_url)
    now = datetime(2026, 1, 5, 9, tzinfo=UTC)
    with unit_of_work(engine) as session:
        member, _ = customers.upsert(session, ref="M1", data=customers.MemberData(**member_body()), now=now)
        assert service.may_send_marketing(session, member_id=member.id) is True
        service.set_contact_preference(
            session, member_ref="M1", mode="leave_me_alone", preferred_channel=None, by="agent", now=now
        )
        assert service.may_send_marketing(session, member_id=member.id) is False
    engine.dispose()
