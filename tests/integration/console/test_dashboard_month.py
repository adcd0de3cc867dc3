"""The supervisor dashboard opens on the last complete month (the current one is mostly still
undetermined), and keeps the month asked for."""

from __future__ import annotations

import re
from datetime import timedelta

from prevenance.common.clock import FrozenClock
from tests.conftest import Api
from tests.integration.console.support import browser, sign_in


def _month_shown(html: str) -> str:
    found = re.search(r'id="f-month" name="month" type="month" value="([^"]*)"', html)
    assert found, "no month field"
    return found.group(1)


def test_the_dashboard_opens_on_the_last_complete_month(world: Api, clock: FrozenClock) -> None:
    client = browser(world)
    sign_in(client, "sup1")
    assert _month_shown(client.get("/console/dashboard").text) == "2025-12"  # the clock says 2026-01-01
    clock.advance(timedelta(days=31 + 28 + 14))  # 2026-03-15
    assert _month_shown(client.get("/console/dashboard").text) == "2026-02"
    assert _month_shown(client.get("/console/dashboard", params={"month": "2026-03"}).text) == "2026-03"
