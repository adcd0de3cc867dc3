"""The desk 360 in both languages: the surveys the member answered (date, recommend score, interaction
in words, comment cut short) and the communications sent, channel and kind translated."""

from __future__ import annotations

import re
from html import unescape

from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.db import unit_of_work
from prevenance.voice import service as voice
from tests.conftest import Api
from tests.integration.console.support import browser, sign_in

LONG = "Conseiller très aimable, " + "et vraiment efficace " * 10 + "FIN-DU-COMMENTAIRE"


def answer(engine: Engine, clock: FrozenClock) -> None:
    rows = [
        {
            "id": "S1",
            "member_ref": "M1",
            "answered_at": "2025-12-03T10:00:00Z",
            "agent": "alice",
            "team": "paris",
            "channel": "phone",
            "reason": "card.lost_stolen",
            "recommend": "9",
            "interaction": "4",
            "comment": "Opposition rapide, merci",
        },
        {
            "id": "S2",
            "member_ref": "M1",
            "answered_at": "2025-12-10T10:00:00Z",
            "agent": "alice",
            "team": "paris",
            "channel": "phone",
            "reason": "card.lost_stolen",
            "recommend": "3",
            "interaction": "1",
            "comment": LONG,
        },
    ]
    with unit_of_work(engine) as session:
        voice.import_answers(session, rows=rows, now=clock.now())


def section(html: str, heading_id: str) -> str:
    """The text of the 360's card whose heading has ``heading_id`` (tags dropped, spaces collapsed)."""
    start = html.index(">", html.index(f'aria-labelledby="{heading_id}"')) + 1
    card = html[start : html.index("</section>", start)]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", card)).split())


def test_the_360_lists_the_surveys_the_member_answered_in_both_languages(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    answer(engine, clock)
    french = browser(world)
    sign_in(french, "agent1")
    surveys = section(french.get("/console/members/M1").text, "h-surveys")
    assert surveys.startswith("Questionnaires répondus")
    # Newest first: 10 December (3, poor, long comment cut short), then 3 December.
    assert surveys.index("2025-12-10 10:00 UTC") < surveys.index("2025-12-03 10:00 UTC")
    assert "2025-12-10 10:00 UTC · Recommandation 3/10 · Médiocre « Conseiller très aimable" in surveys
    assert "2025-12-03 10:00 UTC · Recommandation 9/10 · Très bien « Opposition rapide, merci »" in surveys
    assert "…" in surveys and "FIN-DU-COMMENTAIRE" not in surveys  # the excerpt, not the whole comment

    english = browser(world)
    sign_in(english, "agent-en")
    surveys = section(english.get("/console/members/M1").text, "h-surveys")
    assert surveys.startswith("Surveys answered")
    assert "2025-12-03 10:00 UTC · Recommend 9/10 · Very good “Opposition rapide, merci”" in surveys
    assert "Recommend 3/10 · Poor" in surveys

    none = section(english.get("/console/members/M2").text, "h-surveys")
    assert "No survey answered." in none


def test_the_360_translates_the_channel_and_kind_of_communications(world: Api) -> None:
    sent = {
        "id": "COM1",
        "member_ref": "M1",
        "kind": "statement",
        "template": "monthly-statement",
        "channel": "email",
        "language": "fr",
        "sent_at": "2025-12-01T08:00:00Z",
        "subject": "Votre relevé du mois",
    }
    assert world.post("/v1/communications", sent, role="integrator").status_code == 201
    english = browser(world)
    sign_in(english, "agent-en")
    comms = section(english.get("/console/members/M1").text, "h-comms")
    assert "· email · account statement ·" in comms and "e-mail" not in comms
    french = browser(world)
    sign_in(french, "agent1")
    comms = section(french.get("/console/members/M1").text, "h-comms")
    assert "· e-mail · relevé de compte ·" in comms and "statement" not in comms
