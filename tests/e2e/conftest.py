"""Browser tests: a real uvicorn server over a temporary SQLite database (migrated and filled by
``demo.showcase``) driven by Debian's chromium through Playwright. One server and one browser per
module; each test gets a fresh browser context (its own cookies).

Without ``/usr/bin/chromium`` the tests are skipped, except with ``CI=true`` where they fail.

``console_errors`` collects what the page reports as broken: console errors (a failed script or
resource, a Content-Security-Policy violation) and uncaught exceptions. ``KNOWN_PROBLEMS`` names the
few that are known and reported; each has a strict-xfail test that starts failing once it is fixed,
so the allowance is removed with the fix.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from tools.screens import CHROMIUM, Server, launch, start_server

from prevenance.db import make_engine
from tests.conftest import missing_server
from tests.factories import wait_until


def chromium_or_skip() -> Path:
    """Debian's chromium; fail in CI, skip elsewhere, when it is missing."""
    if not CHROMIUM.exists():
        missing_server(f"{CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
    return CHROMIUM


# Generous waits for a slow shared machine: they cost nothing when the page is quick.
EXPECT_TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    chromium_or_skip()
    running = start_server(tmp_path_factory.mktemp("e2e"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def engine(server: Server) -> Iterator[Engine]:
    """The server's database, for the tests that check what a page stored."""
    opened = make_engine(server.database_url)
    yield opened
    opened.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    context = browser.new_context(base_url=server.url, locale="fr-FR")
    context.set_default_timeout(30_000)
    tab = context.new_page()
    yield tab
    context.close()


# Known, reported problems, by the error text and where it comes from: each has a strict-xfail
# test that starts failing once it is fixed, so the allowance is removed with the fix. None now:
# vega-tooltip's and the survey page's inline styles moved to stylesheets (console.css, survey.css).
KNOWN_PROBLEMS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {}
IGNORED = re.compile(r"/favicon\.ico$")  # chromium asks for it; the app serves none (404)


@pytest.fixture
def console_errors(page: Any) -> list[str]:
    """Errors the page reports from now on: ``"<source>: <text>"``, known problems left out."""
    return collect_errors(page, allow=tuple(KNOWN_PROBLEMS))


def collect_errors(page: Any, *, allow: tuple[str, ...] = ()) -> list[str]:
    """Listen to ``page`` and return the (growing) list of its errors, except those named in ``allow``."""
    found: list[str] = []

    def on_console(message: Any) -> None:
        if message.type != "error":
            return
        source = str(message.location.get("url") or page.url)
        if IGNORED.search(source):
            return
        for name in allow:
            text, where = KNOWN_PROBLEMS[name]
            if text.search(message.text) and where.search(source):
                return
        found.append(f"{source}: {message.text}")

    page.on("console", on_console)
    page.on("pageerror", lambda error: found.append(f"{page.url}: uncaught {error}"))
    return found


def eventually(check: Callable[[], Any], *, what: str, timeout: float = 90.0) -> Any:
    """``wait_until`` at a browser's pace (work the server does in the background, like its
    maintenance pass)."""
    return wait_until(check, what=what, timeout=timeout, interval=0.25)


def sign_in(page: Any, server: Server, username: str, path: str = "/console/login") -> None:
    """Fill the sign-in form as a person would."""
    page.goto(path)
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(server.world.password)
    page.get_by_role("button", name="Se connecter").click()
