"""Proactive incidents: ``POST /v1/incidents`` (+ updates, resolve), the notices outbox and the mail
relay, read back from a real SMTP server (aiosmtpd) running in the test process."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from prevenance.cli import app as cli
from prevenance.common.clock import FrozenClock
from prevenance.customers import service as customers
from prevenance.db import make_engine, unit_of_work
from prevenance.desk import incidents
from prevenance.maintenance import run_once
from prevenance.settings import get_settings
from tests.conftest import Api, member_body, tx_body
from tests.smtp_server import Smtp, running_smtp

PROBLEM = "application/problem+json"  # the test clock is 2026-01-01T00:00Z


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """A real SMTP server on a free local port, collecting what it is sent."""
    with running_smtp() as server:
        yield server


def incident(incident_id: str = "INC1", **overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": incident_id,
        "title_fr": "Paiements refusés",
        "title_en": "Payments declined",
        "body_fr": "Certains paiements sont refusés depuis ce matin.",
        "body_en": "Some payments have been declined since this morning.",
        "since": "2025-12-31T08:00:00Z",
        "affects": {"products": ["gold"], "countries": ["FR", "GB"]},
    }
    body.update(overrides)
    return body


def by_recipient(messages: list[EmailMessage]) -> dict[str, EmailMessage]:
    found = {str(m["To"]): m for m in messages}
    assert len(found) == len(messages), "one mail per member"
    return found


def members(api: Api) -> None:
    api.put("/v1/members/M1", member_body(email="m1@example.fr"))  # fr, FR, gold: affected
    api.put("/v1/members/M2", member_body(email="m2@example.uk", language="en", country="GB"))  # affected
    api.put("/v1/members/M3", member_body(email="m3@example.fr", product="platinum"))  # other product
    api.put("/v1/members/M4", member_body(email="m4@example.be", country="BE"))  # other country


def test_notices_reach_the_affected_members_in_their_language(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    members(api)
    created = api.post("/v1/incidents", incident(), role="supervisor")
    assert created.status_code == 201, created.text
    assert (created.json()["status"], created.json()["affected"]) == ("active", 2)
    again = api.post("/v1/incidents", incident(), role="supervisor")
    assert (again.status_code, again.json(), again.headers["Idempotent-Replayed"]) == (
        201,
        created.json(),
        "true",
    )
    other = api.post("/v1/incidents", incident(title_en="Other"), role="supervisor")
    assert other.status_code == 409 and other.headers["content-type"].startswith(PROBLEM)
    assert [i["id"] for i in api.get("/v1/members/M1/360", role="agent").json()["incidents"]] == ["INC1"]
    assert api.get("/v1/members/M3/360", role="agent").json()["incidents"] == []

    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 2
    initial = by_recipient(smtp.inbox.take())
    assert set(initial) == {"m1@example.fr", "m2@example.uk"}
    assert initial["m1@example.fr"]["Subject"] == "Incident : Paiements refusés"
    assert (
        initial["m1@example.fr"].get_content().strip() == "Certains paiements sont refusés depuis ce matin."
    )
    assert initial["m2@example.uk"]["Subject"] == "Incident: Payments declined"
    assert (
        initial["m2@example.uk"].get_content().strip()
        == "Some payments have been declined since this morning."
    )
    assert initial["m1@example.fr"]["Message-ID"].startswith("<ntc_")
    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 0
    assert smtp.inbox.take() == []

    update = {"id": "U1", "body_fr": "Correctif en cours.", "body_en": "A fix is being deployed."}
    posted = api.post("/v1/incidents/INC1/updates", update, role="agent")
    assert (posted.status_code, posted.json()["notices"]) == (201, 2), posted.text
    replay = api.post("/v1/incidents/INC1/updates", update, role="agent")
    assert replay.json() == posted.json() and replay.headers["Idempotent-Replayed"] == "true"
    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 2
    updates = by_recipient(smtp.inbox.take())
    assert updates["m1@example.fr"]["Subject"] == "Mise à jour : Paiements refusés"
    assert updates["m2@example.uk"].get_content().strip() == "A fix is being deployed."

    resolution = {"body_fr": "Tout est rentré dans l'ordre.", "body_en": "Everything is back to normal."}
    resolved = api.post("/v1/incidents/INC1/resolve", resolution, role="supervisor")
    assert (resolved.status_code, resolved.json()["status"]) == (200, "resolved"), resolved.text
    assert api.post("/v1/incidents/INC1/resolve", resolution, role="supervisor").json() == resolved.json()
    late = api.post("/v1/incidents/INC1/updates", {**update, "id": "U2"}, role="agent")
    assert late.status_code == 409 and late.headers["content-type"].startswith(PROBLEM)
    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 2
    final = by_recipient(smtp.inbox.take())
    assert final["m1@example.fr"]["Subject"] == "Résolu : Paiements refusés"
    assert final["m2@example.uk"]["Subject"] == "Resolved: Payments declined"
    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 0
    assert smtp.inbox.take() == []

    for ref, mails in (("M1", "m1@example.fr"), ("M2", "m2@example.uk")):
        logged = api.get(f"/v1/members/{ref}/communications", role="agent").json()["items"]
        assert sorted(c["template"] for c in logged) == [
            "incident.initial",
            "incident.resolution",
            "incident.update",
        ]
        assert {c["kind"] for c in logged} == {"incident"} and {c["channel"] for c in logged} == {"email"}
        sent = [initial[mails], updates[mails], final[mails]]
        assert {f"<{c['id']}@prevenance.notices>" for c in logged} == {m["Message-ID"] for m in sent}
    for ref in ("M3", "M4"):
        assert api.get(f"/v1/members/{ref}/communications", role="agent").json()["items"] == []
    assert api.get("/v1/members/M1/360", role="agent").json()["incidents"] == []
    assert api.get("/v1/incidents/INC1", role="agent").json()["resolved_at"] is not None


def test_merchant_and_window_target_the_members_who_paid_there(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    members(api)
    for tx_id, ref, merchant, at in (
        ("T1", "M1", "Boulangerie Paul", "2025-12-31T10:00:00Z"),  # in the window
        ("T2", "M2", "Boulangerie Paul", "2025-12-30T10:00:00Z"),  # before it
        ("T3", "M3", "BOULANGERIE PAUL", "2025-12-31T11:00:00Z"),  # in it, case differs
        ("T4", "M4", "Librairie", "2025-12-31T10:00:00Z"),  # another merchant
    ):
        response = api.post("/v1/transactions", tx_body(tx_id, ref, merchant=merchant, occurred_at=at))
        assert response.status_code == 201, response.text
    affects = {
        "merchant": "Boulangerie Paul",
        "window_start": "2025-12-31T00:00:00Z",
        "window_end": "2026-01-01T00:00:00Z",
    }
    created = api.post("/v1/incidents", incident("INC2", affects=affects), role="agent")
    assert created.json()["affected"] == 2, created.text
    narrowed = api.post("/v1/incidents", incident("INC3", affects={**affects, "products": ["gold"]}))
    assert narrowed.json()["affected"] == 1, narrowed.text

    done = run_once(engine, clock, deliver_events=False, smtp_url=smtp.url)
    assert done["notices_sent"] == 3
    mails = smtp.inbox.take()
    assert sorted(str(m["To"]) for m in mails) == ["m1@example.fr", "m1@example.fr", "m3@example.fr"]
    assert run_once(engine, clock, deliver_events=False)["notices_sent"] == 0
    listed = api.get("/v1/members/M1/360", role="agent").json()["incidents"]
    assert sorted(i["id"] for i in listed) == ["INC2", "INC3"]


def test_a_crash_after_sending_resends_once_with_the_same_message_id(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.put("/v1/members/M1", member_body(email="m1@example.fr"))
    api.post("/v1/incidents", incident(affects={"countries": ["FR"]}), role="supervisor")

    def crash(*_: Any, **__: Any) -> Any:
        raise RuntimeError("the process died before marking the notice sent")

    with monkeypatch.context() as patch:
        patch.setattr(incidents.mail, "mark_rows_sent", crash)
        with pytest.raises(RuntimeError):
            incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now())
    first = smtp.inbox.take()
    assert len(first) == 1
    assert api.get("/v1/members/M1/communications", role="agent").json()["items"] == []
    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 1
    second = smtp.inbox.take()
    assert [m["Message-ID"] for m in second] == [first[0]["Message-ID"]]
    assert len(api.get("/v1/members/M1/communications", role="agent").json()["items"]) == 1
    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 0


def test_bad_incidents_and_who_may_declare(api: Api) -> None:
    api.put("/v1/members/M1", member_body())
    for affects in (
        {},
        {"countries": ["FR"], "window_start": "2025-12-31T00:00:00Z"},
        {"merchant": "X", "window_start": "2026-01-01T00:00:00Z", "window_end": "2025-12-31T00:00:00Z"},
        {"countries": ["France"]},
    ):
        response = api.post("/v1/incidents", incident("BAD", affects=affects), role="supervisor")
        assert response.status_code == 422, (affects, response.text)
    for role in ("concierge", "integrator"):
        assert api.post("/v1/incidents", incident("INC9"), role=role).status_code == 403
    # Marketing declares from its console screen, so the API admits it too.
    declared = api.post("/v1/incidents", incident("INC8", affects={"countries": ["JP"]}), role="marketing")
    assert declared.status_code == 201, declared.text
    assert api.get("/v1/incidents/INC8", role="marketing").json()["id"] == "INC8"
    update = {"id": "U1", "body_fr": "x", "body_en": "y"}
    missing = api.post("/v1/incidents/NOPE/updates", update, role="agent")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)
    assert api.post("/v1/incidents/NOPE/resolve", {"body_fr": "x", "body_en": "y"}).status_code == 404
    assert api.get("/v1/incidents/NOPE", role="agent").status_code == 404
    nobody = api.post("/v1/incidents", incident("INC0", affects={"countries": ["JP"]}), role="agent")
    assert (nobody.status_code, nobody.json()["affected"]) == (201, 0)


def test_cli_send_notices(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp: Smtp) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", url)
    monkeypatch.delenv("PREVENANCE_SMTP_URL", raising=False)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
        engine = make_engine(url)
        now = datetime(2026, 1, 5, 9, tzinfo=UTC)
        with unit_of_work(engine) as session:
            customers.upsert(session, ref="M1", data=customers.MemberData(**member_body()), now=now)
            data = incidents.IncidentInput(
                id="INC1", title_fr="t", title_en="t", body_fr="b", body_en="b", since=now, affects={}
            )
            incidents.declare(session, incident=data, affected=lambda _: [1], by="ops", now=now)
        unset = runner.invoke(cli, ["desk", "send-notices"])
        assert unset.exit_code == 2
        monkeypatch.setenv("PREVENANCE_SMTP_URL", smtp.url)
        get_settings.cache_clear()
        done = runner.invoke(cli, ["desk", "send-notices"])
        assert done.exit_code == 0, done.output
        assert "1 notice(s) sent; 0 pending" in done.output
        assert [str(m["To"]) for m in smtp.inbox.take()] == ["camille@example.fr"]
        engine.dispose()
    finally:
        get_settings.cache_clear()
