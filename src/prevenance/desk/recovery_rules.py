"""Service recovery, the rules without I/O: which answer opens a case, when it is due, what state an
open case is in now, how a case may be closed, and the report's figures.

A customer who says the service failed is called back before the brand sells them anything again:
a recommend score of 0–6 (a detractor) or a "poor"/"very poor" (1–2) on the five-point interaction
item opens one case, due within ``due_hours`` (24 by default) of the answer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prevenance.common.stats import wilson_bounds

DEFAULT_DUE_HOURS = 24
DETRACTOR_MAX = 6  # recommend 0–6: a detractor
POOR_MAX = 2  # interaction 1 "very poor", 2 "poor"
PROMOTER_MIN = 9  # recommend 9–10: a promoter
OUTCOMES = ("called_back", "resolved", "goodwill_given", "customer_declined")
RECOVERED = frozenset({"called_back", "resolved", "goodwill_given"})
"""Outcomes where the brand reached the customer and made it right; ``customer_declined`` is a case
closed without recovery."""
STATES = ("open", "due", "breached", "closed")
CAUSES = ("recommend", "interaction", "manual")


def cause_of(recommend: int | None, interaction: int | None) -> str | None:
    """What in an answer opens a recovery case (``recommend`` first), or None when nothing does."""
    if recommend is not None and 0 <= recommend <= DETRACTOR_MAX:
        return "recommend"
    if interaction is not None and 1 <= interaction <= POOR_MAX:
        return "interaction"
    return None


def rated_score(cause: str, recommend: int | None, interaction: int | None) -> int | None:
    """The score of the answer that opened the case: the recommend answer (0–10) or the five-point
    interaction item (1–5); none for a case opened by hand."""
    return {"recommend": recommend, "interaction": interaction}.get(cause)


def due_at(opened_from: datetime, hours: int = DEFAULT_DUE_HOURS) -> datetime:
    """When a case must be closed: ``hours`` after the answer that opened it."""
    if hours < 1:
        raise ValueError("due hours must be at least 1")
    return opened_from + timedelta(hours=hours)


def state(*, closed: bool, due: datetime, now: datetime) -> str:
    """``closed``; else ``breached`` once its due time has passed, ``due`` while it is still ahead.

    ``open`` is not a state of one case but the filter for both ``due`` and ``breached``."""
    if closed:
        return "closed"
    return "breached" if now >= due else "due"


def matches(wanted: str, case_state: str) -> bool:
    """Whether a case in ``case_state`` is listed under the filter ``wanted``."""
    return wanted == case_state or (wanted == "open" and case_state in ("due", "breached"))


def is_promoter(recommend: int | None) -> bool:
    return recommend is not None and recommend >= PROMOTER_MIN


@dataclass(frozen=True)
class ReportCase:
    """What the report needs of a case opened in the month."""

    closed: bool
    outcome: str | None
    follow_up_recommend: int | None


def _share(successes: int, n: int) -> dict[str, Any]:
    if n == 0:
        return {"n": 0, "successes": 0, "value": None, "ci_low": None, "ci_high": None}
    low, high = wilson_bounds(successes, n)
    return {"n": n, "successes": successes, "value": successes / n, "ci_low": low, "ci_high": high}


def report(cases: Iterable[ReportCase]) -> dict[str, Any]:
    """The recovery rate (cases closed with a recovering outcome, out of the cases opened) and the
    share of recovered members whose next answer (with a recommend score) is a promoter, out of the
    recovered cases followed by such an answer; Wilson 95% intervals, None when nothing is counted."""
    rows = list(cases)
    recovered = [c for c in rows if c.closed and c.outcome in RECOVERED]
    followed = [c for c in recovered if c.follow_up_recommend is not None]
    promoters = sum(1 for c in followed if is_promoter(c.follow_up_recommend))
    outcomes = {name: sum(1 for c in rows if c.outcome == name) for name in OUTCOMES}
    return {
        "opened": len(rows),
        "closed": sum(1 for c in rows if c.closed),
        "outcomes": outcomes,
        "recovery_rate": _share(len(recovered), len(rows)),
        "next_answer_promoter": _share(promoters, len(followed)),
    }
