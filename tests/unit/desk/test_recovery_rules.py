"""What opens a service-recovery case, which score it shows, and when it is due or breached."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from prevenance.desk import recovery_rules as rules

NOW = datetime(2026, 11, 2, 9, tzinfo=UTC)


@pytest.mark.parametrize(
    ("recommend", "interaction", "cause"),
    [
        (0, None, "recommend"),
        (6, 5, "recommend"),  # recommend first
        (7, 2, "interaction"),  # a passive who rated the contact poor
        (7, 1, "interaction"),
        (7, 3, None),
        (9, None, None),
        (None, None, None),
    ],
)
def test_a_detractor_or_a_poor_rating_opens_a_case(
    recommend: int | None, interaction: int | None, cause: str | None
) -> None:
    assert rules.cause_of(recommend, interaction) == cause
    if cause is not None:
        assert rules.rated_score(cause, recommend, interaction) == (
            recommend if cause == "recommend" else interaction
        )


def test_a_case_opened_by_hand_shows_no_score() -> None:
    assert rules.rated_score("manual", 3, 1) is None


def test_due_then_breached_at_its_due_time_and_closed_whatever_the_time() -> None:
    due = rules.due_at(NOW)
    assert due == NOW + timedelta(hours=24)
    assert rules.state(closed=False, due=due, now=due - timedelta(seconds=1)) == "due"
    assert rules.state(closed=False, due=due, now=due) == "breached"
    assert rules.state(closed=True, due=due, now=due + timedelta(days=3)) == "closed"
    assert rules.matches("open", "due") and rules.matches("open", "breached")
    assert not rules.matches("open", "closed")
    with pytest.raises(ValueError):
        rules.due_at(NOW, hours=0)
