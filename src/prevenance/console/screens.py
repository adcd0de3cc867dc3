"""``make screens``: a PNG of each console screen in ``docs/screens/``, taken by Debian's chromium.

Starts a real server (uvicorn) over a temporary SQLite database filled by ``console.showcase``, signs
in as each role and photographs its screens, the member portal at a phone's size. The browser tests
start their server the same way (``start_server``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prevenance.console import showcase
from prevenance.db import make_engine

CHROMIUM = Path(os.environ.get("PREVENANCE_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@dataclass(frozen=True)
class Server:
    url: str
    world: showcase.Showcase
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(directory: Path) -> Server:
    """Fill a fresh database in ``directory`` and serve it with uvicorn on a free port; returns once
    ``/healthz`` answers."""
    url = f"sqlite:///{directory / 'console.db'}"
    engine = make_engine(url)
    world = showcase.build(engine, now=datetime.now(UTC))
    engine.dispose()
    port = free_port()
    env = {**os.environ, "PREVENANCE_DATABASE_URL": url, "PREVENANCE_SECRET_KEY": os.urandom(16).hex()}
    log_path = directory / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "prevenance.asgi:app", "--host", "127.0.0.1", "--port", str(port),
             "--log-level", "warning"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=1) as answer:
                if answer.status == 200:
                    return Server(base, world, process)
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            raise RuntimeError("the server did not start:\n" + log_path.read_text())
        time.sleep(0.1)


def launch(playwright: Any) -> Any:
    """Debian's chromium, headless (never a downloaded browser)."""
    return playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)


def sign_in(page: Any, world: showcase.Showcase, username: str) -> None:
    page.goto("/console/login")
    page.fill("#f-username", username)
    page.fill("#f-password", world.password)
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def take(out: Path) -> list[Path]:
    """Photograph every screen into ``out``; returns the files written."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as directory:
        server = start_server(Path(directory))
        world = server.world
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)

                def shoot(name: str, username: str | None, path: str, *, phone: bool = False,
                          lang: str = "fr", before: Any = None) -> None:  # fmt: skip
                    size = {"width": 390, "height": 844} if phone else {"width": 1366, "height": 900}
                    context = browser.new_context(base_url=server.url, viewport=size, locale=f"{lang}-FR")
                    page = context.new_page()
                    if username:
                        sign_in(page, world, username)
                    if lang != "fr":
                        page.goto(f"/console/lang?to={lang}&next=/console/")
                    page.goto(path)
                    page.wait_for_load_state("networkidle")
                    if before:
                        before(page)
                    target = out / f"{name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    written.append(target)
                    context.close()

                def type_search(page: Any) -> None:
                    page.locator("#f-q").press_sequentially("cam", delay=20)
                    page.wait_for_selector("#results table")

                def charts_drawn(page: Any) -> None:
                    page.wait_for_selector("#chart-cards svg")

                shoot("01-sign-in", None, "/console/login")
                shoot("02-agent-search", "agent", "/console/desk", before=type_search)
                shoot("03-member-360", "agent", f"/console/members/{world.member_ref}")
                shoot("04-member-360-en", "agent", f"/console/members/{world.member_ref}", lang="en")
                shoot(
                    "05-concierge-board",
                    "concierge",
                    f"/console/concierge?member={world.member_ref}&q=bouquet",
                )
                shoot("06-supervisor-dashboard", "supervisor", f"/console/dashboard?month={world.month}",
                      before=charts_drawn)  # fmt: skip
                shoot("07-member-portal-phone", "camille", "/portal/", phone=True)
                shoot("08-refused", "concierge", "/console/desk")
                browser.close()
        finally:
            server.stop()
    return written


def main() -> None:
    """Entry point of ``make screens``."""
    out = Path(sys.argv[1]) if len(sys.argv) > 1 else Path("docs/screens")
    for path in take(out):
        print(path)


if __name__ == "__main__":
    main()
