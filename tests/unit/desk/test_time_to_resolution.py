"""Time to resolution counts the repeat contacts: the matter ends when the last repeat is resolved."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prevenance.desk.resolution import time_to_resolution

T0 = datetime(2026, 3, 1, 9, tzinfo=UTC)
WEEK = timedelta(days=7)
H = timedelta(hours=1)


def test_a_case_without_repeat_takes_its_own_time() -> None:
    assert time_to_resolution(first_started_at=T0, resolved_at=T0 + H, repeats=[], window=WEEK) == H


def test_a_repeat_within_the_window_extends_the_matter_to_its_resolution() -> None:
    repeats = [(T0 + 48 * H, T0 + 50 * H)]
    assert time_to_resolution(first_started_at=T0, resolved_at=T0 + H, repeats=repeats, window=WEEK) == 50 * H


def test_repeats_chain_and_an_open_repeat_leaves_the_matter_open() -> None:
    chained = [(T0 + 8 * 24 * H, T0 + 8 * 24 * H + H), (T0 + 48 * H, T0 + 49 * H)]  # the 2nd reaches the 1st
    took = time_to_resolution(first_started_at=T0, resolved_at=T0 + H, repeats=chained, window=WEEK)
    assert took == 8 * 24 * H + H
    still_open = [(T0 + 48 * H, None)]
    assert (
        time_to_resolution(first_started_at=T0, resolved_at=T0 + H, repeats=still_open, window=WEEK) is None
    )


def test_contacts_before_or_long_after_are_not_repeats_and_an_open_case_has_no_time() -> None:
    unrelated = [(T0 - 24 * H, None), (T0 + 30 * 24 * H, None)]
    assert time_to_resolution(first_started_at=T0, resolved_at=T0 + H, repeats=unrelated, window=WEEK) == H
    assert time_to_resolution(first_started_at=T0, resolved_at=None, repeats=[], window=WEEK) is None
