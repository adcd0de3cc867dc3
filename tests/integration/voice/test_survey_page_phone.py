"""The survey page works on a phone: rendered by the app, laid out by Debian's chromium at a phone's
width, it needs no sideways scrolling and its answers are large enough to tap."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.maintenance import run_once
from tests.conftest import Api, missing_server
from tests.integration.voice.conftest import Smtp, add_member, link_path, log_contact

CHROMIUM = Path(os.environ.get("PREVENANCE_CHROMIUM", "/usr/bin/chromium"))


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_the_form_fits_a_phone_screen_with_tappable_answers(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    if not CHROMIUM.exists():
        missing_server(f"{CHROMIUM} is missing")
    from playwright.sync_api import sync_playwright

    add_member(api, "M1")
    log_contact(api, "C1", "M1")
    run_once(engine, clock, smtp_url=smtp.url)
    path = link_path(smtp.inbox.take()[0])
    html = api.client.get(path).text
    faulty = api.client.post(path, data={"comment": "x"}).text
    assert '<link rel="stylesheet" href="/survey/static/survey.css">' in html
    stylesheet = api.client.get("/survey/static/survey.css")
    assert stylesheet.status_code == 200 and stylesheet.headers["content-type"].startswith("text/css")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu"]
        )
        try:
            page = browser.new_page(
                viewport={"width": 360, "height": 740}, device_scale_factor=2, is_mobile=True
            )
            for content in (html, faulty):
                page.set_content(content)  # about:blank cannot load the page's stylesheet link: given here
                page.add_style_tag(content=stylesheet.text)
                overflow = page.evaluate(
                    "document.documentElement.scrollWidth - document.documentElement.clientWidth"
                )
                assert overflow <= 0, "the page scrolls sideways on a phone"
                heights = page.eval_on_selector_all(
                    ".scale label, .points label", "els => els.map(e => e.getBoundingClientRect().height)"
                )
                assert len(heights) == 16 and min(heights) >= 40, heights
            assert page.is_visible("#recommend-error")
            page.click("text=Excellent")
            assert page.is_checked("input[name=interaction][value='5']")
        finally:
            browser.close()
