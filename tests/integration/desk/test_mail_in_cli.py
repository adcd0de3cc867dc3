"""``prevenance desk mail-classifier evaluate`` and ``send-mail`` from the command line."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from typer.testing import CliRunner

from prevenance.cli import app as cli
from prevenance.db import make_engine, unit_of_work
from prevenance.demo.mail import PHRASES, contact_note
from prevenance.desk import service
from prevenance.desk.mail_in import service as mail
from prevenance.settings import get_settings
from tests.conftest import member_body
from tests.smtp_server import running_smtp


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_classifier_evaluation_and_sending_the_queue(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prevenance.customers import service as customers

    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    too_few = runner.invoke(cli, ["desk", "mail-classifier", "evaluate"])
    assert too_few.exit_code == 1 and "at least 10" in too_few.output
    engine = make_engine(sqlite_url)
    past = datetime(2026, 1, 5, 9, tzinfo=UTC)
    reasons = sorted(PHRASES)
    with unit_of_work(engine) as session:
        customers.upsert(session, ref="M1", data=customers.MemberData(**member_body()), now=past)
        for n in range(200):
            reason = reasons[n % len(reasons)]
            service.log_contact(
                session,
                contact=service.ContactInput(
                    id=f"C{n}",
                    member_ref="M1",
                    channel="phone",
                    direction="inbound",
                    agent="a1",
                    team="paris",
                    reason=reason,
                    started_at=past,
                    ended_at=past + timedelta(minutes=3),
                    notes=contact_note(reason, f"C{n}"),
                    outcome="resolved",
                ),
                now=past,
            )
    result = runner.invoke(cli, ["desk", "mail-classifier", "evaluate", "--held-out", "0.25"])
    assert result.exit_code == 0, result.output
    assert "trained on 150 contacts, tested on 50 held out" in result.output
    assert "majority baseline" in result.output and "card.lost_stolen" in result.output

    message = EmailMessage()
    message["From"] = "camille@example.fr"
    message["To"] = "service@prevenance.example"
    message["Subject"] = "Carte perdue"
    message["Message-ID"] = "<cli-1@example.fr>"
    message.set_content("J'ai perdu ma carte.")
    with unit_of_work(engine) as session:
        received = mail.receive(
            session,
            raw=message.as_bytes(),
            envelope_sender="camille@example.fr",
            our_addresses=frozenset({"service@prevenance.example"}),
            attachment_max_bytes=1000,
            model=mail.load_model(session),
            now=past,
        )
    assert received.state == "filed"
    monkeypatch.delenv("PREVENANCE_SMTP_URL", raising=False)
    get_settings.cache_clear()
    assert runner.invoke(cli, ["desk", "send-mail"]).exit_code == 2
    with running_smtp() as relay:
        monkeypatch.setenv("PREVENANCE_SMTP_URL", relay.url)
        get_settings.cache_clear()
        sent = runner.invoke(cli, ["desk", "send-mail"])
        assert sent.exit_code == 0 and "1 message(s) sent; 0 pending" in sent.output
        [ack] = relay.inbox.take()
    assert ack["In-Reply-To"] == "<cli-1@example.fr>" and "2 heures" in ack.get_content()
    engine.dispose()
