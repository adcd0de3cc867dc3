"""The desk's rules read as a specification: no database, no clock but the one passed in."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prevenance.desk import rules

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
LATER = T0 + timedelta(days=30)


def shipped() -> rules.DeskConfig:
    text = resources.files("prevenance.desk").joinpath("desk_config.json").read_text("utf-8")
    return rules.parse_config(json.loads(text))


def resolved_case(contacts: int = 1, first_outcome: str = "resolved") -> rules.CaseFacts:
    return rules.CaseFacts(
        status="resolved",
        contacts=contacts,
        first_outcome=first_outcome,
        first_started_at=T0,
        resolved_at=T0 + timedelta(minutes=10),
    )


# --- taxonomy -----------------------------------------------------------------------------------


def test_shipped_taxonomy_is_two_levels_with_french_and_english_labels() -> None:
    config = shipped()
    lost = config.reasons["card.lost_stolen"]
    assert (lost.group, lost.label_en, lost.label_fr) == (
        "card",
        "Lost or stolen card",
        "Carte perdue ou volée",
    )
    for code in ("statement.question", "statement.dispute", "rewards.balance", "travel.booking"):
        assert code in config.reasons
    assert {r.group for r in config.reasons.values()} >= {"card", "complaint", "concierge", "travel"}
    assert config.fcr_window == WEEK


def test_a_reason_without_both_labels_is_refused_naming_its_path() -> None:
    document = {
        "reasons": {"card": {"fr": "Carte", "en": "Card", "children": {"lost": {"fr": "Perdue"}}}},
        "card_replacement": {},
    }
    with pytest.raises(rules.ConfigError) as error:
        rules.parse_config(document)
    assert error.value.field == "reasons.card.children.lost"


def test_the_fcr_window_is_configurable() -> None:
    document = {
        "fcr_window_days": 3,
        "reasons": {"a": {"fr": "A", "en": "A", "children": {"b": {"fr": "B", "en": "B"}}}},
        "card_replacement": {},
    }
    assert rules.parse_config(document).fcr_window == timedelta(days=3)


# --- first-contact resolution -------------------------------------------------------------------


def test_a_case_resolved_at_its_only_contact_with_no_repeat_in_the_window_is_fcr() -> None:
    assert rules.first_contact_resolved(resolved_case(), same_reason_contacts=[], window=WEEK, now=LATER)


def test_a_new_contact_on_the_same_reason_within_the_window_breaks_fcr() -> None:
    repeat = [T0 + timedelta(days=6)]
    assert (
        rules.first_contact_resolved(resolved_case(), same_reason_contacts=repeat, window=WEEK, now=LATER)
        is False
    )


def test_a_contact_after_the_window_does_not_break_fcr() -> None:
    after = [T0 + timedelta(days=8)]
    assert (
        rules.first_contact_resolved(resolved_case(), same_reason_contacts=after, window=WEEK, now=LATER)
        is True
    )


def test_a_contact_before_the_case_does_not_count_as_a_repeat() -> None:
    before = [T0 - timedelta(days=1)]
    assert (
        rules.first_contact_resolved(resolved_case(), same_reason_contacts=before, window=WEEK, now=LATER)
        is True
    )


def test_fcr_is_undetermined_while_the_window_is_open() -> None:
    now = T0 + timedelta(days=2)
    assert (
        rules.first_contact_resolved(resolved_case(), same_reason_contacts=[], window=WEEK, now=now) is None
    )


def test_a_repeat_decides_fcr_even_before_the_window_closes() -> None:
    now = T0 + timedelta(days=2)
    repeat = [T0 + timedelta(days=1)]
    assert (
        rules.first_contact_resolved(resolved_case(), same_reason_contacts=repeat, window=WEEK, now=now)
        is False
    )


def test_a_case_that_needed_a_second_contact_is_not_fcr() -> None:
    assert (
        rules.first_contact_resolved(
            resolved_case(contacts=2), same_reason_contacts=[], window=WEEK, now=LATER
        )
        is False
    )


def test_a_case_resolved_later_without_its_first_contact_resolving_it_is_not_fcr() -> None:
    case = resolved_case(first_outcome="pending")
    assert rules.first_contact_resolved(case, same_reason_contacts=[], window=WEEK, now=LATER) is False


def test_an_open_case_is_not_fcr() -> None:
    case = rules.CaseFacts("open", 1, "transferred", T0, None)
    assert rules.first_contact_resolved(case, same_reason_contacts=[], window=WEEK, now=LATER) is False


# --- Wilson interval ----------------------------------------------------------------------------


def test_wilson_matches_the_textbook_value() -> None:
    rate = rules.wilson(8, 10)
    assert rate.value == 0.8 and rate.n == 10
    assert rate.ci_low == pytest.approx(0.4902, abs=1e-4)
    assert rate.ci_high == pytest.approx(0.9433, abs=1e-4)


def test_wilson_of_nothing_is_unknown_not_zero() -> None:
    assert rules.wilson(0, 0) == rules.Rate(None, 0, None, None)


def test_wilson_keeps_an_honest_interval_at_zero_and_one_hundred_percent() -> None:
    all_good = rules.wilson(5, 5)
    assert all_good.ci_high == 1.0 and all_good.ci_low is not None and all_good.ci_low < 0.6


@given(
    st.integers(min_value=1, max_value=100_000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))
)
def test_wilson_interval_always_contains_the_share_and_stays_in_bounds(pair: tuple[int, int]) -> None:
    successes, n = pair
    rate = rules.wilson(successes, n)
    assert rate.ci_low is not None and rate.ci_high is not None and rate.value is not None
    assert 0.0 <= rate.ci_low <= rate.value + 1e-12 and rate.value - 1e-12 <= rate.ci_high <= 1.0


# --- emergency card replacement -----------------------------------------------------------------


def test_a_city_with_a_city_team_is_promised_two_hours() -> None:
    policy = shipped().card
    assert rules.promise_hours(policy, city="Paris", country="FR") == 2
    assert rules.promise_hours(policy, city="  london ", country="gb") == 2


def test_anywhere_else_is_promised_forty_eight_hours() -> None:
    policy = shipped().card
    assert rules.promise_hours(policy, city="Clermont-Ferrand", country="FR") == 48
    assert rules.promise_hours(policy, city="Paris", country="US") == 48  # Paris, Texas has no city team


def test_city_names_compare_without_accents_or_case() -> None:
    policy = rules.CardPolicy(2, 48, 0.25, (rules.CityTeam("Zürich", "CH"),))
    assert rules.has_city_team(policy, city="ZURICH", country="CH")


def state_at(minutes: int, delivered_after: int | None = None) -> str:
    policy = shipped().card
    due = T0 + timedelta(hours=2)
    delivered = T0 + timedelta(minutes=delivered_after) if delivered_after is not None else None
    return rules.replacement_state(
        ordered_at=T0, due_at=due, delivered_at=delivered, now=T0 + timedelta(minutes=minutes), policy=policy
    )


def test_an_order_is_on_track_then_at_risk_then_breached() -> None:
    assert state_at(60) == "on_track"
    assert state_at(91) == "at_risk"  # under a quarter of the promise left
    assert state_at(120) == "at_risk"  # due now: not yet late
    assert state_at(121) == "breached"


def test_a_delivered_order_was_on_time_or_late_whatever_the_time_now() -> None:
    assert state_at(500, delivered_after=119) == "delivered_on_time"
    assert state_at(500, delivered_after=121) == "delivered_late"


def test_status_moves_forward_one_step_and_a_repeat_is_a_no_op() -> None:
    assert rules.next_status("ordered", "dispatch") == "dispatched"
    assert rules.next_status("dispatched", "deliver") == "delivered"
    assert rules.next_status("dispatched", "dispatch") == "dispatched"
    assert rules.next_status("ordered", "deliver") is None
    assert rules.next_status("delivered", "dispatch") is None


# --- contact preference -------------------------------------------------------------------------


def test_marketing_never_reaches_a_customer_who_asked_to_be_left_alone() -> None:
    assert rules.may_send_marketing("leave_me_alone") is False
    assert rules.may_send_marketing("in_a_hurry") is True
    assert rules.may_send_marketing("has_time") is True
    assert rules.may_send_marketing(None) is True


# --- contact-reason analysis --------------------------------------------------------------------


def test_a_contact_followed_by_another_on_the_same_reason_within_the_window_was_repeated() -> None:
    starts = [T0, T0 + timedelta(days=2), T0 + timedelta(days=20)]
    assert rules.repeated(starts, window=WEEK) == [True, False, False]


def test_growth_needs_more_than_noise() -> None:
    assert rules.is_growing(120, 60, current_days=31, previous_days=31)
    assert not rules.is_growing(11, 10, current_days=31, previous_days=31)
    assert not rules.is_growing(40, 80, current_days=31, previous_days=31)
    assert rules.is_growing(15, 0, current_days=31, previous_days=31)  # a new reason that appears


def test_growth_compares_daily_rates_not_raw_counts() -> None:
    same_rate = rules.growth_z(310, 280, current_days=31, previous_days=28)
    assert abs(same_rate) < 0.1


def test_self_care_reasons_are_flagged_in_the_shipped_taxonomy() -> None:
    config = shipped()
    assert config.reasons["rewards.balance"].self_care
    assert not config.reasons["card.lost_stolen"].self_care


def test_a_notice_prevents_only_contacts_inside_the_incident_before_it_was_sent() -> None:
    from datetime import UTC, datetime

    from prevenance.desk.rules import IncidentWindow, notice_would_have_prevented

    def at(day: int) -> datetime:
        return datetime(2026, 1, day, tzinfo=UTC)

    window = IncidentWindow("I", at(2), at(10), frozenset({"card.declined"}))
    assert notice_would_have_prevented(window, reason="card.declined", contact_at=at(3), notice_sent_at=None)
    assert notice_would_have_prevented(window, reason="card.declined", contact_at=at(3), notice_sent_at=at(4))
    assert not notice_would_have_prevented(
        window, reason="card.declined", contact_at=at(5), notice_sent_at=at(4)
    )
    assert not notice_would_have_prevented(window, reason="card.pin", contact_at=at(3), notice_sent_at=None)
    assert not notice_would_have_prevented(
        window, reason="card.declined", contact_at=at(1), notice_sent_at=None
    )
    assert not notice_would_have_prevented(
        window, reason="card.declined", contact_at=at(10), notice_sent_at=None
    )
    any_reason = IncidentWindow("I", at(2), None, frozenset())
    assert notice_would_have_prevented(any_reason, reason="card.pin", contact_at=at(20), notice_sent_at=None)


@pytest.mark.parametrize("outcome", rules.OUTCOMES)
def test_only_a_resolved_contact_resolves_its_case_any_other_reopens_it(outcome: str) -> None:
    assert rules.case_status_after(outcome) == ("resolved" if outcome == "resolved" else "open")
