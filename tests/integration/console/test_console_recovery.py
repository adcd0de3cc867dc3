"""Service recovery in the console: the supervisor's queue (counts, states, the month's report and
goodwill) reached from the navigation, the counts on the dashboard, and the agent closing a case
from the 360 where the member's goodwill shows too, in French and English."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.db import unit_of_work
from prevenance.maintenance import run_once
from prevenance.voice import service as voice
from tests.conftest import Api
from tests.integration.console.support import browser, csrf_of, make_user, sign_in


def detractor(engine: Engine, clock: FrozenClock, answer_id: str, ref: str, recommend: int) -> None:
    row = {
        "id": answer_id,
        "member_ref": ref,
        "answered_at": clock.now().isoformat(),
        "agent": "alice",
        "team": "paris-1",
        "channel": "phone",
        "reason": "card.lost_stolen",
        "recommend": str(recommend),
    }
    with unit_of_work(engine) as session:
        voice.import_answers(session, rows=[row], now=clock.now())
    run_once(engine, clock)


def late_card(api: Api, clock: FrozenClock, ref: str) -> None:
    body = {"id": "R1", "city": "Paris", "country": "FR", "address": "1 rue de Rivoli"}
    api.post(f"/v1/members/{ref}/card-replacements", body, role="agent")
    api.post("/v1/card-replacements/R1/dispatch", role="integrator")
    clock.advance(timedelta(hours=3))
    api.post("/v1/card-replacements/R1/deliver", role="integrator")


def test_queue_dashboard_and_close_on_the_360(world: Api, engine: Engine, clock: FrozenClock) -> None:
    detractor(engine, clock, "A1", "M1", 2)
    detractor(engine, clock, "A2", "M2", 6)
    clock.advance(timedelta(hours=30))  # both breached
    detractor(engine, clock, "A3", "M3", 9)  # a promoter: no case
    late_card(world, clock, "M1")
    run_once(engine, clock)
    run_once(engine, clock)

    sup = browser(world)
    sign_in(sup, "sup1")
    home = sup.get("/console/dashboard")
    assert 'href="/console/recovery"' in home.text
    assert "2 dossier(s) ouvert(s) : 0 dans les délais, 2 en retard" in home.text
    queue = sup.get("/console/recovery?state=breached")
    assert queue.status_code == 200
    assert queue.text.count("Détracteur (recommandation") == 2
    assert "Gestes commerciaux" in queue.text
    assert sup.get("/console/recovery?month=2026-13").status_code == 422
    english = sup.get("/console/recovery?state=breached", cookies={"pv_lang": "en"})
    assert "Recovery queue: Breached" in english.text or "Recovery queue" in english.text

    agent = browser(world)
    sign_in(agent, "agent1")
    assert agent.get("/console/recovery").status_code == 403
    page = agent.get("/console/members/M1")
    assert "Reconquête et gestes commerciaux" in page.text
    assert "Carte livrée en retard" in page.text and "2500 points" in page.text
    action = page.text[page.text.index('action="/console/members/M1/recovery/') :]
    path = action[len('action="') : action.index('"', len('action="'))]
    refused = agent.post(path, data={"csrf": csrf_of(page.text), "outcome": ""})
    assert refused.status_code == 422 and "Choisissez une issue" in refused.text
    done = agent.post(path, data={"csrf": csrf_of(page.text), "outcome": "goodwill_given", "note": "Désolé"})
    assert done.status_code == 303 and done.headers["location"].endswith("done=recovery")
    after = agent.get("/console/members/M1?done=recovery")
    assert "Reconquête clôturée." in after.text and "Geste commercial accordé" in after.text
    again = agent.post(path, data={"csrf": csrf_of(page.text), "outcome": "resolved"})
    assert again.status_code == 409 and "déjà été clôturé" in again.text

    make_user(engine, clock, "agent-en2", "agent", language="en")
    english_agent = browser(world)
    sign_in(english_agent, "agent-en2")
    seen = english_agent.get("/console/members/M1").text
    assert "Recovery and goodwill" in seen and "Card delivered late" in seen and "Goodwill given" in seen


def test_a_supervisor_grants_incident_goodwill_from_the_queue_once(world: Api, engine: Engine) -> None:
    from tests.integration.desk.test_incidents import incident

    world.post("/v1/incidents", incident(affects={"countries": ["FR"]}), role="supervisor")
    sup = browser(world)
    sign_in(sup, "sup1")
    page = sup.get("/console/recovery")
    assert "Aucun incident résolu." in page.text  # an active incident is no choice yet
    world.post("/v1/incidents/INC1/resolve", {"body_fr": "Réparé.", "body_en": "Fixed."}, role="supervisor")
    page = sup.get("/console/recovery")
    assert 'value="INC1"' in page.text
    first = sup.post(
        "/console/recovery/incident-goodwill", data={"csrf": csrf_of(page.text), "incident_id": "INC1"}
    )
    assert first.status_code == 200, first.text
    assert "3 membre(s) touché(s), 3 geste(s) accordé(s), 0 déjà accordé(s)" in first.text
    again = sup.post(
        "/console/recovery/incident-goodwill", data={"csrf": csrf_of(page.text), "incident_id": "INC1"}
    )
    assert "0 geste(s) accordé(s), 3 déjà accordé(s)" in again.text
    unknown = sup.post(
        "/console/recovery/incident-goodwill", data={"csrf": csrf_of(page.text), "incident_id": "NOPE"}
    )
    assert unknown.status_code == 404 and 'class="error"' in unknown.text
    agent = browser(world)
    sign_in(agent, "agent1")
    own = csrf_of(agent.get("/console/members/M1").text)
    refused = agent.post("/console/recovery/incident-goodwill", data={"csrf": own, "incident_id": "INC1"})
    assert refused.status_code == 403
    assert world.get("/v1/goodwill?month=2026-01", role="supervisor").json()["count"] == 3
