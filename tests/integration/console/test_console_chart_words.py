"""Words on the charts and tables of the executive page and the dashboard, in both languages: the
calibration method translated, the trend's axis named for quarters, the Pareto's tooltip titled, no
chart title repeating its card's heading, a legend only where there are several series."""

from __future__ import annotations

import json
import re
from html import unescape
from typing import Any

from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.console import charts, i18n
from prevenance.db import unit_of_work
from prevenance.voice import calibration
from prevenance.voice import service as voice
from prevenance.voice.calibration import METHOD_CODES
from tests.conftest import Api
from tests.integration.console.support import browser, sign_in
from tests.integration.console.test_console_voice_security import answers

QUARTER = "2025Q4"


def spec_of(html: str, name: str) -> dict[str, Any]:
    found = re.search(rf'<script type="application/json" id="spec-{name}">(.*?)</script>', html, re.S)
    assert found, f"no spec {name}"
    spec: dict[str, Any] = json.loads(found.group(1))
    return spec


def encodings(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [layer["encoding"] for layer in spec.get("layer", [spec])]


def test_every_calibration_method_has_words_in_both_languages() -> None:
    methods = (
        calibration.METHOD_REFERENCE,
        calibration.METHOD_ESTIMATED,
        calibration.METHOD_FALLBACK,
        calibration.METHOD_NONE,
        calibration.METHOD_TOO_FEW,
    )
    assert set(METHOD_CODES) == set(methods)
    for lang in i18n.LANGUAGES:
        for code in METHOD_CODES.values():
            assert f"exec.method.{code}" in i18n.catalogue(lang)
    assert i18n.translate("fr", "exec.method.reference") != calibration.METHOD_REFERENCE


def test_the_executive_page_speaks_its_language_in_the_table_and_the_trend(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    answers(engine, clock)
    for username, lang, quarter in (("sup1", "fr", "Trimestre"), ("sup1", "en", "Quarter")):
        client = browser(world)
        sign_in(client, username)
        client.get("/console/lang", params={"to": lang, "next": "/console/"})
        html = client.get(f"/console/executive?quarter={QUARTER}").text
        table = unescape(html[html.index('data-testid="countries"') : html.index("</table>")])
        words = {i18n.translate(lang, f"exec.method.{code}") for code in METHOD_CODES.values()}
        assert any(w in table for w in words), table
        if lang == "fr":
            assert not any(m in table for m in METHOD_CODES), "an English method sentence on the French page"
        for name in ("trend_rtf", "trend_excellence"):
            for encoding in encodings(spec_of(html, name)):
                assert encoding["x"]["title"] == quarter
            tooltip = encodings(spec_of(html, name))[1]["tooltip"]
            assert {t["field"]: t["title"] for t in tooltip}["estimate"] == i18n.translate(
                lang, "voice.by.country"
            )


def test_the_pareto_has_titled_tooltips_and_no_repeated_title(world: Api) -> None:
    client = browser(world)
    sign_in(client, "sup1")
    html = client.get("/console/dashboard", params={"month": "2026-01"}).text
    spec = spec_of(html, "reasons")
    assert "title" not in spec  # the card's heading says it
    for encoding in encodings(spec):
        titles = {t["field"]: t["title"] for t in encoding["tooltip"]}
        assert titles == {"reason": "Motif", "contacts": "Contacts", "cumulative": "Part cumulée"}
    assert spec["padding"]["left"] >= 5


def test_a_single_series_trend_draws_no_legend_and_several_draw_solid_symbols() -> None:
    row = {"key": "2025-12", "value": 10.0, "low": 5.0, "high": 15.0, "n": 40}
    one = charts.trend_chart([{**row, "estimate": "RTF"}], "en", measure="RTF", domain=(-100, 100), title="t")
    assert all(e["color"]["legend"] is None for e in encodings(one))
    two = charts.trend_chart(
        [{**row, "estimate": "FR"}, {**row, "estimate": "GB"}],
        "en",
        measure="RTF",
        domain=(-100, 100),
        title="t",
    )
    for encoding in encodings(two):
        assert encoding["color"]["legend"]["symbolOpacity"] == 1
    assert charts.pareto_left_padding(["Question sur le relevé"]) > charts.pareto_left_padding(["Code"])


def test_suggestion_topics_show_as_words_in_the_pages_language(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    row = {
        "id": "TOPIC1",
        "member_ref": "M1",
        "answered_at": "2025-12-05T10:00:00Z",
        "agent": "alice",
        "team": "paris",
        "channel": "phone",
        "reason": "card.lost_stolen",
        "recommend": "4",
        "interaction": "2",
        "suggestion": "Beaucoup trop d'attente au téléphone",
    }
    with unit_of_work(engine) as session:
        voice.import_answers(session, rows=[row], now=clock.now())
    for lang, label in (("fr", "Temps d'attente"), ("en", "Waiting time")):
        client = browser(world)
        sign_in(client, "sup1")
        client.get("/console/lang", params={"to": lang, "next": "/console/"})
        html = unescape(client.get("/console/voice", params={"month": "2025-12"}).text)
        assert "Beaucoup trop d'attente au téléphone" in html
        assert label in html and "waiting_time" not in html
