"""The member chat in two browsers at once (Debian chromium, two contexts): the member opens a chat
at a moment (their lost card), the agent takes it from the live queue, messages and typing flow both
ways live, a reload shows the whole history once, and closing records a contact on channel chat."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import Engine

from prevenance.db import read_session, run_in_transaction
from prevenance.desk import service as desk
from prevenance.desk.chat import service as chat
from tests.e2e.conftest import Server, collect_errors, eventually, sign_in


@pytest.fixture
def two(browser: Any, server: Server) -> Iterator[tuple[Any, Any]]:
    """A member's tab and an agent's tab, each in its own context (its own cookies), open together."""
    contexts = [browser.new_context(base_url=server.url, locale="fr-FR") for _ in range(2)]
    for context in contexts:
        context.set_default_timeout(30_000)
    yield contexts[0].new_page(), contexts[1].new_page()
    for context in contexts:
        context.close()


def member_chat(engine: Engine, ref: str) -> dict[str, Any] | None:
    actor = chat.ChatActor("member", ref, member_ref=ref)
    with read_session(engine) as session:
        found = [c for c in chat.list_conversations(session, actor=actor) if c["status"] != "closed"]
    return found[0] if found else None


def test_a_member_and_an_agent_chat_live_and_a_reload_loses_nothing(
    two: tuple[Any, Any], server: Server, engine: Engine
) -> None:
    member, agent = two
    ref = server.world.member_ref  # camille, whose card SC-R1 was reported lost and is on its way
    teams = ["cards", "incidents", "travel", "rewards"]
    run_in_transaction(engine, lambda s: chat.put_agent(s, name="agent", teams=teams, now=datetime.now(UTC)))
    errors = collect_errors(member) + collect_errors(agent)

    sign_in(agent, server, "agent")
    agent.goto("/console/chat")
    expect(agent.get_by_role("heading", name="Chat en direct")).to_be_visible()

    sign_in(member, server, "camille", path="/portal/login")
    member.get_by_test_id("chat-link").click()
    start = member.get_by_test_id("chat-start-card_lost").first
    start.focus()  # keyboard only: a focusable button, Enter presses it
    start.press("Enter")
    widget = member.get_by_test_id("chat-widget")
    expect(widget).to_be_visible()
    conversation = eventually(lambda: member_chat(engine, ref), what="the chat is stored")
    assert conversation["moment_kind"] == "card_lost" and conversation["team"] == "cards"
    expect(widget.get_by_role("status")).to_have_text("En attente d'un conseiller")

    box = member.get_by_test_id("chat-input")
    box.fill("Bonjour, où en est ma nouvelle carte ?")
    box.press("Enter")  # the keyboard sends
    member_log = member.get_by_test_id("chat-log")
    expect(member_log.locator("li")).to_have_count(1)

    row = agent.locator(f"[data-testid=chat-queue] li[data-id='{conversation['id']}']")
    expect(row).to_contain_text(ref)
    expect(row).to_contain_text("Carte perdue ou volée")
    take = row.get_by_test_id("chat-take")
    take.focus()
    take.press("Enter")
    agent_log = agent.get_by_test_id("chat-log")
    expect(agent_log.locator("li")).to_have_count(1)
    expect(agent_log).to_contain_text("où en est ma nouvelle carte")
    expect(agent.get_by_test_id("chat-side")).to_contain_text(ref)
    expect(widget.get_by_role("status")).to_have_text("Un conseiller vous répond")

    reply = agent.get_by_test_id("chat-input")
    reply.press_sequentially("Elle part")
    expect(member.locator("[data-role=typing]")).to_have_text("Le conseiller écrit…")
    reply.press_sequentially(" ce soir de Paris.")
    reply.press("Enter")
    expect(member_log.locator("li")).to_have_count(2)
    expect(member_log.locator("li").nth(1)).to_contain_text("Elle part ce soir de Paris.")

    box.fill("Merci beaucoup")
    member.get_by_test_id("chat-send").click()
    expect(agent_log.locator("li")).to_have_count(3)

    member.reload()
    reloaded = member.get_by_test_id("chat-log").locator("li")
    expect(reloaded).to_have_count(3)
    assert [reloaded.nth(i).get_attribute("data-seq") for i in range(3)] == ["1", "2", "3"]

    agent.get_by_label("Issue").select_option("resolved")
    agent.get_by_test_id("chat-close").click()
    expect(widget.get_by_role("status")).to_have_text("Chat terminé")
    with read_session(engine) as session:
        contact = desk.get_contact(session, contact_id=conversation["id"])
    assert (contact["channel"], contact["outcome"], contact["agent"]) == ("chat", "resolved", "agent")
    assert errors == []
