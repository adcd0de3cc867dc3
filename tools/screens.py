"""``make screens``: a PNG of each console screen in ``docs/screens/``, taken by Debian's chromium.

Starts a real server (uvicorn) over a temporary SQLite database filled by ``demo.showcase`` plus
six months of survey answers and market barometers (``add_voice_history``, so the voice and executive
screens have something to draw), signs in as each role and photographs its screens; the member portal
and the survey page at a phone's size. The browser tests start their server the same way
(``start_server``).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from prevenance.common import outbox
from prevenance.db import make_engine, unit_of_work
from prevenance.demo import showcase
from prevenance.voice import invitations
from prevenance.voice import rules as voice_rules
from prevenance.voice import service as voice

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
    database_url: str
    secret_key: str

    def survey_link(self, invitation_id: str, *, now: datetime) -> str:
        """The signed link of an invitation, as the mail the member gets would carry it."""
        return f"{self.url}/survey/{invitations.sign(invitation_id, secret=self.secret_key, now=now)}"

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


# Members of the showcase with their country and language; agent k works in team TEAMS[k % 3] as there.
VOICE_MEMBERS = (("SC-0001", "FR", "fr"), ("SC-0002", "FR", "fr"), ("SC-0003", "GB", "en"),
                 ("SC-0004", "FR", "fr"), ("SC-0005", "IT", "en"))  # fmt: skip
COUNTRY_STYLE = {"FR": 0.0, "GB": 1.5, "IT": 0.5}  # answer styles, as in ``demo.voice``
COMMENTS = {
    "fr": ["Conseiller très aimable et efficace.", "Beaucoup trop d'attente au téléphone.",
           "Problème réglé du premier coup, merci."],
    "en": ["Very friendly and helpful adviser.", "Far too long on hold.", "Solved first time, thank you."],
}  # fmt: skip
SUGGESTIONS = {
    "fr": [
        "Proposer un rappel automatique plutôt que l'attente.",
        "Pouvoir bloquer la carte depuis l'application.",
    ],
    "en": ["Offer a call back instead of waiting on hold.", "Let me freeze my card in the app."],
}
VOICE_ANSWERS = 240  # one every 18 hours: six months of history


def add_voice_history(engine: Engine, *, now: datetime) -> None:
    """Six months of survey answers (imported as post-call surveys, through ``voice.service``), a
    published scorecard for last month and four quarters of barometers; deterministic."""
    rng = random.Random(7)
    rows: list[dict[str, str | None]] = []
    for n in range(VOICE_ANSWERS):
        ref, country, language = VOICE_MEMBERS[n % len(VOICE_MEMBERS)]
        agent = n % 6
        experience = rng.gauss(7.0 + (agent - 2.5) * 0.4, 1.6)
        recommend = max(0, min(10, round(experience + COUNTRY_STYLE[country])))
        interaction = max(1, min(5, round(1 + (experience - 2.0) / 2.0)))
        comment = rng.choice(COMMENTS[language]) if n % 5 == 0 else None
        suggestion = SUGGESTIONS[language][n % 2] if n % 23 == 0 else None
        rows.append({
            "id": f"SC-V{n}", "member_ref": ref, "answered_at": (now - timedelta(hours=18 * n + 1)).isoformat(),
            "agent": f"agent-{agent}", "team": showcase.TEAMS[agent % len(showcase.TEAMS)],
            "channel": ("phone", "email", "chat")[(n // 6) % 3], "reason": showcase.REASONS[n % len(showcase.REASONS)],
            "recommend": str(recommend), "interaction": str(interaction), "comment": comment,
            "suggestion": suggestion, "language": language, "country": country,
        })  # fmt: skip
    quarter = voice_rules.quarter_of(now.strftime("%Y-%m"))
    barometers = [
        {"source": "Baromètre relation client", "country": country, "quarter": q, "metric": "rtf",
         "value": f"{18.0 + style * 8 + i:.1f}", "n": "1000"}
        for i, q in enumerate(voice_rules.previous_quarters(quarter, 4))
        for country, style in COUNTRY_STYLE.items()
    ]  # fmt: skip
    last_month = (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
    with unit_of_work(engine) as session:
        voice.import_answers(session, rows=rows, now=now)
        voice.import_barometers(session, rows=barometers, now=now)
        voice.publish_scorecard(
            session, month=last_month, by="Claire Supervisor", reason="monthly close", now=now
        )


def deliver_events(engine: Engine, *, now: datetime) -> None:
    """Hand the world's pending events to the in-process handlers (each closed contact gets its survey
    invitation) before the server starts, so screens and tests do not wait for its maintenance pass."""
    from prevenance.maintenance import HANDLERS

    with unit_of_work(engine) as session:
        while outbox.deliver_pending(session, handlers=HANDLERS, now=now, limit=1000):
            pass


def start_server(directory: Path) -> Server:
    """Fill a fresh database in ``directory`` and serve it with uvicorn on a free port; returns once
    ``/healthz`` answers."""
    url = f"sqlite:///{directory / 'console.db'}"
    engine = make_engine(url)
    now = datetime.now(UTC)
    world = showcase.build(engine, now=now)
    add_voice_history(engine, now=now)
    deliver_events(engine, now=now)
    engine.dispose()
    port = free_port()
    secret = os.urandom(16).hex()
    env = {**os.environ, "PREVENANCE_DATABASE_URL": url, "PREVENANCE_SECRET_KEY": secret}
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
                    return Server(base, world, process, url, secret)
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


def report_console(page: Any, message: Any) -> None:
    """Print a console error (a failed script or request, a CSP violation) with the page and source."""
    if message.type == "error":
        where = message.location.get("url") or page.url
        print(f"{page.url}: console error ({where}): {message.text}", file=sys.stderr)


CHARTS_PENDING = "[data-spec]:not([data-drawn]):not([data-error])"
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 900}


def charts_settled(page: Any) -> None:
    """Wait until vega-embed has drawn (or failed to draw) every chart of the page."""
    from playwright.sync_api import expect

    expect(page.locator(CHARTS_PENDING)).to_have_count(0, timeout=60_000)


def take(out: Path) -> list[Path]:
    """Photograph every screen into ``out``; returns the files written. Console errors (a script that
    failed, a Content-Security-Policy violation) and charts that failed are printed on stderr."""
    from playwright.sync_api import sync_playwright

    out.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as directory:
        server = start_server(Path(directory))
        world = server.world
        try:
            with sync_playwright() as playwright:
                browser = launch(playwright)

                def open_page(phone: bool, lang: str) -> Any:
                    context = browser.new_context(
                        base_url=server.url, viewport=PHONE if phone else DESKTOP, locale=f"{lang}-FR"
                    )
                    page = context.new_page()
                    page.on("console", lambda m: report_console(page, m))
                    page.on("pageerror", lambda e: print(f"{page.url}: page error: {e}", file=sys.stderr))
                    return page

                def save(page: Any, name: str) -> None:
                    page.wait_for_load_state("networkidle")
                    for failed in page.locator("[data-error]").all():
                        print(f"{name}: chart failed: {failed.get_attribute('data-error')}", file=sys.stderr)
                    target = out / f"{name}.png"
                    page.screenshot(path=str(target), full_page=True)
                    written.append(target)

                def shoot(name: str, username: str | None, path: str, *, phone: bool = False,
                          lang: str = "fr", before: Any = None) -> None:  # fmt: skip
                    page = open_page(phone, lang)
                    if username:
                        sign_in(page, world, username)
                    if lang != "fr":
                        page.goto(f"/console/lang?to={lang}&next=/console/")
                    page.goto(path)
                    page.wait_for_load_state("networkidle")
                    if before:
                        before(page)
                    save(page, name)
                    page.context.close()

                def type_search(page: Any) -> None:
                    page.locator("#f-q").press_sequentially("cam", delay=20)
                    page.wait_for_selector("#results table")

                last_month = (datetime.now(UTC).replace(day=1) - timedelta(days=1)).strftime("%Y-%m")
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
                      before=charts_settled)  # fmt: skip
                shoot("07-member-portal-phone", "camille", "/portal/", phone=True)
                shoot("08-refused", "concierge", "/console/desk")
                shoot("09-voice", "supervisor", f"/console/voice?month={last_month}", before=charts_settled)
                shoot("10-marketing", "admin", "/console/marketing")
                shoot("11-executive", "supervisor", f"/console/executive?quarter={voice_rules.quarter_of(last_month)}",
                      before=charts_settled)  # fmt: skip
                # The survey a showcase contact earned, answered on a phone: form, thanks, link used again.
                page = open_page(True, "fr")
                link = server.survey_link(invitations.invitation_id_for("SC-C1"), now=datetime.now(UTC))
                page.goto(link)
                save(page, "12-survey-phone")
                page.get_by_role("radio", name="8", exact=True).check()
                page.get_by_role("radio", name="Très bien").check()
                page.get_by_label("Un commentaire ? (facultatif)").fill("Conseiller patient, problème réglé.")
                page.get_by_role("button", name="Envoyer mon avis").click()
                page.get_by_role("heading", name="Merci !").wait_for()
                save(page, "13-survey-thanks-phone")
                page.goto(link)
                save(page, "14-survey-used-phone")
                page.context.close()
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
