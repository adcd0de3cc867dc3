"""The marketing screen's forms on SQLite and PostgreSQL: partners, offers (define, pause, resume,
end) and proactive incidents (declare, update, resolve), each written once per key, refused next to
its field in the user's language with nothing written, and closed to other roles; the member
portal's current offers in the member's language, and the 360's offers and incidents."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.customers import service as customers
from prevenance.db import read_session, unit_of_work
from prevenance.desk import incidents
from prevenance.desk.tables import Incident, IncidentNotice
from prevenance.loyalty import service as loyalty
from prevenance.offers import service as offers
from prevenance.offers.tables import OfferDecision
from tests.conftest import Api
from tests.integration.console.support import browser, csrf_of, error_near, key_of, make_user, sign_in
from tests.integration.console.test_console_executive_marketing import _offer


def _marketing(world: Api, username: str = "mkt1") -> tuple[TestClient, str]:
    client = browser(world)
    assert sign_in(client, username).status_code == 303
    page = client.get("/console/marketing")
    assert page.status_code == 200
    return client, page.text


def _partners(engine: Engine) -> dict[str, Any]:
    with read_session(engine) as session:
        return {
            x.code: (x.kind, x.name, x.points_per_block, x.units_per_block)
            for x in loyalty.list_partners(session)
        }


# --- partners -------------------------------------------------------------------------------------


def test_marketing_adds_and_replaces_partners_and_lists_them_by_kind(world: Api, engine: Engine) -> None:
    client, html = _marketing(world)
    assert 'data-testid="transfer-partners"' in html and "Air Demo" in html
    form = {"csrf": csrf_of(html), "code": "HOTELX", "kind": "hotel", "name": "Hôtel X",
            "points_per_block": "1000", "units_per_block": "500"}  # fmt: skip
    assert client.post("/console/marketing/partners", data=form).status_code == 303
    assert client.post("/console/marketing/partners", data=form).status_code == 303
    merchant = {**form, "code": "LAURENT", "kind": "merchant", "name": "Maison Laurent"}
    assert client.post("/console/marketing/partners", data=merchant).status_code == 303
    changed = {"csrf": form["csrf"], "code": "AIR", "kind": "airline", "name": "Air Demo",
               "points_per_block": "1000", "units_per_block": "900"}  # fmt: skip
    assert client.post("/console/marketing/partners", data=changed).status_code == 303
    partners = _partners(engine)
    assert partners == {
        "AIR": ("airline", "Air Demo", 1000, 900),
        "HOTELX": ("hotel", "Hôtel X", 1000, 500),
        "LAURENT": ("merchant", "Maison Laurent", 1000, 500),
    }
    page = client.get("/console/marketing?done=partner").text
    merchants = page[page.index('data-testid="merchant-partners"') :].split("</table>")[0]
    transfers = page[page.index('data-testid="transfer-partners"') :].split("</table>")[0]
    assert "Maison Laurent" in merchants and "Hôtel X" in transfers and "Maison Laurent" not in transfers
    assert "Partenaire enregistré." in page


def test_a_bad_partner_is_refused_next_to_its_field_and_nothing_is_written(
    world: Api, engine: Engine
) -> None:
    client, html = _marketing(world)
    base = {"csrf": csrf_of(html), "code": "NEWP", "kind": "airline", "name": "New",
            "points_per_block": "1000", "units_per_block": "10"}  # fmt: skip
    zero = client.post("/console/marketing/partners", data={**base, "points_per_block": "0"})
    assert zero.status_code == 422
    assert error_near(zero.text, "points_per_block") == "Saisissez un nombre supérieur à zéro."
    assert 'aria-describedby="err-points_per_block"' in zero.text and 'value="NEWP"' in zero.text
    code = client.post("/console/marketing/partners", data={**base, "code": "a b"})
    assert code.status_code == 422 and error_near(code.text, "code").startswith("Code invalide")
    kind = client.post("/console/marketing/partners", data={**base, "kind": "bank"})
    assert kind.status_code == 422 and error_near(kind.text, "kind") == "Choisissez une valeur de la liste."
    assert "NEWP" not in _partners(engine)


def test_partners_are_refused_to_other_roles(world: Api, engine: Engine) -> None:
    client = browser(world)
    sign_in(client, "agent1")
    token = csrf_of(client.get("/console/desk").text)
    form = {"csrf": token, "code": "NOPE", "kind": "airline", "name": "No",
            "points_per_block": "1", "units_per_block": "1"}  # fmt: skip
    assert client.post("/console/marketing/partners", data=form).status_code == 403
    assert "NOPE" not in _partners(engine)


# --- offers ---------------------------------------------------------------------------------------


def _offer_form(html: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf": csrf_of(html),
        "id": "OF-DINNER",
        "partner_merchant": "Maison Laurent",
        "partner_category": "dining",
        "title_fr": "Dîner offert",
        "title_en": "Dinner on us",
        "text_fr": "500 points pour un dîner",
        "text_en": "500 points for a dinner",
        "reward_kind": "bonus_points",
        "reward_points": "500",
        "reward_min_spend": "30",
        "products": "platinum, gold",
        "countries": "fr",
        "valid_from": "2026-01-01",
        "valid_until": "2026-03-01",
        "decision_days": "30",
        "cap_per_member": "1",
        "budget_points": "100000",
        "unit_cost_eur": "3,50",
        "margin_rate": "0.30",
        "expected_spend_eur": "100",
        "holdout_share": "0.10",
    }
    form.update(changes)
    return form


def _offers(engine: Engine) -> dict[str, dict[str, Any]]:
    with read_session(engine) as session:
        return {o["id"]: o for o in offers.list_offers(session)}


def test_marketing_defines_an_offer_once_and_the_same_form_again_changes_nothing(
    world: Api, engine: Engine
) -> None:
    client, html = _marketing(world)
    assert 'name="id" type="text" value="of_' in html  # a fresh id is the form's key
    form = _offer_form(html)
    assert client.post("/console/marketing/offers", data=form).status_code == 303
    first = _offers(engine)["OF-DINNER"]
    assert client.post("/console/marketing/offers", data=form).status_code == 303
    offers_now = _offers(engine)
    assert list(offers_now) == ["OF-DINNER"] and offers_now["OF-DINNER"]["updated_at"] == first["updated_at"]
    offer = offers_now["OF-DINNER"]
    assert offer["reward"] == {"points": 500, "min_spend_eur": "30"}
    assert offer["eligibility"]["products"] == ["gold", "platinum"]
    assert offer["eligibility"]["countries"] == ["FR"]
    assert (offer["unit_cost_eur"], offer["budget_points"], offer["status"]) == ("3.50", 100000, "active")
    page = client.get("/console/marketing?done=offer").text
    assert "Offre enregistrée." in page and "Dîner offert" in page
    multiplier = _offer_form(html, id="OF-X3", reward_kind="category_multiplier", reward_points="",
                             reward_category="Dining", reward_multiplier="3", reward_max_points="2000")  # fmt: skip
    assert client.post("/console/marketing/offers", data=multiplier).status_code == 303
    assert _offers(engine)["OF-X3"]["reward"] == {
        "category": "dining", "multiplier": "3", "max_points": 2000, "min_spend_eur": "30"
    }  # fmt: skip


def test_a_bad_offer_is_refused_next_to_its_field_in_the_users_language_and_nothing_is_written(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    client, html = _marketing(world)
    blank = client.post("/console/marketing/offers", data=_offer_form(html, title_fr=" "))
    assert blank.status_code == 422 and error_near(blank.text, "title_fr") == "Ce champ est obligatoire."
    assert 'value="Dinner on us"' in blank.text  # what was typed is kept
    points = client.post("/console/marketing/offers", data=_offer_form(html, reward_points="beaucoup"))
    assert (
        points.status_code == 422
        and error_near(points.text, "reward_points") == "Saisissez un nombre entier."
    )
    zero = client.post("/console/marketing/offers", data=_offer_form(html, reward_points="0"))
    assert zero.status_code == 422 and error_near(zero.text, "reward_points").startswith("Refusé")
    dates = client.post("/console/marketing/offers", data=_offer_form(html, valid_until="2025-12-01"))
    assert dates.status_code == 422 and error_near(dates.text, "valid_until")
    no_cost = client.post("/console/marketing/offers", data=_offer_form(html, unit_cost_eur=""))
    assert (
        no_cost.status_code == 422
        and error_near(no_cost.text, "unit_cost_eur") == "Ce champ est obligatoire."
    )
    make_user(engine, clock, "mkt-en", "marketing", language="en")
    english, page = _marketing(world, "mkt-en")
    refused = english.post("/console/marketing/offers", data=_offer_form(page, title_en=""))
    assert refused.status_code == 422 and error_near(refused.text, "title_en") == "This field is required."
    assert _offers(engine) == {}


def test_marketing_pauses_resumes_and_ends_an_offer_and_an_ended_offer_stays_ended(
    world: Api, engine: Engine
) -> None:
    client, html = _marketing(world)
    assert client.post("/console/marketing/offers", data=_offer_form(html)).status_code == 303
    action = "/console/marketing/offers/OF-DINNER/status"
    token = csrf_of(html)
    assert client.post(action, data={"csrf": token, "to": "pause"}).status_code == 303
    assert _offers(engine)["OF-DINNER"]["status"] == "paused"
    assert client.post(action, data={"csrf": token, "to": "pause"}).status_code == 303  # a no-op
    assert client.post(action, data={"csrf": token, "to": "resume"}).status_code == 303
    assert _offers(engine)["OF-DINNER"]["status"] == "active"
    assert client.post(action, data={"csrf": token, "to": "end"}).status_code == 303
    refused = client.post(action, data={"csrf": token, "to": "resume"})
    assert refused.status_code == 409
    assert error_near(refused.text, "OF-DINNER") == "Cette offre est terminée : elle ne peut plus changer."
    assert _offers(engine)["OF-DINNER"]["status"] == "ended"
    again = client.post("/console/marketing/offers", data=_offer_form(html, title_fr="Autre"))
    assert again.status_code == 409 and error_near(again.text, "id").startswith("Cette offre est terminée")
    assert client.post(action, data={"csrf": token, "to": "explode"}).status_code == 422
    unknown = client.post("/console/marketing/offers/NOPE/status", data={"csrf": token, "to": "pause"})
    assert unknown.status_code == 404 and error_near(unknown.text, "form") == "Offre inconnue."


def test_offers_are_refused_to_other_roles(world: Api, engine: Engine) -> None:
    client, html = _marketing(world)
    assert client.post("/console/marketing/offers", data=_offer_form(html)).status_code == 303
    agent = browser(world)
    sign_in(agent, "agent1")
    token = csrf_of(agent.get("/console/desk").text)
    form = {**_offer_form(html, id="OF-AGENT"), "csrf": token}
    assert agent.post("/console/marketing/offers", data=form).status_code == 403
    status = agent.post("/console/marketing/offers/OF-DINNER/status", data={"csrf": token, "to": "end"})
    assert status.status_code == 403
    assert list(_offers(engine)) == ["OF-DINNER"] and _offers(engine)["OF-DINNER"]["status"] == "active"


# --- incidents ------------------------------------------------------------------------------------


def _incident_form(html: str, **changes: str) -> dict[str, str]:
    form = {
        "csrf": csrf_of(html),
        "key": key_of(html, "/console/marketing/incidents"),
        "title_fr": "Paiements refusés",
        "title_en": "Declined payments",
        "body_fr": "Certains paiements sont refusés depuis ce matin.",
        "body_en": "Some payments have been declined since this morning.",
        "since": "2025-12-31T22:30",
        "product.platinum": "1",
        "countries": "fr",
        "reason.card.declined": "1",
    }
    form.update(changes)
    return form


def _notices(engine: Engine, kind: str | None = None) -> int:
    with read_session(engine) as session:
        statement = select(func.count()).select_from(IncidentNotice)
        if kind:
            statement = statement.where(IncidentNotice.kind == kind)
        return int(session.scalar(statement) or 0)


def _incident_count(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Incident)) or 0)


def test_marketing_declares_an_incident_once_per_key_and_sees_who_is_affected(
    world: Api, engine: Engine
) -> None:
    client, html = _marketing(world)
    assert "Aucun incident en cours." in html
    form = _incident_form(html)
    assert client.post("/console/marketing/incidents", data=form).status_code == 303
    assert client.post("/console/marketing/incidents", data=form).status_code == 303  # replayed
    assert _incident_count(engine) == 1 and _notices(engine, "initial") == 1  # M1 only: platinum in FR
    with read_session(engine) as session:
        (incident,) = incidents.list_incidents(session)
        m1 = incidents.list_member_incidents(session, member_ref="M1")
    assert incident["id"] == form["key"] and incident["affected"] == 1 and incident["notified"] == 0
    assert incident["affects"] == {
        "products": ["platinum"],
        "countries": ["FR"],
        "reasons": ["card.declined"],
    }
    assert incident["since"].startswith("2025-12-31T22:30") and incident["declared_by"] == "console:mkt1"
    assert [i["id"] for i in m1] == [form["key"]]
    page = client.get("/console/marketing?done=incident").text
    row = page[page.index(f'data-testid="incident-{form["key"]}"') :].split("</tr>")[0]
    assert "Paiements refusés" in row and '<td class="num">1</td><td class="num">0</td>' in row
    assert "Incident déclaré" in page
    again = client.post("/console/marketing/incidents", data={**form, "title_fr": "Autre titre"})
    assert again.status_code == 409 and "rechargez la page" in error_near(again.text, "form")
    assert _incident_count(engine) == 1


def test_an_incident_by_merchant_and_window_names_the_members_who_paid_there(
    world: Api, engine: Engine
) -> None:
    client, html = _marketing(world)
    form = _incident_form(html, countries="", merchant="Librairie", window_start="2025-12-31T00:00",
                          window_end="2026-01-02T00:00")  # fmt: skip
    form.pop("product.platinum")
    assert client.post("/console/marketing/incidents", data=form).status_code == 303
    with read_session(engine) as session:
        (incident,) = incidents.list_incidents(session)
    assert incident["affected"] == 2  # M1 and M2 paid at the bookshop on 1 January


def test_a_bad_incident_is_refused_next_to_its_field_and_nothing_is_written(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    client, html = _marketing(world)
    nobody = _incident_form(html, countries="")
    nobody.pop("product.platinum")
    refused = client.post("/console/marketing/incidents", data=nobody)
    assert refused.status_code == 422 and error_near(refused.text, "affects").startswith("Indiquez au moins")
    assert 'value="Paiements refusés"' in refused.text
    assert key_of(refused.text, "/console/marketing/incidents") == nobody["key"]  # the same key is kept
    country = client.post("/console/marketing/incidents", data=_incident_form(html, countries="France"))
    assert country.status_code == 422 and error_near(country.text, "countries") == "Format non reconnu."
    title = client.post("/console/marketing/incidents", data=_incident_form(html, title_en=""))
    assert title.status_code == 422 and error_near(title.text, "title_en") == "Ce champ est obligatoire."
    since = client.post("/console/marketing/incidents", data=_incident_form(html, since=""))
    assert since.status_code == 422 and error_near(since.text, "since") == "Ce champ est obligatoire."
    window = client.post(
        "/console/marketing/incidents",
        data=_incident_form(html, window_start="2026-01-01T00:00"),  # a window without a merchant
    )
    assert window.status_code == 422 and error_near(window.text, "affects")
    make_user(engine, clock, "mkt-en", "marketing", language="en")
    english, page = _marketing(world, "mkt-en")
    body = english.post("/console/marketing/incidents", data=_incident_form(page, body_fr=""))
    assert body.status_code == 422 and error_near(body.text, "body_fr") == "This field is required."
    assert _incident_count(engine) == 0 and _notices(engine) == 0


def test_marketing_with_the_longest_username_declares_an_incident(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    """A username may be 120 characters; the console records the declaration as
    ``console:<username>``, 8 more than the 120 of ``desk_incidents.declared_by``, which PostgreSQL
    refused with a 500. The name written fits its column and still names that user alone."""
    long_names = ["m" * 119 + "1", "m" * 119 + "2"]
    for name in long_names:
        make_user(engine, clock, name, "marketing")
    recorded = {}
    for name in long_names:
        client, html = _marketing(world, name)
        form = _incident_form(html)
        declared = client.post("/console/marketing/incidents", data=form)
        assert declared.status_code == 303, declared.text
        assert declared.headers["location"].endswith("&done=incident")
        with read_session(engine) as session:
            found = {i["id"]: i["declared_by"] for i in incidents.list_incidents(session)}
        by = found[form["key"]]
        assert len(by) <= 120 and by.startswith("console:mmm")
        recorded[name] = by
    assert _incident_count(engine) == 2
    assert recorded[long_names[0]] != recorded[long_names[1]]


def test_an_incident_title_that_would_break_the_mail_subject_is_refused_next_to_its_field(
    world: Api, engine: Engine
) -> None:
    client, html = _marketing(world)
    form = _incident_form(html, title_en="Payments declined\r\nBcc: everyone@example.org")
    refused = client.post("/console/marketing/incidents", data=form)
    assert refused.status_code == 422 and error_near(refused.text, "title_en") == "Valeur refusée."
    assert _incident_count(engine) == 0 and _notices(engine) == 0


def test_an_incident_gets_updates_once_per_key_then_is_resolved(world: Api, engine: Engine) -> None:
    client, html = _marketing(world)
    form = _incident_form(html)
    assert client.post("/console/marketing/incidents", data=form).status_code == 303
    page = client.get("/console/marketing").text
    incident_id = form["key"]
    action = f"/console/marketing/incidents/{incident_id}/updates"
    update = {"csrf": csrf_of(page), "key": key_of(page, action), "body_fr": "Toujours en cours.",
              "body_en": "Still ongoing."}  # fmt: skip
    assert client.post(action, data=update).status_code == 303
    assert client.post(action, data=update).status_code == 303
    assert _notices(engine, "update") == 1
    empty = client.post(action, data={**update, "key": "other", "body_en": ""})
    assert empty.status_code == 422 and error_near(empty.text, "body_en") == "Ce champ est obligatoire."
    assert "<details open>" in empty.text
    assert _notices(engine, "update") == 1
    resolve = f"/console/marketing/incidents/{incident_id}/resolve"
    bad = client.post(resolve, data={"csrf": update["csrf"], "body_fr": "", "body_en": "Fixed."})
    assert bad.status_code == 422 and error_near(bad.text, "body_fr") == "Ce champ est obligatoire."
    done = {"csrf": update["csrf"], "body_fr": "Corrigé.", "body_en": "Fixed."}
    assert client.post(resolve, data=done).status_code == 303
    assert client.post(resolve, data=done).status_code == 303  # replayed
    assert _notices(engine, "resolution") == 1
    with read_session(engine) as session:
        assert incidents.list_incidents(session) == []
        assert incidents.get(session, incident_id=incident_id)["status"] == "resolved"
    late = client.post(action, data={**update, "key": "late"})
    assert late.status_code == 409 and error_near(late.text, "form") == "Cet incident est déjà clos."
    assert "Aucun incident en cours." in client.get("/console/marketing").text


def test_incidents_are_refused_to_other_roles(world: Api, engine: Engine) -> None:
    client, html = _marketing(world)
    form = _incident_form(html)
    agent = browser(world)
    sign_in(agent, "agent1")
    token = csrf_of(agent.get("/console/desk").text)
    assert agent.post("/console/marketing/incidents", data={**form, "csrf": token}).status_code == 403
    assert _incident_count(engine) == 0
    assert client.post("/console/marketing/incidents", data=form).status_code == 303
    action = f"/console/marketing/incidents/{form['key']}/resolve"
    assert agent.post(action, data={"csrf": token, "body_fr": "x", "body_en": "x"}).status_code == 403
    with read_session(engine) as session:
        assert incidents.get(session, incident_id=form["key"])["status"] == "active"


# --- the member's offers: portal and 360 ------------------------------------------------------------


def _make_offer_to(engine: Engine, clock: FrozenClock, ref: str, offer_id: str, *, days: int = 30) -> None:
    at = clock.now() - timedelta(days=1)
    with unit_of_work(engine) as session:
        session.add(_offer(offer_id, at))
        session.flush()
        member = customers.get_member(session, ref=ref)
        session.add(
            OfferDecision(
                id=f"D-{offer_id}",
                offer_id=offer_id,
                member_id=member.id,
                transaction_id=f"trigger-{offer_id}",
                arm="treatment",
                decided_at=at,
                expires_at=at + timedelta(days=days),
                propensity=0.2,
                expected_value=1.0,
                model_version=None,
                status="made",
                rewarded_at=None,
                reward_points=None,
            )
        )


def test_the_portal_lists_the_members_open_offers_in_their_language_and_activates_one(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    _make_offer_to(engine, clock, "M1", "OF-OPEN")
    _make_offer_to(engine, clock, "M1", "OF-OLD", days=1)  # expired already
    _make_offer_to(engine, clock, "M2", "OF-EN")
    camille = browser(world)
    sign_in(camille, "camille", path="/portal/login")
    page = camille.get("/portal/").text
    section = page[page.index('data-testid="offers"') :].split("</ul>")[0]
    assert "Dîner offert" in section and "Proposée" in section and "OF-OLD" not in section
    assert 'action="/portal/offers/OF-OPEN/activate"' in section
    assert 'action="/portal/offers/OF-EN/activate"' not in page  # another member's offer
    token = csrf_of(page)
    assert camille.post("/portal/offers/OF-OPEN/activate", data={"csrf": token}).status_code == 303
    assert (
        camille.post("/portal/offers/OF-OPEN/activate", data={"csrf": token}).status_code == 303
    )  # replayed
    after = camille.get("/portal/?done=offer").text
    assert "Offre activée." in after and "Activée" in after
    assert 'action="/portal/offers/OF-OPEN/activate"' not in after
    refused = camille.post("/portal/offers/OF-EN/activate", data={"csrf": token})
    assert (
        refused.status_code == 409
        and error_near(refused.text, "form") == "Cette offre n'est plus disponible."
    )
    with read_session(engine) as session:
        statuses = dict(session.execute(select(OfferDecision.id, OfferDecision.status)).all())
    assert statuses == {"D-OF-OPEN": "activated", "D-OF-OLD": "made", "D-OF-EN": "made"}
    jean = browser(world)
    sign_in(jean, "jean", path="/portal/login")
    english = jean.get("/portal/").text
    assert "Dinner on us" in english and "Dîner offert" not in english and "My offers" in english
    staff, staff_page = _marketing(world)
    refused_staff = staff.post("/portal/offers/OF-EN/activate", data={"csrf": csrf_of(staff_page)})
    assert refused_staff.status_code == 403
    with read_session(engine) as session:
        assert session.get(OfferDecision, "D-OF-EN").status == "made"  # type: ignore[union-attr]


def test_the_360_shows_the_members_offers_and_active_incidents(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    _make_offer_to(engine, clock, "M1", "OF-OPEN")
    client, html = _marketing(world)
    assert client.post("/console/marketing/incidents", data=_incident_form(html)).status_code == 303
    agent = browser(world)
    sign_in(agent, "agent1")
    page = agent.get("/console/members/M1").text
    section = page[page.index('data-testid="offers"') :].split("</ul>")[0]
    assert "Dîner offert" in section and "Proposée" in section
    assert "Paiements refusés" in page
    other = agent.get("/console/members/M2").text
    assert "Aucune offre faite à ce client." in other and "Paiements refusés" not in other


# --- the pages themselves -------------------------------------------------------------------------


def _check_page(html: str) -> None:
    """Unique ids, a label for every visible input, no inline style or script, no untranslated key."""
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted({i for i in ids if ids.count(i) > 1})
    labelled = set(re.findall(r'<label for="([^"]+)"', html))
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        if 'type="hidden"' in tag or 'type="checkbox"' in tag or 'type="radio"' in tag:
            continue  # checkboxes and radios sit inside their own <label>
        found = re.search(r'\sid="([^"]+)"', tag)
        assert found and found.group(1) in labelled, tag
    assert " style=" not in html and "<style" not in html
    for attributes in re.findall(r"<script([^>]*)>", html):
        assert "src=" in attributes or 'type="application/json"' in attributes
    assert not re.findall(r">\s*((?:mkt|portal|offers?|err|incidents)\.[\w.-]+)", html)
    assert all('scope="' in th for th in re.findall(r"<th\b[^>]*>", html))


def test_the_marketing_portal_and_360_pages_are_accessible_and_fully_translated(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    _make_offer_to(engine, clock, "M1", "OF-OPEN")
    client, _ = _marketing(world)
    for n in range(2):
        form = _incident_form(client.get("/console/marketing").text, title_fr=f"Panne {n}")
        assert client.post("/console/marketing/incidents", data=form).status_code == 303
    make_user(engine, clock, "boss", "admin", language="en")
    admin, _ = _marketing(world, "boss")
    pages = [client.get("/console/marketing").text, admin.get("/console/marketing").text]
    camille = browser(world)
    sign_in(camille, "camille", path="/portal/login")
    pages.append(camille.get("/portal/").text)
    agent = browser(world)
    sign_in(agent, "agent1")
    pages.append(agent.get("/console/members/M1").text)
    for page in pages:
        _check_page(page)
