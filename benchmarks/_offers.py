"""An offer definition shared by the benchmarks that run the offer decision. Not a test."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any


def bench_offer(
    *, merchant: str, category: str, cap: int, now: datetime, categories: list[str], decision_days: int
) -> dict[str, Any]:
    """A bonus-points offer at ``merchant`` valid around ``now``, ``cap`` per member, no budget,
    open to payments in ``categories`` (every category when empty), each offer made valid for
    ``decision_days``."""
    return {
        "partner_merchant": merchant,
        "partner_category": category,
        "reward_kind": "bonus_points",
        "reward": {"points": 100},
        "eligibility": {"categories": categories} if categories else {},
        "cap_per_member": cap,
        "budget_points": None,
        "unit_cost_eur": "1",
        "margin_rate": "0.05",
        "decision_days": decision_days,
        "valid_from": now - timedelta(days=1),
        "valid_until": now + timedelta(days=30),
        "title_fr": "Offre",
        "title_en": "Offer",
        "text_fr": "Offre de test",
        "text_en": "Test offer",
    }
