"""The console and the portal in Debian's chromium: what a person does, step by step."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from playwright.sync_api import expect
from sqlalchemy import Engine

from prevenance.customers import service as customers
from prevenance.db import read_session
from prevenance.voice import invitations
from prevenance.voice import service as voice
from prevenance.voice.errors import SurveyLinkError
from prevenance.voice.rules import quarter_of
from tests.e2e.conftest import Server, collect_errors, eventually, sign_in

CHART_WAIT = 60_000  # ms: vega compiles each spec in the page; a busy shared machine is slow
UNTRANSLATED = re.compile(
    r"\b(?:app|nav|role|login|desk|member|dash|voice|exec|mkt|err|error|suggestion|offer|incidents?)\.[a-z_]+[a-z0-9_.]*\b"
)


def last_month() -> str:
    return (datetime.now(UTC).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")


def expect_charts_drawn(page: Any, names: tuple[str, ...]) -> None:
    """Each chart container got its SVG from vega-embed (charts.js marks it ``data-drawn``)."""
    for name in names:
        chart = page.locator(f"#chart-{name}")
        expect(chart).to_have_attribute("data-drawn", "true", timeout=CHART_WAIT)
        expect(chart.locator("svg").first).to_be_visible()
        expect(chart).not_to_have_attribute("data-error", re.compile(".*"))


def expect_translated(page: Any) -> None:
    """No message key (``mkt.save_offer``) shows where a word should be."""
    found = sorted(set(UNTRANSLATED.findall(page.locator("body").inner_text())))
    assert not found, f"untranslated keys on {page.url}: {found}"


def test_an_agent_signs_in_finds_a_customer_and_opens_the_360(page: Any, server: Server) -> None:
    sign_in(page, server, "agent")
    expect(page).to_have_url(re.compile(r"/console/desk$"))
    page.get_by_label("Nom, e-mail, référence ou téléphone").press_sequentially("cami", delay=30)
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


def test_the_supervisor_dashboard_renders_its_charts(
    page: Any, server: Server, console_errors: list[str]
) -> None:
    sign_in(page, server, "supervisor")
    page.goto(f"/console/dashboard?month={server.world.month}")
    expect_charts_drawn(page, ("fcr", "reasons", "cards"))
    expect(page.locator("#chart-fcr svg .mark-rect path").first).to_be_attached()
    assert console_errors == []


def test_the_voice_screen_renders_its_charts(page: Any, server: Server, console_errors: list[str]) -> None:
    sign_in(page, server, "supervisor")
    page.get_by_role("link", name="Voix du client").click()
    expect(page.get_by_role("heading", level=1, name="Voix du client")).to_be_visible()
    page.goto(f"/console/voice?month={last_month()}")
    expect_charts_drawn(page, ("rtf", "excellence", "trend-rtf", "trend-excellence"))
    expect(page.locator("#chart-rtf svg .mark-symbol path").first).to_be_attached()
    expect(page.get_by_test_id("scores").locator("tbody tr")).to_have_count(6)  # agent-0 … agent-5
    expect(page.get_by_text("Version 1 publiée par Claire Supervisor")).to_be_visible()
    expect_translated(page)
    assert console_errors == []


def test_the_executive_screen_renders_its_charts(
    page: Any, server: Server, console_errors: list[str]
) -> None:
    sign_in(page, server, "supervisor")
    page.goto(f"/console/executive?quarter={quarter_of(last_month())}")  # a quarter with a full month
    expect_charts_drawn(page, ("countries-rtf", "countries-excellence", "trend-rtf", "trend-excellence"))
    rows = page.get_by_test_id("countries").locator("tbody tr")
    expect(rows).to_have_count(3)  # FR, GB, IT
    expect(rows.first).to_contain_text("FR")
    expect(page.get_by_test_id("report-link")).to_have_attribute("href", re.compile(r"quarter=\d{4}Q[1-4]"))
    expect_translated(page)
    assert console_errors == []


def test_the_marketing_screen_opens_cleanly(page: Any, server: Server, console_errors: list[str]) -> None:
    sign_in(page, server, "admin")
    page.goto("/console/marketing")
    expect(page.get_by_role("heading", level=1)).to_have_text("Marketing")
    expect(page.locator("[data-spec]")).to_have_count(0)  # no chart on this screen (yet)
    expect_translated(page)
    assert console_errors == []


def test_a_member_answers_a_survey_from_the_signed_link(
    page: Any, server: Server, engine: Engine, console_errors: list[str]
) -> None:
    # An agent logs a phone call: the contact closes, and the server's maintenance pass turns its
    # contact.closed event into a survey invitation (voice.invitations.on_contact_closed).
    sign_in(page, server, "agent")
    page.goto(f"/console/members/{server.world.member_ref}")
    form = page.locator("form[action$='/contacts']")
    contact_id = form.locator("input[name=key]").input_value()
    form.get_by_label("Motif").select_option("card.lost_stolen")
    form.get_by_label("Notes").fill("Carte perdue, opposition faite")
    form.get_by_role("button", name="Enregistrer").click()
    expect(page.get_by_role("status")).to_have_text("Contact enregistré.")
    invitation_id = invitations.invitation_id_for(contact_id)

    def pending() -> bool:
        with read_session(engine) as session:
            try:
                return voice.get_open_invitation(session, invitation_id=invitation_id)["id"] == invitation_id
            except SurveyLinkError:
                return False

    eventually(pending, what=f"the survey invitation of contact {contact_id}")
    link = server.survey_link(invitation_id, now=datetime.now(UTC))

    # The member opens the link from the mail, on a phone, and answers.
    page.context.clear_cookies()
    page.set_viewport_size({"width": 390, "height": 844})
    response = page.goto(link)
    assert response is not None and response.status == 200
    expect(page.get_by_role("heading", level=1)).to_have_text("Comment s'est passé votre échange avec nous ?")
    page.get_by_role("radio", name="0", exact=True).focus()
    for _ in range(9):  # the arrow keys walk the 0–10 scale
        page.keyboard.press("ArrowRight")
    expect(page.get_by_role("radio", name="9", exact=True)).to_be_checked()
    expect(page.get_by_role("radio", checked=True)).to_have_count(1)
    page.get_by_text("Très bien").click()
    expect(page.get_by_role("radio", name="Très bien")).to_be_checked()
    page.get_by_label("Un commentaire ? (facultatif)").press_sequentially(
        "Opposition rapide, merci", delay=10
    )
    page.get_by_role("button", name="Envoyer mon avis").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Merci !")
    expect(page.get_by_role("status")).to_contain_text("Votre avis est bien enregistré.")

    def answers() -> list[dict[str, Any]]:
        with read_session(engine) as session:
            member = customers.get_member(session, ref=server.world.member_ref)
            found = voice.list_member_surveys(session, member_id=member.id, limit=10_000)
        return [answer for answer in found if answer["contact_id"] == contact_id]

    stored = answers()
    assert [(a["recommend"], a["interaction"], a["comment"], a["source"], a["agent"]) for a in stored] == [
        (9, 4, "Opposition rapide, merci", "survey", "agent")
    ]

    assert console_errors == []

    # The link works once: opened again it says so (409), and a second post stores nothing.
    again = page.goto(link)
    assert again is not None and again.status == 409
    expect(page.get_by_role("heading", level=1)).to_contain_text("Déjà répondu")
    replay = page.request.post(link, form={"recommend": "2", "lang": "fr"})
    assert replay.status == 409
    assert len(answers()) == 1
    assert [error for error in console_errors if "status of 409" not in error] == []


def test_a_forged_survey_link_is_refused(page: Any, server: Server) -> None:
    response = page.goto("/survey/not-a-signed-token")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_contain_text("Lien non valable")


def test_signing_in_and_searching_with_the_keyboard_only(
    page: Any, server: Server, console_errors: list[str]
) -> None:
    page.goto("/console/login")
    username = page.get_by_label("Identifiant")
    expect(username).to_be_focused()  # autofocus: no mouse needed to start
    page.keyboard.type("agent")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Mot de passe")).to_be_focused()
    page.keyboard.type(server.world.password)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/console/desk$"))
    search = page.get_by_label("Nom, e-mail, référence ou téléphone")
    expect(search).to_be_focused()
    page.keyboard.type("jean", delay=30)
    result = page.locator("#results").get_by_role("link", name="Jean Dupont")
    expect(result).to_be_visible()
    page.keyboard.press("Tab")
    expect(result).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Jean Dupont")
    # The skip link is the first stop and leads past the navigation.
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Aller au contenu")
    expect(skip).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()
    assert console_errors == []


def test_chart_pages_break_no_csp_rule(page: Any, server: Server) -> None:
    """Nothing on the chart pages is refused by the console's CSP (vega-embed and vega-tooltip draw
    no inline <style>: charts.js turns their default styles off, console.css carries them)."""
    errors = collect_errors(page)
    sign_in(page, server, "supervisor")
    page.goto(f"/console/dashboard?month={server.world.month}")
    expect_charts_drawn(page, ("fcr", "reasons", "cards"))
    page.locator("#chart-reasons svg .mark-rect path").first.hover()
    expect(page.locator("#vg-tooltip-element")).to_be_visible()
    page.goto(f"/console/voice?month={last_month()}")
    expect_charts_drawn(page, ("rtf", "trend-rtf"))
    page.goto(f"/console/executive?quarter={quarter_of(last_month())}")
    expect_charts_drawn(page, ("countries-rtf", "trend-rtf"))
    assert errors == []


def test_the_survey_page_is_styled_under_its_csp(page: Any, server: Server) -> None:
    errors = collect_errors(page)
    link = server.survey_link(invitations.invitation_id_for("SC-C2"), now=datetime.now(UTC))
    response = page.goto(f"{link}?lang=fr")
    assert response is not None and response.status == 200
    assert "'unsafe-inline'" not in response.headers["content-security-policy"]
    assert page.locator("style, [style], script").count() == 0  # no inline style or script at all
    button = page.get_by_role("button", name="Envoyer mon avis")
    expect(button).to_be_visible()
    # survey.css applied: the accent-coloured, full-width button and the grey page, not the defaults.
    expect(button).to_have_css("background-color", "rgb(11, 93, 75)")
    expect(button).to_have_css("color", "rgb(255, 255, 255)")
    expect(page.locator("body")).to_have_css("background-color", "rgb(246, 247, 249)")
    expect(page.locator("main")).to_have_css("max-width", "640px")
    stylesheet = page.request.get("/survey/static/survey.css")
    assert stylesheet.status == 200
    assert stylesheet.headers["content-type"].startswith("text/css")
    assert "max-age" in stylesheet.headers["cache-control"]
    assert errors == []


def test_a_role_is_refused_a_page_it_may_not_see(page: Any, server: Server) -> None:
    sign_in(page, server, "concierge")
    expect(page).to_have_url(re.compile(r"/console/concierge$"))
    expect(page.get_by_text("Table pour deux, samedi soir")).to_be_visible()
    response = page.goto("/console/desk")
    assert response is not None and response.status == 403
    expect(page.get_by_role("heading", name="Accès refusé")).to_be_visible()


def test_a_chart_tooltip_goes_away_with_the_pointer(page: Any, server: Server) -> None:
    sign_in(page, server, "supervisor")
    page.goto(f"/console/dashboard?month={server.world.month}")
    expect_charts_drawn(page, ("reasons",))
    page.locator("#chart-reasons svg .mark-rect path").first.hover()
    tooltip = page.locator("#vg-tooltip-element")
    expect(tooltip).to_be_visible()
    expect(tooltip).to_have_class(re.compile(r"\bvg-tooltip\b.*\bvisible\b|\bvisible\b.*\bvg-tooltip\b"))
    # console.css takes it out of the flow (vega-tooltip's ``position: fixed``) and it opens beside the
    # pointer, inside the window, not after the page's last element.
    expect(tooltip).to_have_css("position", "fixed")
    expect(tooltip).to_have_css("z-index", "1000")
    expect(tooltip).to_contain_text("Motif")  # translated field titles, not ``reason``
    box = tooltip.bounding_box()
    viewport = page.viewport_size
    assert box is not None and viewport is not None
    assert 0 <= box["y"] < viewport["height"] and 0 <= box["x"] < viewport["width"], box
    page.mouse.move(1, 1)
    expect(tooltip).to_be_hidden(timeout=5_000)
