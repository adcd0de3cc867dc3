"""The console and the portal through HTTP (TestClient), on SQLite and PostgreSQL: sign-in, CSRF,
roles, language, the agent's forms, the portal's redemptions and their errors."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.console import i18n
from prevenance.console.web import SESSION_COOKIE
from prevenance.db import read_session
from prevenance.desk.tables import CardReplacement, Contact, ContactPreference
from prevenance.loyalty.tables import Redemption
from tests.conftest import Api, member_body, tx_body
from tests.integration.console.support import (
    PASSWORD,
    browser,
    csrf_of,
    error_near,
    key_of,
    make_user,
    sign_in,
)


def points_of(api: Api, ref: str) -> int:
    return int(api.get(f"/v1/members/{ref}/balance").json()["points"])


# --- sign-in, sessions, CSRF, roles -----------------------------------------------------------


def test_staff_sign_in_lands_on_their_screen_and_sign_out_ends_the_session(world: Api) -> None:
    client = browser(world)
    response = sign_in(client, "agent1")
    assert response.status_code == 303 and response.headers["location"] == "/console/desk"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie
    desk = client.get("/console/desk")
    assert desk.status_code == 200 and "agent1" in desk.text
    out = client.post("/console/logout", data={"csrf": csrf_of(desk.text)})
    assert out.status_code == 303
    assert client.get("/console/desk").headers["location"].startswith("/console/login")


def test_a_wrong_password_is_refused_next_to_the_field(world: Api) -> None:
    client = browser(world)
    response = sign_in(client, "agent1", "not the password")
    assert response.status_code == 401
    assert error_near(response.text, "password") == "Identifiant ou mot de passe incorrect."
    assert sign_in(client, "nobody-here", PASSWORD).status_code == 401
    assert client.get("/console/desk").status_code == 303


def test_a_tampered_or_foreign_session_cookie_is_not_a_session(world: Api) -> None:
    client = browser(world)
    sign_in(client, "agent1")
    value = client.cookies[SESSION_COOKIE]
    client.cookies.set(SESSION_COOKIE, value[:-2] + ("AA" if not value.endswith("AA") else "BB"))
    assert client.get("/console/desk").status_code == 303


def test_a_post_without_the_session_csrf_token_is_refused_and_writes_nothing(
    world: Api, engine: Engine
) -> None:
    client = browser(world)
    sign_in(client, "agent1")
    page = client.get("/console/members/M1")
    form = {
        "key": key_of(page.text, "/console/members/M1/contacts"),
        "channel": "phone",
        "direction": "inbound",
        "reason": "card.lost_stolen",
        "minutes": "4",
        "team": "paris-1",
        "outcome": "resolved",
    }
    for token in (None, "forged-token"):
        data = form if token is None else {**form, "csrf": token}
        refused = client.post("/console/members/M1/contacts", data=data)
        assert refused.status_code == 403
        assert "Formulaire expiré" in refused.text
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0
    # The sign-in form is protected too: a POST from a visitor without a session is refused.
    assert (
        browser(world).post("/console/login", data={"username": "agent1", "password": PASSWORD}).status_code
        == 403
    )


@pytest.mark.parametrize(
    ("username", "path"),
    [
        ("conc1", "/console/desk"),
        ("conc1", "/console/members/M1"),
        ("agent1", "/console/concierge"),
        ("agent1", "/console/dashboard"),
        ("agent1", "/portal/"),
        ("mkt1", "/console/desk"),
        ("camille", "/console/desk"),
        ("camille", "/console/members/M2"),
    ],
)
def test_each_page_refuses_the_roles_it_does_not_admit(world: Api, username: str, path: str) -> None:
    client = browser(world)
    sign_in(client, username)
    response = client.get(path)
    assert response.status_code == 403
    assert "Accès refusé" in response.text


def test_a_role_admitted_sees_the_page(world: Api) -> None:
    client = browser(world)
    sign_in(client, "sup1")
    for path in ("/console/desk", "/console/members/M1", "/console/dashboard"):
        assert client.get(path).status_code == 200, path
    conc = browser(world)
    sign_in(conc, "conc1")
    assert conc.get("/console/concierge").status_code == 200


def test_a_member_is_sent_to_the_portal_and_back_to_the_page_asked_for(world: Api) -> None:
    client = browser(world)
    assert sign_in(client, "camille", path="/portal/login").headers["location"] == "/portal/"
    anonymous = browser(world)
    asked = anonymous.get("/console/members/M1")
    assert asked.headers["location"] == "/console/login?next=/console/members/M1"
    login = anonymous.get(asked.headers["location"])
    response = anonymous.post(
        "/console/login",
        data={
            "csrf": csrf_of(login.text),
            "username": "agent1",
            "password": PASSWORD,
            "next": "/console/members/M1",
        },
    )
    assert response.headers["location"] == "/console/members/M1"
    evil = anonymous.post(
        "/console/login",
        data={
            "csrf": csrf_of(login.text),
            "username": "agent1",
            "password": PASSWORD,
            "next": "//evil.example",
        },
    )
    assert evil.status_code == 403  # the first sign-in issued a new token: the old one is dead


# --- language -----------------------------------------------------------------------------------


def test_language_follows_the_browser_then_the_user_then_the_switcher(world: Api) -> None:
    assert "Sign in" in browser(world, **{"accept-language": "en-GB,en;q=0.9"}).get("/console/login").text
    assert "Connexion" in browser(world, **{"accept-language": "de-DE, fr;q=0.5"}).get("/console/login").text
    staff = browser(world)
    sign_in(staff, "agent-en")
    assert "Find a customer" in staff.get("/console/desk").text
    switched = staff.get("/console/lang", params={"to": "fr", "next": "/console/desk"})
    assert switched.headers["location"] == "/console/desk"
    page = staff.get("/console/desk")
    assert "Rechercher un client" in page.text and '<html lang="fr">' in page.text
    outside = staff.get("/console/lang", params={"to": "en", "next": "https://evil.example/"})
    assert outside.headers["location"] == "/console/"


def test_the_portal_speaks_the_members_own_language(world: Api) -> None:
    jean = browser(world, **{"accept-language": "fr"})
    sign_in(jean, "jean")
    assert "Hello Jean Dupont" in jean.get("/portal/").text
    camille = browser(world, **{"accept-language": "en"})
    sign_in(camille, "camille")
    assert "Bonjour Camille Martin" in camille.get("/portal/").text


# --- agent desk ---------------------------------------------------------------------------------


def test_live_search_finds_by_name_email_or_reference_prefix_ignoring_case(world: Api) -> None:
    client = browser(world)
    sign_in(client, "agent1")
    htmx = {"HX-Request": "true"}
    by_name = client.get("/console/desk/search", params={"q": "cam"}, headers=htmx)
    assert (
        by_name.status_code == 200 and "Camille Martin" in by_name.text and "Jean Dupont" not in by_name.text
    )
    assert "<html" not in by_name.text  # a fragment for HTMX, not a page
    assert "Jean Dupont" in client.get("/console/desk/search", params={"q": "JEAN@EX"}, headers=htmx).text
    assert "Zoé Friend" in client.get("/console/desk/search", params={"q": "m3"}, headers=htmx).text
    nothing = client.get("/console/desk/search", params={"q": "%"}, headers=htmx)
    assert "Camille" not in nothing.text and "%" in nothing.text
    full = client.get("/console/desk", params={"q": "jean d"})
    assert full.status_code == 200 and "Jean Dupont" in full.text


def test_search_shows_at_most_twenty_rows(world: Api) -> None:
    for n in range(25):
        world.put(f"/v1/members/S{n:02d}", member_body(name=f"Smith {n:02d}", email=f"s{n}@example.fr"))
    client = browser(world)
    sign_in(client, "agent1")
    rows = client.get("/console/desk/search", params={"q": "smith"}, headers={"HX-Request": "true"}).text
    assert rows.count("/console/members/S") == 20
    assert "Smith 00" in rows and "Smith 24" not in rows


def test_the_360_page_shows_the_customer(world: Api) -> None:
    world.put("/v1/members/M1/contact-preference", {"mode": "leave_me_alone"}, role="agent")
    client = browser(world)
    sign_in(client, "agent1")
    page = client.get("/console/members/M1")
    assert page.status_code == 200
    text = page.text
    assert "Camille Martin" in text and "platinum" in text
    assert 'data-testid="points">1 500<' in text
    assert "pref-leave_me_alone" in text and "ne pas solliciter" in text
    assert "Achat par carte" in text  # the last movement, translated
    assert client.get("/console/members/NOPE").status_code == 404


def test_logging_a_contact_through_the_form_writes_it_once(world: Api, engine: Engine) -> None:
    client = browser(world)
    sign_in(client, "agent1")
    page = client.get("/console/members/M1")
    form = {
        "csrf": csrf_of(page.text),
        "key": key_of(page.text, "/console/members/M1/contacts"),
        "channel": "phone",
        "direction": "inbound",
        "reason": "card.lost_stolen",
        "minutes": "6",
        "team": "paris-1",
        "notes": "lost in the metro",
        "outcome": "pending",
    }
    first = client.post("/console/members/M1/contacts", data=form)
    assert first.status_code == 303 and first.headers["location"] == "/console/members/M1?done=contact"
    again = client.post("/console/members/M1/contacts", data=form)  # a double submit
    assert again.status_code == 303
    contacts = world.get("/v1/members/M1/contacts", role="agent").json()["items"]
    assert len(contacts) == 1
    assert contacts[0]["agent"] == "agent1" and contacts[0]["notes"] == "lost in the metro"
    after = client.get(first.headers["location"]).text
    assert "Contact enregistré." in after and "lost in the metro" in after


def test_a_refused_contact_shows_errors_next_to_the_fields_and_writes_nothing(
    world: Api, engine: Engine
) -> None:
    client = browser(world, **{"accept-language": "en"})
    sign_in(client, "agent-en")
    page = client.get("/console/members/M1")
    form = {
        "csrf": csrf_of(page.text),
        "key": key_of(page.text, "/console/members/M1/contacts"),
        "channel": "pigeon",
        "direction": "inbound",
        "reason": "",
        "minutes": "5",
        "team": "t",
        "outcome": "resolved",
    }
    refused = client.post("/console/members/M1/contacts", data=form)
    assert refused.status_code == 422
    assert error_near(refused.text, "channel") == "Choose a value from the list."
    assert error_near(refused.text, "reason") == "This field is required."
    assert 'name="key" value="' + form["key"] in refused.text  # the same key: nothing was written
    unknown = client.post(
        "/console/members/M1/contacts", data={**form, "channel": "phone", "reason": "no.such"}
    )
    assert unknown.status_code == 422
    assert error_near(unknown.text, "reason") == "Unknown reason."
    minutes = client.post("/console/members/M1/contacts", data={**form, "minutes": "lots"})
    assert error_near(minutes.text, "minutes") == i18n.translate("en", "err.minutes")
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0


def test_ordering_an_emergency_card_shows_its_promise_clock(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    client = browser(world)
    sign_in(client, "agent1")
    page = client.get("/console/members/M1")
    data = {"csrf": csrf_of(page.text), "key": key_of(page.text, "/console/members/M1/card-replacements")}
    blank = client.post("/console/members/M1/card-replacements", data={**data, "city": "", "country": "FR"})
    assert blank.status_code == 422 and error_near(blank.text, "city") == "Ce champ est obligatoire."
    ordered = client.post(
        "/console/members/M1/card-replacements", data={**data, "city": "Paris", "country": "fr"}
    )
    assert ordered.status_code == 303
    client.post("/console/members/M1/card-replacements", data={**data, "city": "Paris", "country": "fr"})
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(CardReplacement)) == 1
    shown = client.get("/console/members/M1").text
    assert "promesse 2 h" in shown and "reste 2 h 00 min" in shown
    clock.advance(__import__("datetime").timedelta(hours=3))
    assert "en retard de 1 h 00 min" in client.get("/console/members/M1").text


def test_contact_preference_and_explained_benefit_from_the_360(world: Api) -> None:
    client = browser(world)
    sign_in(client, "agent1")
    page = client.get("/console/members/M1")
    csrf = csrf_of(page.text)
    bad = client.post("/console/members/M1/preference", data={"csrf": csrf, "mode": "shout"})
    assert bad.status_code == 422 and error_near(bad.text, "mode") == "Choisissez une valeur de la liste."
    ok = client.post(
        "/console/members/M1/preference",
        data={"csrf": csrf, "mode": "in_a_hurry", "preferred_channel": "chat"},
    )
    assert ok.status_code == 303
    assert world.get("/v1/members/M1/contact-preference", role="agent").json()["mode"] == "in_a_hurry"
    benefits = world.get("/v1/members/M1/360", role="agent").json()["unused_benefits"]
    assert benefits, "a platinum card has benefits"
    code = benefits[0]["code"]
    early = client.post(f"/console/members/M1/benefits/{code}/explained", data={"csrf": csrf})
    assert (
        early.status_code == 409
        and error_near(early.text, code) == "Enregistrez d'abord le contact en cours."
    )
    page = client.get("/console/members/M1")
    contact = {
        "csrf": csrf,
        "key": key_of(page.text, "/console/members/M1/contacts"),
        "channel": "phone",
        "direction": "inbound",
        "reason": "card.lost_stolen",
        "minutes": "3",
        "team": "paris-1",
        "outcome": "resolved",
    }
    assert client.post("/console/members/M1/contacts", data=contact).status_code == 303
    assert (
        client.post(f"/console/members/M1/benefits/{code}/explained", data={"csrf": csrf}).status_code == 303
    )
    after = world.get("/v1/members/M1/benefits", role="agent").json()["items"]
    assert next(b for b in after if b["code"] == code)["last_explained_at"] is not None


def test_an_agent_with_the_longest_username_sets_a_contact_preference(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    """A username may be 120 characters; the console records the change as ``console:<username>``,
    8 more than the 120 of ``desk_contact_preferences.updated_by``, which PostgreSQL refused with a
    500. The name written fits its column and still names that user alone."""
    long_names = ["a" * 119 + "1", "a" * 119 + "2"]
    for name in long_names:
        make_user(engine, clock, name, "agent")
    recorded = []
    for name, mode in zip(long_names, ("in_a_hurry", "has_time"), strict=True):
        client = browser(world)
        sign_in(client, name)
        page = client.get("/console/members/M1")
        ok = client.post("/console/members/M1/preference", data={"csrf": csrf_of(page.text), "mode": mode})
        assert ok.status_code == 303, ok.text
        assert ok.headers["location"] == "/console/members/M1?done=preference"
        with read_session(engine) as session:
            (row,) = session.execute(select(ContactPreference.mode, ContactPreference.updated_by)).all()
        assert row.mode == mode and len(row.updated_by) <= 120
        assert row.updated_by.startswith("console:aaa")
        recorded.append(row.updated_by)
    assert recorded[0] != recorded[1]


# --- concierge and dashboard --------------------------------------------------------------------


def test_the_concierge_board_lists_requests_partners_and_tastes(world: Api) -> None:
    world.put(
        "/v1/members/M1/tastes",
        {"notes": "Allergic to nuts", "likes": ["jazz"], "dislikes": []},
        role="concierge",
    )
    request = {"id": "Q1", "category": "restaurant", "title": "Table for two", "city": "Lyon", "country": "FR",
               "due_at": "2026-01-02T20:00:00Z"}  # fmt: skip
    assert world.post("/v1/members/M1/concierge-requests", request, role="concierge").status_code == 201
    partner = {"name": "Chez Paul", "country": "FR", "city": "Lyon", "category": "restaurant", "rating": 4}
    assert world.put("/v1/concierge-partners/PAUL", partner, role="concierge").status_code in (200, 201)
    client = browser(world)
    sign_in(client, "conc1")
    board = client.get("/console/concierge", params={"member": "M1", "q": "table"}).text
    assert "Table for two" in board and "Chez Paul" in board and "Allergic to nuts" in board
    assert "Aucune demande résolue ne correspond." in board  # nothing solved yet
    unknown = client.get("/console/concierge", params={"member": "NOPE"}).text
    assert "Aucun client avec cette référence." in unknown


def test_the_supervisor_dashboard_carries_its_chart_specs(world: Api, clock: FrozenClock) -> None:
    client = browser(world)
    sign_in(client, "sup1")
    page = client.get("/console/dashboard", params={"month": "2026-01"})
    assert page.status_code == 200
    for name in ("fcr", "reasons"):
        assert f'id="spec-{name}"' in page.text and f'id="chart-{name}"' in page.text
    assert "vega-embed.min.js" in page.text and "$schema" in page.text
    # No emergency card has an outcome yet: a sentence, not an empty chart.
    assert 'id="chart-cards"' not in page.text and "Aucune issue connue ce mois-ci" in page.text
    order = {"id": "R1", "city": "Paris", "country": "FR"}
    assert world.post("/v1/members/M1/card-replacements", order, role="agent").status_code == 201
    for action in ("dispatch", "deliver"):
        assert world.post(f"/v1/card-replacements/R1/{action}", role="agent").status_code == 200
    delivered = client.get("/console/dashboard", params={"month": "2026-01"}).text
    assert 'id="chart-cards"' in delivered and "1 commandées, 0 encore dans les temps, n = 1" in delivered
    bad = client.get("/console/dashboard", params={"month": "2026-13"})
    assert bad.status_code == 422 and 'id="err-month"' in bad.text


# --- member portal ------------------------------------------------------------------------------


def test_redeeming_in_the_portal_debits_once_even_when_submitted_twice(world: Api, engine: Engine) -> None:
    client = browser(world)
    sign_in(client, "camille")
    page = client.get("/portal/")
    assert 'data-testid="balance">1 500<' in page.text
    form = {
        "csrf": csrf_of(page.text),
        "key": key_of(page.text, "/portal/redeem"),
        "sku": "KNIFE",
        "quantity": "2",
    }
    first = client.post("/portal/redeem", data=form)
    assert first.status_code == 303
    assert client.post("/portal/redeem", data=form).status_code == 303
    assert points_of(world, "M1") == 500
    assert 'data-testid="balance">500<' in client.get("/portal/").text
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Redemption)) == 1


def test_a_redemption_beyond_the_balance_is_refused_in_the_members_language(world: Api) -> None:
    client = browser(world)
    sign_in(client, "jean")  # English, 80 points
    page = client.get("/portal/")
    form = {
        "csrf": csrf_of(page.text),
        "key": key_of(page.text, "/portal/redeem"),
        "sku": "KNIFE",
        "quantity": "1",
    }
    refused = client.post("/portal/redeem", data=form)
    assert refused.status_code == 409
    assert error_near(refused.text, "form") == "Not enough points."
    assert points_of(world, "M2") == 80
    missing = client.post("/portal/redeem", data={**form, "sku": ""})
    assert missing.status_code == 422 and error_near(missing.text, "sku") == "This field is required."
    zero = client.post("/portal/redeem", data={**form, "quantity": "0"})
    assert zero.status_code == 422 and error_near(zero.text, "quantity") == "Enter a number above zero."


def test_transfer_travel_and_preference_from_the_portal(world: Api) -> None:
    client = browser(world)
    sign_in(client, "camille")
    page = client.get("/portal/")
    csrf = csrf_of(page.text)
    transfer = {
        "csrf": csrf,
        "key": key_of(page.text, "/portal/transfer"),
        "partner": "AIR",
        "points": "1000",
    }
    assert client.post("/portal/transfer", data=transfer).status_code == 303
    assert points_of(world, "M1") == 500
    page = client.get("/portal/")
    travel = {
        "csrf": csrf,
        "key": key_of(page.text, "/portal/travel"),
        "booking_ref": "BK1",
        "amount": "abc",
        "points": "100",
    }
    bad = client.post("/portal/travel", data=travel)
    assert bad.status_code == 422 and error_near(bad.text, "amount")
    assert client.post("/portal/travel", data={**travel, "amount": "250,00"}).status_code == 303
    assert points_of(world, "M1") == 400
    assert client.post("/portal/preference", data={"csrf": csrf, "mode": "has_time"}).status_code == 303
    assert world.get("/v1/members/M1/contact-preference", role="agent").json()["mode"] == "has_time"
    history = client.get("/portal/").text
    assert "Transfert partenaire" in history and "Voyage (réservé)" in history


def test_the_portal_shows_the_members_referral_code_and_a_new_customer_enters_it(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    camille = browser(world)
    sign_in(camille, "camille")
    page = camille.get("/portal/").text
    found = re.search(r'data-testid="referral-code">([A-Z2-9-]+)<', page)
    assert found, "the portal shows no referral code"
    code = found.group(1)
    assert code == world.get("/v1/members/M1/referral-code", role="agent").json()["referral_code"]
    assert "5 000 points" in page  # what camille earns per friend
    form = {"csrf": csrf_of(page), "key": key_of(page, "/portal/referral"), "referral_code": code}
    own = camille.post("/portal/referral", data=form)  # her own code (and she already transacts)
    assert own.status_code == 422 and "Ce code ne peut pas être utilisé" in error_near(
        own.text, "referral_code"
    )
    make_user(engine, clock, "zoe", "member", member_ref="M3")
    zoe = browser(world)
    sign_in(zoe, "zoe")
    page = zoe.get("/portal/").text
    form = {"csrf": csrf_of(page), "key": key_of(page, "/portal/referral"), "referral_code": "ABCD-EFGH-JKLM"}
    wrong = zoe.post("/portal/referral", data=form)
    assert wrong.status_code == 422 and error_near(wrong.text, "referral_code")
    assert zoe.post("/portal/referral", data={**form, "referral_code": code.lower()}).status_code == 303
    assert "Code enregistré" in zoe.get("/portal/?done=referral").text
    before = points_of(world, "M1")
    assert world.post("/v1/transactions", tx_body("T3", "M3", "10.00"), role="integrator").status_code == 201
    assert points_of(world, "M1") == before + 5000


def test_the_static_files_are_served_and_nothing_else(world: Api) -> None:
    client = browser(world)
    css = client.get("/console/static/console.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/console/static/vendor/htmx.min.js").status_code == 200
    assert client.get("/console/static/../routes.py").status_code == 404
    assert client.get("/console/static/%2e%2e/routes.py").status_code == 404
    assert client.get("/").headers["location"] == "/console/"


def test_the_portal_follows_a_change_of_the_members_language(world: Api) -> None:
    client = browser(world, **{"accept-language": "fr"})
    sign_in(client, "camille")
    assert "Bonjour Camille Martin" in client.get("/portal/").text
    world.put("/v1/members/M1", member_body(name="Camille Martin", product="platinum", language="en"))
    assert "Hello Camille Martin" in client.get("/portal/").text


def test_an_expired_session_sends_the_live_search_to_the_sign_in_page(world: Api) -> None:
    response = browser(world).get("/console/desk/search", params={"q": "cam"}, headers={"HX-Request": "true"})
    assert response.status_code == 204 and response.headers["HX-Redirect"] == "/console/login"


def test_two_simultaneous_submits_of_one_redeem_form_debit_once(world: Api, engine: Engine) -> None:
    """Two tabs (or a double click racing itself) post the same form at once: one redemption."""
    first = browser(world)
    sign_in(first, "camille")
    page = first.get("/portal/")
    form = {
        "csrf": csrf_of(page.text),
        "key": key_of(page.text, "/portal/redeem"),
        "sku": "KNIFE",
        "quantity": "1",
    }
    second = browser(world)
    second.cookies.update(first.cookies)
    with ThreadPoolExecutor(max_workers=2) as pool:
        answers = list(pool.map(lambda client: client.post("/portal/redeem", data=form), [first, second]))
    assert [a.status_code for a in answers] == [303, 303]
    assert points_of(world, "M1") == 1000
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Redemption)) == 1
