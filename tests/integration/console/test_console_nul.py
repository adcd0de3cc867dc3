"""A NUL character in a console or portal form, or in the live desk search, is refused with 422
naming the field and writes nothing (PostgreSQL used to answer 500 on the search and the forms)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, func, select

from prevenance.db import read_session
from prevenance.desk.tables import Contact
from tests.conftest import Api
from tests.integration.console.support import PASSWORD, browser, csrf_of, key_of, sign_in


def _problem(response: Any, field: str) -> None:
    assert response.status_code == 422, response.text[:500]
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["field"] == field


def test_the_desk_search_refuses_a_nul(world: Api) -> None:
    client = browser(world)
    sign_in(client, "agent1")
    htmx = {"HX-Request": "true"}
    _problem(client.get("/console/desk/search?q=Cam%00ille", headers=htmx), "q")
    _problem(client.get("/console/desk?q=Cam%00ille"), "q")
    found = client.get("/console/desk/search?q=Camille", headers=htmx)
    assert found.status_code == 200 and "Camille Martin" in found.text


def test_a_console_form_with_a_nul_writes_nothing(world: Api, engine: Engine) -> None:
    client = browser(world)
    sign_in(client, "agent1")
    page = client.get("/console/members/M1")
    form = {
        "csrf": csrf_of(page.text),
        "key": key_of(page.text, "/console/members/M1/contacts"),
        "channel": "phone",
        "direction": "inbound",
        "reason": "card.lost_stolen",
        "minutes": "4",
        "team": "paris-1",
        "outcome": "resolved",
        "notes": "card lost\x00 in the metro",
    }
    _problem(client.post("/console/members/M1/contacts", data=form), "notes")
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Contact)) == 0
    accepted = client.post("/console/members/M1/contacts", data={**form, "notes": "card lost in the metro"})
    assert accepted.status_code == 303, accepted.text[:500]


def test_the_sign_in_forms_refuse_a_nul(world: Api) -> None:
    for path in ("/console/login", "/portal/login"):
        client = browser(world)
        page = client.get(path)
        data = {"csrf": csrf_of(page.text), "username": "agent1\x00", "password": PASSWORD}
        _problem(client.post(path, data=data), "username")
