"""The chat's rules without a database: moments offered, the channel offered elsewhere, message
checks, gaps in sequence numbers, waiting and handling times by hour."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from prevenance.common.problems import InvalidInput
from prevenance.desk.chat import config
from prevenance.desk.chat.rules import (
    ChatTimes,
    FoundMoment,
    check_teams,
    check_text,
    fastest_other_channel,
    is_refused_redemption,
    missed,
    offered_moments,
    parse_config,
    times_by_hour,
)

NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)
REASONS = {"card.lost_stolen", "account.details"}


def test_moments_are_offered_by_priority_then_newest_and_unconfigured_ones_are_left_out() -> None:
    found = [
        FoundMoment("redemption_refused", "R9", NOW - timedelta(hours=1)),
        FoundMoment("incident", "I1", NOW - timedelta(days=2)),
        FoundMoment("incident", "I2", NOW - timedelta(days=1)),
        FoundMoment("recovery_case", "K1", NOW),
        FoundMoment("birthday", "B1", NOW),  # not configured in the shipped file
    ]
    assert [m.ref for m in offered_moments(found, config.current())] == ["I2", "I1", "R9", "K1"]


def test_a_refused_redemption_counts_for_the_configured_days_only() -> None:
    policy = config.current()
    assert is_refused_redemption(status="voided", resolved_at=NOW - timedelta(days=6), now=NOW, config=policy)
    assert not is_refused_redemption(
        status="voided", resolved_at=NOW - timedelta(days=8), now=NOW, config=policy
    )
    assert not is_refused_redemption(status="confirmed", resolved_at=NOW, now=NOW, config=policy)


def test_outside_a_moment_the_fastest_measured_channel_but_never_chat() -> None:
    order = ("chat", "callback", "phone", "web")
    channels = [
        {"channel": "chat", "median_hours": 0.1, "enough_data": True},
        {"channel": "phone", "median_hours": 2.0, "enough_data": True},
        {"channel": "web", "median_hours": 1.0, "enough_data": True},
        {"channel": "callback", "median_hours": 0.5, "enough_data": False},
    ]
    assert fastest_other_channel(channels, order) == "web"
    assert fastest_other_channel([], order) == "callback"


def test_messages_and_teams_are_checked() -> None:
    policy = config.current()
    assert check_text("  bonjour ", policy) == "bonjour"
    with pytest.raises(InvalidInput):
        check_text("   ", policy)
    with pytest.raises(InvalidInput):
        check_text("x" * (policy.max_message_chars + 1), policy)
    with pytest.raises(InvalidInput):  # PostgreSQL cannot store it; a socket passes no NUL guard
        check_text("a\x00b", policy)
    assert check_teams([" cards", "travel", "cards"]) == ["cards", "travel"]
    with pytest.raises(InvalidInput):
        check_teams([""])


def test_a_gap_in_sequence_numbers_is_seen() -> None:
    assert not missed(3, 4)
    assert missed(3, 5)


def test_configuration_refuses_unknown_moments_and_reasons() -> None:
    with pytest.raises(ValueError):
        parse_config(
            {"moments": {"party": {"team": "t", "reason": "card.lost_stolen", "priority": 1}}},
            reasons=REASONS,
        )
    with pytest.raises(ValueError):
        parse_config(
            {"moments": {"incident": {"team": "t", "reason": "nope", "priority": 1}}}, reasons=REASONS
        )


def test_waiting_counts_up_to_now_while_nobody_took_the_chat() -> None:
    at = NOW.replace(hour=9)
    rows = [
        ChatTimes(at, at + timedelta(seconds=60), at + timedelta(seconds=660)),
        ChatTimes(at, None, None),
    ]
    [hour] = times_by_hour(rows, now=at + timedelta(seconds=120))
    assert (hour["hour"], hour["chats"], hour["handled"]) == (9, 2, 1)
    assert (hour["wait_median_s"], hour["wait_p90_s"], hour["handle_median_s"]) == (90.0, 120.0, 600.0)
