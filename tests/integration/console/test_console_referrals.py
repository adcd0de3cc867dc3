"""The marketing screen's referrals section: the month's report (made, converted, conversion rate
with its interval, points paid) and the referrals made, in French and in English."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from tests.conftest import Api, member_body, tx_body
from tests.integration.console.support import browser, make_user, sign_in


@pytest.mark.parametrize(
    ("language", "words"),
    [
        ("fr", ("Parrainages", "Convertis", "Récompensé", "En attente du premier achat")),
        ("en", ("Referrals", "Converted", "Rewarded", "Waiting for the first purchase")),
    ],
)
def test_the_marketing_screen_shows_the_months_referrals(
    world: Api, engine: Engine, clock: FrozenClock, language: str, words: tuple[str, ...]
) -> None:
    for ref in ("R1", "R2"):
        assert world.put(f"/v1/members/{ref}", member_body()).status_code == 201
    for referee in ("R1", "R2"):
        made = world.post("/v1/referrals", {"referrer_ref": "M3", "referee_ref": referee}, role="agent")
        assert made.status_code == 201, made.text
    assert world.post("/v1/transactions", tx_body("TR1", "R1", "10.00"), role="integrator").status_code == 201
    make_user(engine, clock, f"mkt-{language}", "marketing", language=language)
    client = browser(world)
    sign_in(client, f"mkt-{language}")
    page = client.get("/console/marketing", params={"month": "2026-01"})
    assert page.status_code == 200
    section = page.text[page.text.index('id="h-referrals"') :].split("</section>")[0]
    for word in words:
        assert word in section, word
    report = section[section.index('data-testid="referrals-report"') :]
    assert '<dd class="num">2</dd>' in report and '<dd class="num">1</dd>' in report  # made, converted
    assert "50" in report and "5000" in report  # the rate (with its interval) and the points paid
    rows = section[section.index('data-testid="referrals"') :]
    assert rows.count("<tr>") == 3 and "R1" in rows and "R2" in rows and "M3" in rows
    assert "mkt.referrals" not in page.text
