"""Helpers of the offers tests: an offer definition, members of a chosen arm, payments."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import Engine

from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.db import unit_of_work
from prevenance.offers import rules
from tests.conftest import Api, tx_body
from tests.factories import put_member


def offer_def(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "partner_merchant": "Librairie",
        "partner_category": "books",
        "reward_kind": "bonus_points",
        "reward": {"points": 100},
        "eligibility": {},
        "cap_per_member": 1,
        "budget_points": None,
        "unit_cost_eur": "1.00",
        "margin_rate": "0.05",
        "expected_spend_eur": "100",
        "holdout_share": "0.10",
        "valid_from": "2025-12-01T00:00:00Z",
        "valid_until": "2026-03-01T00:00:00Z",
        "title_fr": "100 points chez Librairie",
        "title_en": "100 points at Librairie",
        "text_fr": "Activez l'offre puis payez chez Librairie.",
        "text_en": "Activate the offer, then pay at Librairie.",
    }
    body.update(overrides)
    return body


def refs_in_arm(offer_id: str, arm: str, count: int, prefix: str = "M", share: str = "0.10") -> list[str]:
    """Member refs the hash puts in ``arm`` of ``offer_id`` (so a test knows what to expect)."""
    found: list[str] = []
    i = 0
    while len(found) < count:
        ref = f"{prefix}{i}"
        if rules.arm_of(ref, offer_id, Decimal(share)) == arm:
            found.append(ref)
        i += 1
    return found


add_member = put_member


def pay(api: Api, tx_id: str, ref: str, **overrides: Any) -> Any:
    response = api.post("/v1/transactions", tx_body(tx_id, ref, **overrides), role="integrator")
    assert response.status_code in (200, 201), response.text
    return response.json()


def member_headers(engine: Engine, clock: FrozenClock, ref: str) -> dict[str, str]:
    with unit_of_work(engine) as session:
        _, secret = create_key(session, role="member", name=f"member-{ref}", member_ref=ref, now=clock.now())
    return {"Authorization": f"Bearer {secret}"}
