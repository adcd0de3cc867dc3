"""Service recovery: a detractor or poor answer, from the survey page or ``voice import``, opens one
case on the member for the rated contact's team (once, under re-delivery and concurrent relays);
``/v1/recovery-cases`` lists, opens and closes cases; the report counts recoveries and promoters."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import Engine, func, select
from typer.testing import CliRunner

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session, run_in_transaction, unit_of_work
from prevenance.desk import recovery
from prevenance.desk.tables import RecoveryCase
from prevenance.maintenance import run_once
from prevenance.voice import invitations
from prevenance.voice import rules as voice_rules
from prevenance.voice import service as voice
from tests.conftest import Api
from tests.integration.voice.conftest import add_member, log_contact
from tests.races import race

PROBLEM = "application/problem+json"  # the test clock is 2026-01-01T00:00Z


def imported(answer_id: str, member_ref: str, **values: Any) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "id": answer_id,
        "member_ref": member_ref,
        "answered_at": "2026-01-01T00:00:00Z",
        "agent": "bob",
        "team": "london-1",
        "channel": "phone",
        "reason": "rewards.balance",
        "recommend": None,
        "interaction": None,
    }
    row.update({k: None if v is None else str(v) for k, v in values.items()})
    return row


def import_answers(engine: Engine, clock: FrozenClock, rows: list[dict[str, str | None]]) -> None:
    with unit_of_work(engine) as session:
        voice.import_answers(session, rows=rows, now=clock.now())


def answer_on_page(
    engine: Engine, clock: FrozenClock, contact_id: str, recommend: int | None, interaction: int | None
) -> None:
    form = voice_rules.AnswerForm(recommend=recommend, interaction=interaction, comment=None, suggestion=None)
    with unit_of_work(engine) as session:
        voice.submit_answer(
            session,
            invitation_id=invitations.invitation_id_for(contact_id),
            form=form,
            language="fr",
            now=clock.now(),
        )


def patch(api: Api, path: str, body: dict[str, Any], role: str = "agent") -> Any:
    return api.client.patch(path, json=body, headers=api.headers(role))


def cases(engine: Engine) -> list[RecoveryCase]:
    with read_session(engine) as session:
        return list(session.scalars(select(RecoveryCase).order_by(RecoveryCase.id)))


def test_detractors_from_the_page_and_the_import_open_one_case_each(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    add_member(api, "M1")
    add_member(api, "M2", language="en", country="GB")
    for contact, member in (("C1", "M1"), ("C2", "M1"), ("C3", "M1")):
        log_contact(api, contact, member, team="paris-2")
    run_once(engine, clock)  # the closed contacts become invitations
    answer_on_page(engine, clock, "C1", recommend=3, interaction=None)  # a detractor
    answer_on_page(engine, clock, "C2", recommend=8, interaction=2)  # passive, but a poor interaction
    answer_on_page(engine, clock, "C3", recommend=7, interaction=3)  # nothing wrong enough
    import_answers(
        engine,
        clock,
        [
            imported("P1", "M2", recommend=6),  # a detractor on the phone
            imported("P2", "M2", interaction=1),  # very poor
            imported("P3", "M2", recommend=10, interaction=5),
        ],
    )
    run_once(engine, clock)
    opened = {row.answer_id: row for row in cases(engine)}
    assert set(opened) == {"survey:" + invitations.invitation_id_for(c) for c in ("C1", "C2")} | {
        "csv:P1",
        "csv:P2",
    }
    page = opened["survey:" + invitations.invitation_id_for("C1")]
    assert (page.member_ref, page.contact_id, page.team, page.cause) == ("M1", "C1", "paris-2", "recommend")
    assert page.due_at == clock.now() + timedelta(hours=24)
    assert opened["csv:P2"].team == "london-1" and opened["csv:P2"].cause == "interaction"

    # A re-delivered event (the relay crashed after handling it) opens nothing more.
    with unit_of_work(engine) as session:
        for event in session.scalars(select(OutboxEvent).where(OutboxEvent.type == "survey.answered")):
            recovery.on_survey_answered(session, event)
    assert len(cases(engine)) == 4
    with read_session(engine) as session:
        opened_events = session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "recovery.opened")
        )
    assert opened_events == 4


def test_concurrent_relays_open_one_case(api: Api, engine: Engine, clock: FrozenClock) -> None:
    add_member(api, "M1")
    import_answers(engine, clock, [imported("R1", "M1", recommend=0)])
    with read_session(engine) as session:
        event_id = session.scalar(select(OutboxEvent.id).where(OutboxEvent.type == "survey.answered"))

    def handle(_: int) -> None:
        def use_case(session: Any) -> None:
            event = session.get(OutboxEvent, event_id)
            recovery.on_survey_answered(session, event)

        run_in_transaction(engine, use_case)

    results = race(4, handle)
    assert all(r is None for r in results), results
    assert [row.answer_id for row in cases(engine)] == ["csv:R1"]


def test_list_states_close_and_report(api: Api, engine: Engine, clock: FrozenClock) -> None:
    add_member(api, "M1")
    add_member(api, "M2")
    import_answers(
        engine, clock, [imported("A1", "M1", recommend=2), imported("A2", "M2", recommend=5, team="nice-1")]
    )
    run_once(engine, clock)
    listed = sorted(
        api.get("/v1/recovery-cases?state=due", role="agent").json(), key=lambda c: c["member_ref"]
    )
    assert [(c["member_ref"], c["state"]) for c in listed] == [("M1", "due"), ("M2", "due")]
    assert api.get("/v1/recovery-cases?state=breached", role="agent").json() == []
    assert api.get("/v1/recovery-cases/counts", role="supervisor").json() == {
        "open": 2,
        "due": 2,
        "breached": 0,
    }

    clock.advance(timedelta(hours=25))
    breached = api.get("/v1/recovery-cases?state=breached", role="agent").json()
    assert sorted(c["member_ref"] for c in breached) == ["M1", "M2"]
    assert api.get("/v1/recovery-cases/counts?team=nice-1", role="supervisor").json() == {
        "open": 1,
        "due": 0,
        "breached": 1,
    }
    first = listed[0]["id"]
    closed = patch(api, f"/v1/recovery-cases/{first}", {"outcome": "called_back", "note": "Apologised"})
    assert closed.status_code == 200, closed.text
    body = closed.json()
    assert (body["status"], body["state"], body["outcome"], body["closed_by"]) == (
        "closed",
        "closed",
        "called_back",
        "test-agent",
    )
    again = patch(api, f"/v1/recovery-cases/{first}", {"outcome": "called_back"})
    assert again.status_code == 200 and again.json() == body  # a retried close changes nothing
    other = patch(api, f"/v1/recovery-cases/{first}", {"outcome": "customer_declined"})
    assert other.status_code == 409 and other.headers["content-type"].startswith(PROBLEM)
    bad = patch(api, f"/v1/recovery-cases/{first}", {"outcome": "forgotten"})
    assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM)
    assert patch(api, "/v1/recovery-cases/nope", {"outcome": "resolved"}).status_code == 404
    second = listed[1]["id"]
    assert patch(api, f"/v1/recovery-cases/{second}", {"outcome": "customer_declined"}).status_code == 200
    seen = api.get("/v1/members/M1/360", role="agent").json()["recovery_cases"]
    assert [(c["id"], c["outcome"]) for c in seen] == [(first, "called_back")]
    assert api.get("/v1/recovery-cases?state=closed&member_ref=M1", role="agent").json()[0]["id"] == first

    # M1's next answer, after the call, is a promoter: the report counts it.
    clock.advance(timedelta(days=3))
    import_answers(engine, clock, [imported("A3", "M1", recommend=9, answered_at="2026-01-04T02:00:00Z")])
    run_once(engine, clock)
    report = api.get("/v1/recovery-cases/report?month=2026-01", role="supervisor")
    assert report.status_code == 200, report.text
    figures = report.json()
    assert (figures["opened"], figures["closed"]) == (2, 2)
    assert figures["outcomes"]["called_back"] == 1 and figures["outcomes"]["customer_declined"] == 1
    rate = figures["recovery_rate"]
    assert (rate["successes"], rate["n"], rate["value"]) == (1, 2, 0.5)
    assert 0 < rate["ci_low"] < 0.5 < rate["ci_high"] < 1
    promoter = figures["next_answer_promoter"]
    assert (promoter["successes"], promoter["n"]) == (1, 1)
    assert [t["team"] for t in figures["teams"]] == ["london-1", "nice-1"]
    assert api.get("/v1/recovery-cases/report?month=2026-13", role="supervisor").status_code == 422
    assert api.get("/v1/recovery-cases/report?month=2026-01", role="agent").status_code == 403


def test_open_by_hand_is_idempotent_and_checked(api: Api, engine: Engine, clock: FrozenClock) -> None:
    add_member(api, "M1")
    add_member(api, "M2")
    log_contact(api, "C1", "M1", team="lyon-1")
    body = {"id": "RC-1", "member_ref": "M1", "contact_id": "C1", "note": "Angry about the fee"}
    first = api.post("/v1/recovery-cases", body, role="agent")
    assert first.status_code == 201, first.text
    assert (first.json()["team"], first.json()["cause"], first.json()["state"]) == ("lyon-1", "manual", "due")
    again = api.post("/v1/recovery-cases", body, role="agent")
    assert again.status_code == 201 and again.headers["Idempotent-Replayed"] == "true"
    assert api.post("/v1/recovery-cases", {**body, "note": "other"}, role="agent").status_code == 409
    refusals = [
        ({"id": "RC-2", "member_ref": "M1"}, "team"),
        ({"id": "RC-3", "member_ref": "M2", "contact_id": "C1"}, "contact_id"),
        ({"id": "RC-4", "member_ref": "M1", "contact_id": "C9"}, "contact_id"),
        ({"id": "RC-5", "member_ref": "M9", "team": "x"}, "member_ref"),
        ({"id": "RC-6", "member_ref": "M1", "team": "x", "due_at": "2025-12-31T00:00:00Z"}, "due_at"),
    ]
    for refused, field in refusals:
        response = api.post("/v1/recovery-cases", refused, role="agent")
        assert response.status_code == 422, (refused, response.text)
        assert response.headers["content-type"].startswith(PROBLEM)
        assert field in response.text
    assert len(cases(engine)) == 1
    assert api.post("/v1/recovery-cases", body, role="marketing").status_code == 403


def test_cli_lists_due_and_breached(api: Api, engine: Engine, clock: FrozenClock, monkeypatch: Any) -> None:
    from prevenance.cli import app as cli
    from prevenance.desk import cli as desk_cli

    add_member(api, "M1")
    import_answers(engine, clock, [imported("A1", "M1", recommend=1)])
    run_once(engine, clock)
    monkeypatch.setattr(desk_cli, "_engine", lambda: engine)
    monkeypatch.setattr(desk_cli, "SystemClock", lambda: clock)
    runner = CliRunner()
    due = runner.invoke(cli, ["desk", "recovery", "--state", "due"])
    assert due.exit_code == 0, due.output
    assert "M1" in due.output and "1 recovery case(s) due" in due.output
    assert (
        "0 recovery case(s) breached"
        in runner.invoke(cli, ["desk", "recovery", "--state", "breached"]).output
    )
    clock.advance(timedelta(days=2))
    assert (
        "1 recovery case(s) breached"
        in runner.invoke(cli, ["desk", "recovery", "--state", "breached"]).output
    )
    assert runner.invoke(cli, ["desk", "recovery", "--state", "late"]).exit_code == 2
    report = runner.invoke(cli, ["desk", "recovery", "--month", "2026-01"])
    assert report.exit_code == 0 and "1 case(s) opened in 2026-01" in report.output
