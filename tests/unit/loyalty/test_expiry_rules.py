"""Points expiry rules: lots first in first out, holds, refunds, what is due and warned (no I/O)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest

from prevenance.loyalty import expiry_rules as rules
from prevenance.loyalty.expiry_rules import ExpiryPolicy, Movement
from prevenance.loyalty.programme import default_document
from prevenance.loyalty.rules import ProgrammeError, parse_programme

AFTER_12 = ExpiryPolicy(kind="after_earn", months=12)
IDLE_6 = ExpiryPolicy(kind="inactivity", months=6)


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=UTC)


def mv(pid: int, reason: str, amount: int, day: str, reference: str = "") -> Movement:
    return Movement(pid, reason, reference or f"ref{pid}", amount, at(day))


def test_add_months_keeps_the_day_or_the_last_of_a_shorter_month() -> None:
    assert rules.add_months(date(2024, 1, 31), 1) == date(2024, 2, 29)
    assert rules.add_months(date(2024, 3, 15), 12) == date(2025, 3, 15)
    assert rules.add_months(date(2024, 11, 30), 3) == date(2025, 2, 28)


def test_spending_consumes_the_oldest_lots_first() -> None:
    state = rules.replay(
        [
            mv(1, "earn", 100, "2024-01-10"),
            mv(2, "earn", 50, "2024-06-10"),
            mv(3, "redemption_catalogue", -120, "2024-07-01"),
        ]
    )
    assert [(lot.posting_id, lot.points) for lot in state.lots] == [(2, 30)]
    assert rules.due(state, AFTER_12, date(2025, 1, 10)) == []
    assert rules.due(state, AFTER_12, date(2025, 6, 10)) == [rules.Due(2, 30, date(2025, 6, 10))]


def test_only_the_lots_past_their_day_expire() -> None:
    state = rules.replay([mv(1, "earn", 100, "2024-01-10"), mv(2, "referral", 5000, "2024-03-01")])
    assert rules.due(state, AFTER_12, date(2025, 1, 9)) == []
    assert rules.due(state, AFTER_12, date(2025, 1, 10)) == [rules.Due(1, 100, date(2025, 1, 10))]
    assert sum(d.points for d in rules.due(state, AFTER_12, date(2025, 3, 1))) == 5100


def test_no_policy_never_expires_anything() -> None:
    state = rules.replay([mv(1, "earn", 100, "2001-01-10")])
    assert rules.due(state, rules.NO_EXPIRY, date(2099, 1, 1)) == []
    assert rules.warnings(state, rules.NO_EXPIRY, date(2099, 1, 1)) == []


def test_inactivity_expires_the_whole_balance_after_months_without_activity() -> None:
    state = rules.replay([mv(1, "earn", 100, "2024-01-10"), mv(2, "earn", 40, "2024-05-02")])
    assert rules.due(state, IDLE_6, date(2024, 11, 1)) == []
    assert rules.due(state, IDLE_6, date(2024, 11, 2)) == [
        rules.Due(1, 100, date(2024, 11, 2)),
        rules.Due(2, 40, date(2024, 11, 2)),
    ]
    # A redemption is activity: the clock starts again.
    later = rules.replay([mv(1, "earn", 100, "2024-01-10"), mv(2, "redemption_ecode", -10, "2024-10-30")])
    assert rules.due(later, IDLE_6, date(2024, 11, 2)) == []
    # A hold released by the system, and an expiry, are not the member's activity.
    idle = rules.replay(
        [mv(1, "earn", 100, "2024-01-10"), mv(2, "travel_hold_expired", 5, "2024-06-01", "h")]
    )
    assert idle.last_activity == at("2024-01-10")


def test_held_points_never_expire_and_a_release_gives_back_the_original_lots() -> None:
    history = [
        mv(1, "earn", 100, "2024-01-10"),
        mv(2, "earn", 100, "2024-06-10"),
        mv(3, "travel_hold", -150, "2024-12-01", "trip"),
    ]
    held = rules.replay(history)
    # 150 held: lot 1 entirely and 50 of lot 2; only 50 of lot 2 remain to expire.
    assert [(lot.posting_id, lot.points) for lot in held.lots] == [(2, 50)]
    assert rules.due(held, AFTER_12, date(2025, 1, 10)) == []
    released = rules.replay([*history, mv(4, "travel_void", 150, "2025-02-01", "trip")])
    assert [(lot.posting_id, lot.points) for lot in released.lots] == [(1, 100), (2, 100)]
    # Back in lot 1 with its own date: past it, so due at the next run.
    assert rules.due(released, AFTER_12, date(2025, 2, 1)) == [rules.Due(1, 100, date(2025, 1, 10))]


def test_a_confirmed_hold_keeps_the_points_spent() -> None:
    state = rules.replay([mv(1, "earn", 100, "2024-01-10"), mv(2, "travel_hold", -60, "2024-02-01", "trip")])
    assert state.balance == 40 and [(lot.posting_id, lot.points) for lot in state.lots] == [(1, 40)]


def test_a_refund_takes_back_its_own_transactions_lot_first() -> None:
    state = rules.replay(
        [
            mv(1, "earn", 100, "2024-01-10", "tx-old"),
            mv(2, "earn", 80, "2024-06-10", "tx-new"),
            mv(3, "refund", -80, "2024-06-20", "tx-new"),
        ]
    )
    assert [(lot.posting_id, lot.points) for lot in state.lots] == [(1, 100)]


def test_a_refund_of_spent_points_leaves_a_deficit_the_next_earns_pay_first() -> None:
    state = rules.replay(
        [
            mv(1, "earn", 100, "2024-01-10", "tx1"),
            mv(2, "redemption_catalogue", -100, "2024-02-01"),
            mv(3, "refund", -60, "2024-02-10", "tx1"),
            mv(4, "earn", 100, "2024-03-10", "tx2"),
        ]
    )
    assert state.balance == 40 and state.deficit == 0
    assert [(lot.posting_id, lot.points) for lot in state.lots] == [(4, 40)]
    negative = rules.replay([mv(1, "earn", 10, "2020-01-01", "t"), mv(2, "refund", -30, "2020-02-01", "t")])
    assert negative.balance == -20
    assert rules.due(negative, AFTER_12, date(2099, 1, 1)) == []


def test_an_expiry_consumes_the_lots_recorded_with_it() -> None:
    history = [
        mv(1, "earn", 100, "2024-01-10"),
        mv(2, "earn", 50, "2024-02-10"),
        mv(3, "expiry", -100, "2025-01-10"),
    ]
    state = rules.replay(history, {3: [(1, 100)]})
    assert [(lot.posting_id, lot.points) for lot in state.lots] == [(2, 50)]
    assert rules.due(state, AFTER_12, date(2025, 1, 10)) == []


def test_warnings_cover_the_lots_expiring_within_the_window() -> None:
    state = rules.replay([mv(1, "earn", 100, "2024-01-10"), mv(2, "earn", 50, "2024-03-10")])
    assert rules.warnings(state, AFTER_12, date(2024, 12, 10)) == []
    found = rules.warnings(state, AFTER_12, date(2024, 12, 11))
    assert found == [rules.Due(1, 100, date(2025, 1, 10))]
    assert rules.warning_key(7, AFTER_12, found[0]) == "lot:1:2025-01-10"
    # Due today is an expiry, not a warning.
    assert rules.warnings(state, AFTER_12, date(2025, 1, 10)) == []


def test_the_policy_section_is_checked_and_names_the_bad_key() -> None:
    assert rules.parse_policy(None) == rules.NO_EXPIRY
    assert rules.parse_policy({"kind": "after_earn", "months": 36}).months == 36
    for section, field in [
        ({"months": 36}, "points_expiry.kind"),
        ({"kind": "after_earn"}, "points_expiry.months"),
        ({"kind": "after_earn", "months": 0}, "points_expiry.months"),
        ({"kind": "inactivity", "months": True}, "points_expiry.months"),
        ({"kind": "none", "months": 3}, "points_expiry.months"),
        ({"kind": "none", "days": 3}, "points_expiry.days"),
        ("36 months", "points_expiry"),
    ]:
        with pytest.raises(rules.ExpiryPolicyError) as error:
            rules.parse_policy(section)
        assert error.value.field == field, section


def test_the_programme_refuses_unknown_keys_but_reads_old_versions() -> None:
    document = {**default_document(), "points_expiry_months": 36}
    with pytest.raises(ProgrammeError) as error:
        parse_programme(document)
    assert error.value.field == "points_expiry_months"
    assert parse_programme(document, strict=False).points_expiry == rules.NO_EXPIRY
    legacy = {**default_document(), "points_expiry": {"months": 36}}
    with pytest.raises(ProgrammeError):
        parse_programme(legacy)
    assert parse_programme(legacy, strict=False).points_expiry == rules.NO_EXPIRY
    assert parse_programme(default_document()).points_expiry == rules.NO_EXPIRY
    accepted = {**default_document(), "points_expiry": {"kind": "inactivity", "months": 24}, "goodwill": {}}
    assert parse_programme(accepted).points_expiry == ExpiryPolicy("inactivity", 24)
