"""The portal's movements: every posting reason in the member's words (FR and EN, never a raw
catalogue key), listed by when the posting was made, newest first — even when an older movement was
posted after a newer one."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import Engine

import prevenance
from prevenance.common.clock import FrozenClock
from prevenance.console.i18n import catalogue
from prevenance.customers import service as customers
from prevenance.db import unit_of_work
from prevenance.loyalty import ledger
from tests.conftest import Api
from tests.integration.console.support import browser, sign_in

# Reasons colleagues add to the ledger; translated ahead so the portal never shows their key.
COMING_REASONS = tuple(r for r in ("goodwill", "expiry") if r not in ledger.REASONS)


def _reasons_in_code() -> set[str]:
    """Every ``reason="…"`` literal in a module that posts to the ledger (postings are made with one)."""
    root = Path(prevenance.__file__).parent
    found: set[str] = set()
    for path in root.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        if "ledger.post(" in text or "credit_member(" in text:
            found |= set(re.findall(r'\breason="([a-z_]+)"', text))
    return found


@pytest.mark.parametrize("language", ["fr", "en"])
def test_every_posting_reason_has_words_in_both_languages(language: str) -> None:
    words = catalogue(language)
    reasons = set(ledger.REASONS) | set(COMING_REASONS)
    for reason in reasons:
        assert words.get(f"reason.{reason}", "").strip(), (language, reason)
        assert "reason." not in words[f"reason.{reason}"]
    assert len({words[f"reason.{r}"] for r in reasons}) == len(reasons)


def test_every_reason_a_posting_is_made_with_is_a_known_reason() -> None:
    posted = _reasons_in_code()
    assert "earn" in posted and "expiry" in posted
    assert posted <= set(ledger.REASONS) | set(COMING_REASONS), posted - set(ledger.REASONS)


def _backdated_offer_reward(engine: Engine, clock: FrozenClock, ref: str, days: int) -> None:
    """An offer reward posted now but dated before the member's purchase (as a backfill would)."""
    with unit_of_work(engine) as session:
        member = customers.get_member(session, ref=ref)
        ledger.post(
            session,
            debit=ledger.system_account(session, name="issuance", unit="points"),
            credit=ledger.member_account(session, member_id=member.id, unit="points"),
            amount=7,
            reason="offer_reward",
            reference=f"offer-{ref}",
            key=f"offer-{ref}",
            now=clock.now() - timedelta(days=days),
        )


def _movement_labels(html: str) -> list[str]:
    section = html[html.index('id="h-movements"') if 'id="h-movements"' in html else 0 :]
    return [unescape(m) for m in re.findall(r"<li><span>([^<]+)<br>", section)]


@pytest.mark.parametrize(
    ("username", "ref", "words"),
    [
        ("camille", "M1", ("Récompense d'offre", "Achat par carte")),
        ("jean", "M2", ("Offer reward", "Card purchase")),
    ],
)
def test_the_portal_names_each_reason_and_lists_newest_first(
    world: Api, engine: Engine, clock: FrozenClock, username: str, ref: str, words: tuple[str, str]
) -> None:
    offer, purchase = words
    _backdated_offer_reward(engine, clock, ref, days=3)  # posted after the purchase, dated before it
    client = browser(world)
    sign_in(client, username)
    page = client.get("/portal/")
    assert page.status_code == 200
    assert "reason.offer_reward" not in page.text and "reason." not in page.text
    labels = _movement_labels(page.text)
    assert labels[:2] == [purchase, offer], labels
