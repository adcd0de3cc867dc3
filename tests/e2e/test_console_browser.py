"""The console and the portal in Debian's chromium: what a person does, step by step."""

from __future__ import annotations

import re
from typing import Any

from playwright.sync_api import expect

from tests.e2e.conftest import Server, sign_in


def test_an_agent_signs_in_finds_a_customer_and_opens_the_360(page: Any, server: Server) -> None:
    sign_in(page, server, "agent")
    expect(page).to_have_url(re.compile(r"/console/desk$"))
    page.get_by_label("Nom, e-mail ou référence").press_sequentially("cami", delay=30)
    results = page.locator("#results")
    expect(results.get_by_role("link", name="Camille Martin")).to_be_visible()
    expect(results.get_by_role("link", name="Camille Bernard")).to_be_visible()
    expect(results.get_by_text("Jean Dupont")).to_have_count(0)
    results.get_by_role("link", name="Camille Martin").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Camille Martin")
    points = f"{server.world.member_points:,}".replace(",", " ")
    expect(page.get_by_test_id("points")).to_have_text(points)
    expect(page.get_by_test_id("promise")).to_contain_text("Paris")
    expect(page.get_by_test_id("promise")).to_contain_text(re.compile(r"reste 1 h \d\d min"))
    expect(page.get_by_text("Votre relevé du mois")).to_be_visible()


def test_an_agent_logs_a_contact_and_sees_it_on_the_360(page: Any, server: Server) -> None:
    sign_in(page, server, "agent")
    page.goto(f"/console/members/{server.world.member_ref}")
    form = page.locator("form[action$='/contacts']")
    form.get_by_label("Motif").select_option("card.declined")
    form.get_by_label("Notes").fill("Paiement refusé à l'étranger ; plafond relevé")
    form.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("status")).to_have_text("Contact enregistré.")
    expect(page.get_by_text("Paiement refusé à l'étranger ; plafond relevé")).to_be_visible()


def test_a_form_error_shows_next_to_its_field(page: Any, server: Server) -> None:
    sign_in(page, server, "agent")
    page.goto(f"/console/members/{server.world.member_ref}")
    form = page.locator("form[action$='/card-replacements']")
    form.get_by_label("Pays (ISO, 2 lettres)").fill("FR")
    form.get_by_role("button", name="Commander la carte").click()
    city = page.locator("form[action$='/card-replacements']").get_by_label("Ville")
    expect(city).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#err-city")).to_have_text("Ce champ est obligatoire.")


def test_a_member_redeems_in_the_portal_and_sees_the_balance_change(page: Any, server: Server) -> None:
    page.set_viewport_size({"width": 390, "height": 844})  # a phone
    sign_in(page, server, "camille", path="/portal/login")
    expect(page).to_have_url(re.compile(r"/portal/$"))
    balance = page.get_by_test_id("balance")
    before = int(balance.inner_text().replace(" ", "").replace("\u202f", ""))
    page.get_by_label(re.compile("Coffret couteaux")).check()
    page.get_by_role("button", name="Commander avec mes points").click()
    expect(page.get_by_role("status")).to_have_text("Cadeau commandé, points débités.")
    after = before - server.world.catalogue_points
    expect(balance).to_have_text(f"{after:,}".replace(",", " "))
    expect(page.get_by_text("Cadeau du catalogue").first).to_be_visible()


def test_switching_language_changes_the_words_and_stays(page: Any, server: Server) -> None:
    sign_in(page, server, "agent")
    expect(page.get_by_role("heading", name="Rechercher un client")).to_be_visible()
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", name="Find a customer")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    page.reload()
    expect(page.get_by_role("heading", name="Find a customer")).to_be_visible()
    page.get_by_role("link", name="Français").click()
    expect(page.get_by_role("heading", name="Rechercher un client")).to_be_visible()


def test_the_supervisor_dashboard_renders_its_charts(page: Any, server: Server) -> None:
    sign_in(page, server, "supervisor")
    page.goto(f"/console/dashboard?month={server.world.month}")
    for name in ("fcr", "reasons", "cards"):
        expect(page.locator(f"#chart-{name} svg").first).to_be_visible()
    expect(page.locator("#chart-fcr svg .mark-rect path").first).to_be_attached()


def test_a_role_is_refused_a_page_it_may_not_see(page: Any, server: Server) -> None:
    sign_in(page, server, "concierge")
    expect(page).to_have_url(re.compile(r"/console/concierge$"))
    expect(page.get_by_text("Table pour deux, samedi soir")).to_be_visible()
    response = page.goto("/console/desk")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Accès refusé")).to_be_visible()
