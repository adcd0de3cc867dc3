"""Browser tests: a real uvicorn server over a temporary SQLite database (migrated and filled by
``console.showcase``) driven by Debian's chromium through Playwright. One server and one browser per
module; each test gets a fresh browser context (its own cookies).

Without ``/usr/bin/chromium`` the tests are skipped, except with ``CI=true`` where they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from prevenance.console.screens import CHROMIUM, Server, launch, start_server

IN_CI = os.environ.get("CI", "").lower() == "true"


def chromium_or_skip() -> Path:
    """Debian's chromium; fail in CI, skip elsewhere, when it is missing."""
    if not CHROMIUM.exists():
        if IN_CI:
            pytest.fail(f"CI=true but {CHROMIUM} is missing: install Debian's chromium (.ci/run does)")
        pytest.skip(f"browser tests need {CHROMIUM} (Debian package chromium)")
    return CHROMIUM


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    chromium_or_skip()
    running = start_server(tmp_path_factory.mktemp("e2e"))
    yield running
    running.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    chromium_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = launch(playwright)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any, server: Server) -> Iterator[Any]:
    context = browser.new_context(base_url=server.url, locale="fr-FR")
    context.set_default_timeout(10_000)
    tab = context.new_page()
    yield tab
    context.close()


def sign_in(page: Any, server: Server, username: str, path: str = "/console/login") -> None:
    """Fill the sign-in form as a person would."""
    page.goto(path)
    page.get_by_label("Identifiant").fill(username)
    page.get_by_label("Mot de passe").fill(server.world.password)
    page.get_by_role("button", name="Se connecter").click()
