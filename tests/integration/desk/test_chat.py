"""Member chat through REST and WebSockets, on SQLite and PostgreSQL: a chat opens only at a current
moment, a member sees only their own chats, agents their teams' queues, exactly one agent wins a
take, messages are numbered once per conversation and a resumed socket shows none twice, closing
records a contact on channel ``chat``."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from prevenance.app import create_app
from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.common.problems import PrevenanceError
from prevenance.db import read_session, run_in_transaction, unit_of_work
from prevenance.desk.chat import service as chat
from prevenance.desk.chat.errors import ChatAlreadyTaken
from prevenance.maintenance import run_once
from prevenance.voice.tables import Invitation
from tests.conftest import Api, member_body
from tests.races import race

PROBLEM = "application/problem+json"


def key(
    engine: Engine, clock: FrozenClock, role: str, name: str, member_ref: str | None = None
) -> dict[str, str]:
    with unit_of_work(engine) as session:
        _, secret = create_key(session, role=role, name=name, now=clock.now(), member_ref=member_ref)
    return {"Authorization": f"Bearer {secret}"}


@pytest.fixture
def setup(api: Api, engine: Engine, clock: FrozenClock) -> dict[str, Any]:
    """Two members with their keys, a card reported lost for M1, agents of the cards and travel teams."""
    assert api.put("/v1/members/M1", member_body()).status_code in (200, 201)
    assert api.put("/v1/members/M2", member_body(email="m2@example.fr")).status_code in (200, 201)
    order = {"id": "R1", "city": "Paris", "country": "FR", "address": "1 rue de la Paix"}
    assert api.post("/v1/members/M1/card-replacements", order, role="agent").status_code == 201
    for name, teams in (("test-agent", ["cards"]), ("bob", ["cards"]), ("carol", ["travel"])):
        assert api.put(f"/v1/chat-agents/{name}", {"teams": teams}, role="supervisor").status_code == 200
    return {
        "m1": key(engine, clock, "member", "m1", "M1"),
        "m2": key(engine, clock, "member", "m2", "M2"),
        "agent": api.headers("agent"),  # named test-agent
        "bob": key(engine, clock, "agent", "bob"),
        "carol": key(engine, clock, "agent", "carol"),
    }


def open_chat(api: Api, headers: dict[str, str], chat_id: str = "C1") -> Any:
    body = {"id": chat_id, "moment_kind": "card_lost", "moment_ref": "R1"}
    return api.client.post("/v1/chats", json=body, headers=headers)


def test_offer_is_a_chat_only_at_a_moment_else_the_fastest_channel(api: Api, setup: dict[str, Any]) -> None:
    offer = api.client.get("/v1/members/M1/chat-offer", headers=setup["m1"]).json()
    assert offer["chat"] is True
    assert [(m["kind"], m["ref"], m["team"]) for m in offer["moments"]] == [("card_lost", "R1", "cards")]
    other = api.client.get("/v1/members/M2/chat-offer", headers=setup["m2"]).json()
    assert other["chat"] is False and other["moments"] == []
    assert other["fastest_channel"] not in (None, "chat")
    assert api.client.get("/v1/members/M1/chat-offer", headers=setup["m2"]).status_code == 403


def test_a_chat_opens_at_a_current_moment_once(api: Api, setup: dict[str, Any]) -> None:
    first = open_chat(api, setup["m1"])
    assert first.status_code == 201, first.text
    assert first.json()["status"] == "waiting" and first.json()["team"] == "cards"
    assert first.json()["reason"] == "card.lost_stolen"
    replay = open_chat(api, setup["m1"])
    assert replay.status_code == 201 and replay.headers.get("Idempotent-Replayed") == "true"
    again = open_chat(api, setup["m1"], "C2")
    assert again.status_code == 200 and again.json()["id"] == "C1"  # the chat still open
    refused = api.client.post(
        "/v1/chats", json={"id": "C3", "moment_kind": "card_lost", "moment_ref": "R1"}, headers=setup["m2"]
    )
    assert refused.status_code == 422 and refused.headers["content-type"] == PROBLEM
    assert refused.json()["type"].endswith("chat-moment-not-current")


def test_members_see_only_their_own_chats_and_agents_their_teams(api: Api, setup: dict[str, Any]) -> None:
    assert open_chat(api, setup["m1"]).status_code == 201
    assert [c["id"] for c in api.client.get("/v1/chats", headers=setup["m1"]).json()] == ["C1"]
    assert api.client.get("/v1/chats", headers=setup["m2"]).json() == []
    assert api.client.get("/v1/chats/C1", headers=setup["m2"]).status_code == 404
    assert api.client.get("/v1/chats/C1/messages", headers=setup["m2"]).status_code == 404
    sent = api.client.post(
        "/v1/chats/C1/messages", json={"client_id": "x", "text": "hi"}, headers=setup["m2"]
    )
    assert sent.status_code == 404
    assert [c["id"] for c in api.client.get("/v1/chats", headers=setup["bob"]).json()] == ["C1"]
    assert api.client.get("/v1/chats", headers=setup["carol"]).json() == []
    assert api.client.get("/v1/chats/C1", headers=setup["carol"]).status_code == 403
    assert api.client.post("/v1/chats/C1/take", headers=setup["carol"]).status_code == 403
    assert api.client.post("/v1/chats/C1/take", headers=setup["m1"]).status_code == 403  # role


def test_messages_are_numbered_once_and_resumed_after_the_last_seen(api: Api, setup: dict[str, Any]) -> None:
    assert open_chat(api, setup["m1"]).status_code == 201
    post = api.client.post
    first = post(
        "/v1/chats/C1/messages", json={"client_id": "m-1", "text": " Ma carte ? "}, headers=setup["m1"]
    )
    assert first.status_code == 201 and first.json()["seq"] == 1 and first.json()["text"] == "Ma carte ?"
    resent = post(
        "/v1/chats/C1/messages", json={"client_id": "m-1", "text": " Ma carte ? "}, headers=setup["m1"]
    )
    assert resent.json()["seq"] == 1 and resent.headers.get("Idempotent-Replayed") == "true"
    early = post(
        "/v1/chats/C1/messages", json={"client_id": "a-1", "text": "Bonjour"}, headers=setup["agent"]
    )
    assert early.status_code == 409 and early.json()["type"].endswith("chat-not-taken")
    assert post("/v1/chats/C1/take", headers=setup["agent"]).json()["agent"] == "test-agent"
    answer = post(
        "/v1/chats/C1/messages", json={"client_id": "a-1", "text": "Bonjour"}, headers=setup["agent"]
    )
    assert answer.json()["seq"] == 2 and answer.json()["author_role"] == "agent"
    blank = post("/v1/chats/C1/messages", json={"client_id": "m-2", "text": "   "}, headers=setup["m1"])
    assert blank.status_code == 422 and blank.json()["field"] == "text"
    other = post("/v1/chats/C1/messages", json={"client_id": "b-1", "text": "Moi"}, headers=setup["bob"])
    assert other.status_code == 409 and other.json()["type"].endswith("chat-already-taken")
    all_ = api.client.get("/v1/chats/C1/messages", headers=setup["m1"]).json()
    assert [m["seq"] for m in all_] == [1, 2]
    later = api.client.get("/v1/chats/C1/messages?after=1", headers=setup["m1"]).json()
    assert [m["text"] for m in later] == ["Bonjour"]


def test_of_agents_taking_at_once_exactly_one_wins(
    api: Api, setup: dict[str, Any], engine: Engine, clock: FrozenClock
) -> None:
    assert open_chat(api, setup["m1"]).status_code == 201
    names = [f"agent{i}" for i in range(6)]
    for name in names:
        assert api.put(f"/v1/chat-agents/{name}", {"teams": ["cards"]}, role="supervisor").status_code == 200

    def take(index: int) -> dict[str, Any]:
        with read_session(engine) as session:
            actor = chat.actor_for_agent(session, name=names[index], supervisor=False)
        return run_in_transaction(
            engine, lambda s: chat.take(s, conversation_id="C1", actor=actor, now=clock.now())
        )

    results = race(len(names), take)
    winners = [r for r in results if isinstance(r, dict)]
    losers = [r for r in results if isinstance(r, ChatAlreadyTaken)]
    assert len(winners) == 1 and len(losers) == len(names) - 1, results
    assert not [r for r in results if isinstance(r, PrevenanceError) and not isinstance(r, ChatAlreadyTaken)]
    assert api.client.get("/v1/chats/C1", headers=setup["m1"]).json()["agent"] == winners[0]["agent"]


def test_closing_records_a_chat_contact_and_the_times_by_hour(
    api: Api, setup: dict[str, Any], engine: Engine, clock: FrozenClock
) -> None:
    assert open_chat(api, setup["m1"]).status_code == 201
    clock.advance(timedelta(seconds=90))
    assert api.client.post("/v1/chats/C1/take", headers=setup["agent"]).status_code == 200
    clock.advance(timedelta(seconds=300))
    close = {"outcome": "resolved", "notes": "carte bloquée, nouvelle en route"}
    early = api.client.post("/v1/chats/C1/close", json=close, headers=setup["bob"])
    assert early.status_code == 409  # not bob's chat
    closed = api.client.post("/v1/chats/C1/close", json=close, headers=setup["agent"])
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed" and closed.json()["contact_id"] == "C1"
    contact = api.get("/v1/contacts/C1").json()
    assert (contact["channel"], contact["direction"], contact["reason"]) == (
        "chat",
        "inbound",
        "card.lost_stolen",
    )
    assert (contact["agent"], contact["team"], contact["outcome"]) == ("test-agent", "cards", "resolved")
    assert (
        api.client.post("/v1/chats/C1/close", json=close, headers=setup["agent"]).status_code == 200
    )  # replay
    assert (
        api.client.post("/v1/chats/C1/close", json={"outcome": "pending"}, headers=setup["agent"]).status_code
        == 409
    )
    late = api.client.post("/v1/chats/C1/messages", json={"client_id": "z", "text": "?"}, headers=setup["m1"])
    assert late.status_code == 409 and late.json()["type"].endswith("chat-closed")
    with read_session(engine) as session:
        events = session.scalars(select(OutboxEvent).where(OutboxEvent.type == "contact.closed")).all()
    assert [e.payload["id"] for e in events] == ["C1"]
    run_once(engine, clock)  # the outbox's delivery: the survey follows as for any contact
    with read_session(engine) as session:
        invitation = session.scalars(select(Invitation).where(Invitation.contact_id == "C1")).one()
    assert (invitation.channel, invitation.team, invitation.agent) == ("chat", "cards", "test-agent")
    times = api.get("/v1/reports/chat-times?month=2026-01", role="supervisor").json()
    assert times["hours"] == [
        {
            "hour": 0,
            "chats": 1,
            "wait_median_s": 90.0,
            "wait_p90_s": 90.0,
            "handled": 1,
            "handle_median_s": 300.0,
            "handle_p90_s": 300.0,
        }
    ]
    assert api.get("/v1/reports/chat-times", role="agent").status_code == 403


def test_a_closed_chat_is_replayed_only_to_who_may_see_it(api: Api, setup: dict[str, Any]) -> None:
    """The stored answer of a close (the chat and its contact) was replayed before the access check:
    an agent of another team sending the same body (the default notes and a guessable outcome) read
    a chat that answers them 403 everywhere else."""
    assert open_chat(api, setup["m1"]).status_code == 201
    assert api.client.post("/v1/chats/C1/take", headers=setup["agent"]).status_code == 200
    close = {"outcome": "resolved"}
    assert api.client.post("/v1/chats/C1/close", json=close, headers=setup["agent"]).status_code == 200
    assert api.client.get("/v1/chats/C1", headers=setup["carol"]).status_code == 403
    other_team = api.client.post("/v1/chats/C1/close", json=close, headers=setup["carol"])
    assert other_team.status_code == 403 and other_team.headers["content-type"] == PROBLEM
    again = api.client.post("/v1/chats/C1/close", json=close, headers=setup["agent"])
    assert again.status_code == 200 and again.headers.get("Idempotent-Replayed") == "true"


def test_sockets_deliver_live_and_a_resumed_socket_shows_no_message_twice(
    api: Api, setup: dict[str, Any]
) -> None:
    assert open_chat(api, setup["m1"]).status_code == 201
    client = api.client
    with client.websocket_connect("/v1/chat-queue/ws", headers=setup["agent"]) as queue:
        snapshot = queue.receive_json()
        assert [c["id"] for c in snapshot["items"]] == ["C1"]
        with client.websocket_connect("/v1/chats/C1/ws", headers=setup["m1"]) as member:
            assert member.receive_json()["type"] == "conversation"
            member.send_json({"type": "message", "client_id": "m-1", "text": "Au secours"})
            assert member.receive_json()["seq"] == 1
            assert client.post("/v1/chats/C1/take", headers=setup["agent"]).status_code == 200
            assert member.receive_json()["conversation"]["status"] == "active"
            assert queue.receive_json()["items"][0]["agent"] == "test-agent"
            with client.websocket_connect("/v1/chats/C1/ws?after=0", headers=setup["agent"]) as agent:
                assert agent.receive_json()["type"] == "conversation"
                assert agent.receive_json()["text"] == "Au secours"
                agent.send_json({"type": "typing"})
                assert member.receive_json() == {"type": "typing", "role": "agent"}
                agent.send_json({"type": "message", "client_id": "a-1", "text": "Je suis là"})
                received = member.receive_json()
                assert (received["seq"], received["text"], received["author_role"]) == (
                    2,
                    "Je suis là",
                    "agent",
                )
                assert agent.receive_json()["seq"] == 2  # the sender hears it too, numbered
                agent.send_json({"type": "message", "client_id": "a-1", "text": "Je suis là"})  # resent
                member.send_json({"type": "message", "client_id": "m-2", "text": "Merci"})
                assert member.receive_json()["seq"] == 3  # the resend made no message 3
                assert agent.receive_json()["seq"] == 3
        with client.websocket_connect("/v1/chats/C1/ws?after=2", headers=setup["m1"]) as resumed:
            assert resumed.receive_json()["type"] == "conversation"
            assert resumed.receive_json()["text"] == "Merci"
            resumed.send_json({"type": "message", "client_id": "m-3", "text": "Encore là ?"})
            assert resumed.receive_json()["seq"] == 4
    assert [m["seq"] for m in client.get("/v1/chats/C1/messages", headers=setup["m1"]).json()] == [1, 2, 3, 4]


def test_sockets_refuse_strangers(api: Api, setup: dict[str, Any]) -> None:
    from starlette.websockets import WebSocketDisconnect

    assert open_chat(api, setup["m1"]).status_code == 201
    for headers in (setup["m2"], setup["carol"], {}, {"Authorization": "Bearer nope"}):
        with (
            pytest.raises(WebSocketDisconnect),
            api.client.websocket_connect("/v1/chats/C1/ws", headers=headers) as ws,
        ):
            ws.receive_json()
    with (
        pytest.raises(WebSocketDisconnect),
        api.client.websocket_connect("/v1/chat-queue/ws", headers=setup["m1"]) as ws,
    ):
        ws.receive_json()


def test_a_socket_refuses_a_nul_and_outlives_an_after_beyond_any_seq(api: Api, setup: dict[str, Any]) -> None:
    """A socket's messages and its ``after`` pass none of the REST routes' checks (the NUL guard,
    ``after`` up to 2**31 - 1): a NUL reached PostgreSQL, which refused the statement, and the socket
    died with an internal error (SQLite stored it); an ``after`` over the integers the databases hold
    killed the socket on both. Now the NUL is an error frame, like any refused message, and ``after``
    is read within the sequence numbers."""
    assert open_chat(api, setup["m1"]).status_code == 201
    client = api.client
    with client.websocket_connect("/v1/chats/C1/ws?after=" + "9" * 30, headers=setup["m1"]) as far:
        assert far.receive_json()["type"] == "conversation"
        assert client.post("/v1/chats/C1/take", headers=setup["agent"]).status_code == 200
        assert far.receive_json()["conversation"]["status"] == "active"  # still served
    with client.websocket_connect("/v1/chats/C1/ws", headers=setup["m1"]) as member:
        assert member.receive_json()["type"] == "conversation"
        member.send_json({"type": "message", "client_id": "m-1", "text": "a\x00b"})
        refused = member.receive_json()
        assert (refused["type"], refused["status"], refused["client_id"]) == ("error", 422, "m-1")
        member.send_json({"type": "message", "client_id": "m-2", "text": "Bonjour"})
        assert member.receive_json()["seq"] == 1  # the socket lives on, and nothing was stored
    assert [m["text"] for m in client.get("/v1/chats/C1/messages", headers=setup["m1"]).json()] == ["Bonjour"]


def test_a_restarted_server_resumes_every_socket_from_its_last_seq(
    api: Api, setup: dict[str, Any], engine: Engine, clock: FrozenClock
) -> None:
    """The record is the database: a new process (a new app over the same database) gives a resuming
    client exactly the messages after its last seq, and numbering goes on where it stopped."""
    assert open_chat(api, setup["m1"]).status_code == 201
    with api.client.websocket_connect("/v1/chats/C1/ws", headers=setup["m1"]) as member:
        member.receive_json()
        for n in (1, 2, 3):
            member.send_json({"type": "message", "client_id": f"m-{n}", "text": f"message {n}"})
            assert member.receive_json()["seq"] == n
    restarted = TestClient(create_app(engine=engine, clock=clock))
    with restarted, restarted.websocket_connect("/v1/chats/C1/ws?after=2", headers=setup["m1"]) as member:
        assert member.receive_json()["type"] == "conversation"
        assert member.receive_json()["text"] == "message 3"
        member.send_json({"type": "message", "client_id": "m-3", "text": "message 3"})  # unconfirmed, resent
        member.send_json({"type": "message", "client_id": "m-4", "text": "message 4"})
        assert member.receive_json()["seq"] == 4
    messages = api.client.get("/v1/chats/C1/messages", headers=setup["m1"]).json()
    assert [(m["seq"], m["text"]) for m in messages] == [(n, f"message {n}") for n in (1, 2, 3, 4)]


def test_the_cli_sets_teams_lists_the_queues_and_prints_the_times(
    api: Api, setup: dict[str, Any], engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from prevenance.cli import app as cli
    from prevenance.settings import get_settings

    assert open_chat(api, setup["m1"]).status_code == 201
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    runner = CliRunner()
    set_teams = runner.invoke(cli, ["desk", "chat", "agent", "dave", "--team", "travel", "--team", "cards"])
    assert set_teams.exit_code == 0 and set_teams.output.strip() == "dave: cards, travel"
    listed = runner.invoke(cli, ["desk", "chat", "list"])
    assert listed.exit_code == 0 and "C1" in listed.output and "card_lost" in listed.output
    timed = runner.invoke(cli, ["desk", "chat", "times", "--month", "2026-01", "--json"])
    assert timed.exit_code == 0, timed.output
    assert [h["chats"] for h in json.loads(timed.output)["hours"]] == [1]
    assert runner.invoke(cli, ["desk", "chat", "list", "--status", "nope"]).exit_code == 2
    get_settings.cache_clear()


def test_an_open_recovery_case_offers_a_chat_until_it_is_closed(api: Api, setup: dict[str, Any]) -> None:
    case = {"id": "RC-1", "member_ref": "M2", "team": "recovery", "note": "Card fee charged twice"}
    assert api.post("/v1/recovery-cases", case, role="agent").status_code == 201
    offer = api.client.get("/v1/members/M2/chat-offer", headers=setup["m2"]).json()
    assert offer["chat"] is True
    assert [(m["kind"], m["ref"], m["team"]) for m in offer["moments"]] == [
        ("recovery_case", "RC-1", "recovery")
    ]
    body = {"id": "C-RC", "moment_kind": "recovery_case", "moment_ref": "RC-1"}
    assert api.client.post("/v1/chats", json=body, headers=setup["m2"]).status_code == 201
    closed = api.client.patch(
        "/v1/recovery-cases/RC-1", json={"outcome": "resolved"}, headers=api.headers("agent")
    )
    assert closed.status_code == 200, closed.text
    after = api.client.get("/v1/members/M2/chat-offer", headers=setup["m2"]).json()
    assert after["moments"] == []
