"""The shared month arithmetic and the shared statistical formulas."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from statistics import NormalDist

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prevenance.common.ids import iso_z
from prevenance.common.periods import month_bounds, month_of, previous_month
from prevenance.common.rules import FieldError
from prevenance.common.stats import Z_95, normal_cdf, wilson_bounds, z_for


def test_a_month_runs_from_its_first_instant_to_the_next_months_first() -> None:
    assert month_bounds("2026-12") == (datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC))
    assert month_bounds("2026-02")[1] == datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize("bad", ["2026-13", "2026-00", "2026-1", "26-01", "", "2026-01\n"])
def test_a_month_that_is_not_yyyy_mm_is_refused_naming_the_field(bad: str) -> None:
    with pytest.raises(FieldError) as refused:
        month_bounds(bad, field="period")
    assert refused.value.field == "period"


def test_the_month_before_january_is_last_december() -> None:
    assert previous_month("2026-01") == "2025-12"
    assert previous_month("2026-07") == "2026-06"


def test_an_instant_belongs_to_its_utc_month() -> None:
    assert month_of(datetime(2026, 1, 31, 23, 30, tzinfo=UTC)) == "2026-01"


_AWARE = st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.timezones())


@given(_AWARE)
def test_the_month_and_the_z_time_are_the_texts_strftime_and_isoformat_write(moment: datetime) -> None:
    """Their fast paths for moments already in UTC write what the general formulas write."""
    in_utc = moment.astimezone(UTC)
    assert month_of(moment) == in_utc.strftime("%Y-%m")
    assert iso_z(moment) == in_utc.isoformat().replace("+00:00", "Z")


def test_the_normal_quantile_and_distribution_agree_with_the_standard_library() -> None:
    assert z_for(0.95) == pytest.approx(NormalDist().inv_cdf(0.975), abs=1e-12)
    assert z_for(0.90) == pytest.approx(1.6448536, abs=1e-6)
    assert normal_cdf(Z_95) == pytest.approx(0.975, abs=1e-12)
    with pytest.raises(ValueError):
        z_for(1.0)


def test_the_wilson_interval_of_a_known_case() -> None:
    # 8 of 10: the textbook Wilson 95% interval is 0.4902–0.9433.
    low, high = wilson_bounds(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)


@given(st.integers(min_value=1, max_value=5000).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))))
def test_the_wilson_interval_holds_the_share_and_stays_inside_zero_one(pair: tuple[int, int]) -> None:
    successes, n = pair
    low, high = wilson_bounds(successes, n)
    share = successes / n
    assert 0.0 <= low <= share + 1e-12 and share - 1e-12 <= high <= 1.0
    assert high - low > 0 and not math.isnan(low)
