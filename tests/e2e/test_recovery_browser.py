"""Service recovery in Debian's chromium, in French and English: the supervisor follows the navigation
to the recovery queue and finds the detractor's case; the agent opens the member's 360, sees the case
and the goodwill a late card earned, and closes the case with its outcome."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import Engine, select

from prevenance.common.clock import SystemClock
from prevenance.db import read_session, unit_of_work
from prevenance.desk import service as desk
from prevenance.desk.tables import RecoveryCase
from prevenance.loyalty.tables import GoodwillGrant
from prevenance.maintenance import run_once
from prevenance.voice import service as voice
from tests.e2e.conftest import Server, eventually, sign_in

MEMBER = "SC-0002"  # Jean Dupont, French, gold
UNTRANSLATED = re.compile(r"\b(?:recovery|goodwill|nav|done|err)\.[a-z_]+[a-z0-9_.]*\b")


def expect_translated(page: Any) -> None:
    found = sorted(set(UNTRANSLATED.findall(page.locator("body").inner_text())))
    assert not found, f"untranslated keys on {page.url}: {found}"


def plant(engine: Engine) -> str:
    """A detractor's answer for the member and an emergency card delivered after its promise."""
    now = datetime.now(UTC)
    row = {
        "id": "e2e-detractor",
        "member_ref": MEMBER,
        "answered_at": (now - timedelta(hours=1)).isoformat(),
        "agent": "agent",
        "team": "paris-1",
        "channel": "phone",
        "reason": "card.lost_stolen",
        "recommend": "2",
    }
    with unit_of_work(engine) as session:
        voice.import_answers(session, rows=[row], now=now)
    order = desk.CardReplacementInput(
        id="e2e-late-card", member_ref=MEMBER, city="Paris", country="FR", address="3 rue du Bac"
    )
    with unit_of_work(engine) as session:
        desk.order_card_replacement(session, order=order, now=now - timedelta(hours=6))
    for action, hours in (("dispatch", 5), ("deliver", 2)):  # promised in two hours, there in four
        with unit_of_work(engine) as session:
            desk.advance_card_replacement(
                session, replacement_id="e2e-late-card", action=action, now=now - timedelta(hours=hours)
            )

    def reacted() -> bool:
        run_once(engine, SystemClock())  # as the server's maintenance pass does
        with read_session(engine) as session:
            case = session.scalar(
                select(RecoveryCase.id).where(RecoveryCase.answer_id == "csv:e2e-detractor")
            )
            grant = session.scalar(select(GoodwillGrant.id).where(GoodwillGrant.reference == "e2e-late-card"))
        return case is not None and grant is not None

    eventually(reacted, what="the recovery case and the late card's goodwill")
    with read_session(engine) as session:
        case_id = session.scalar(select(RecoveryCase.id).where(RecoveryCase.answer_id == "csv:e2e-detractor"))
    assert case_id is not None
    return case_id


def test_the_recovery_queue_and_the_goodwill_on_the_360_in_french_and_english(
    page: Any, server: Server, engine: Engine
) -> None:
    case_id = plant(engine)
    sign_in(page, server, "supervisor")
    page.get_by_role("link", name="Reconquête").first.click()
    expect(page.get_by_role("heading", name="Reconquête client", exact=True)).to_be_visible()
    page.get_by_role("link", name="Dans les délais").click()
    row = page.locator(f"#rc-{case_id}")
    expect(row.get_by_role("link", name=MEMBER)).to_be_visible()
    expect(row).to_contain_text("Détracteur (recommandation 2/10)")
    expect(page.get_by_test_id("recovery-counts")).to_contain_text("dossier(s) ouvert(s)")
    expect_translated(page)
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name="Service recovery", exact=True)).to_be_visible()
    expect(page.locator(f"#rc-{case_id}")).to_contain_text("Detractor (recommend 2/10)")
    expect(page.get_by_role("heading", name=re.compile("^Goodwill, "))).to_be_visible()
    expect_translated(page)
    page.goto("/console/dashboard")
    expect(page.get_by_test_id("dashboard-recovery")).to_contain_text("open case(s)")

    agent = page.context.browser.new_context(base_url=server.url, locale="fr-FR")
    tab = agent.new_page()
    try:
        sign_in(tab, server, "agent")
        tab.goto(f"/console/members/{MEMBER}")
        section = tab.get_by_role("region", name="Reconquête et gestes commerciaux")
        expect(section).to_be_visible()
        expect(section.get_by_test_id("goodwill")).to_contain_text("Carte livrée en retard")
        expect(section.get_by_test_id("goodwill")).to_contain_text("2500 points")
        case = tab.locator(f"#rc-{case_id}")
        case.get_by_label("Issue").select_option(label="Rappelé")
        case.get_by_label("Note").fill("Rappelé, excuses présentées")
        case.get_by_role("button", name="Clôturer la reconquête").click()
        expect(tab.get_by_role("status")).to_have_text("Reconquête clôturée.")
        expect(tab.locator(f"#rc-{case_id}")).to_contain_text("Rappelé")
        expect_translated(tab)
        tab.get_by_role("link", name="English").click()
        section = tab.get_by_role("region", name="Recovery and goodwill")
        expect(section.get_by_test_id("goodwill")).to_contain_text("Card delivered late")
        expect(tab.locator(f"#rc-{case_id}")).to_contain_text("Called back")
        expect_translated(tab)
    finally:
        agent.close()
    with read_session(engine) as session:
        closed = session.scalar(select(RecoveryCase).where(RecoveryCase.answer_id == "csv:e2e-detractor"))
        assert closed is not None and (closed.outcome, closed.closed_by) == ("called_back", "agent")
