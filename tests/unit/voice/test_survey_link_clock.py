"""A survey link stamped in the future is refused (it would otherwise never expire); a few minutes
of clock skew between the process that signs and the one that reads are tolerated."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from prevenance.voice import invitations
from prevenance.voice.errors import SurveyLinkError

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    "ahead",
    [timedelta(minutes=5, seconds=1), timedelta(hours=1), timedelta(days=29), timedelta(days=3650)],
    ids=str,
)
def test_a_link_stamped_in_the_future_is_invalid(ahead: timedelta) -> None:
    token = invitations.sign("inv_1", secret="s3cret", now=T0 + ahead)
    with pytest.raises(SurveyLinkError) as refused:
        invitations.unsign(token, secret="s3cret", max_age_days=30, now=T0)
    assert refused.value.kind == "invalid"


def test_up_to_five_minutes_of_clock_skew_is_tolerated() -> None:
    assert invitations.CLOCK_SKEW_SECONDS == 300
    token = invitations.sign("inv_1", secret="s3cret", now=T0 + timedelta(minutes=5))
    assert invitations.unsign(token, secret="s3cret", max_age_days=30, now=T0) == "inv_1"


def test_a_link_stamped_ten_years_ahead_is_still_refused_ten_years_later_plus_its_days() -> None:
    """Once its stamp is reached it is an ordinary link: it lives its 30 days, then expires."""
    token = invitations.sign("inv_1", secret="s3cret", now=T0 + timedelta(days=3650))
    later = T0 + timedelta(days=3650 + 31)
    with pytest.raises(SurveyLinkError) as expired:
        invitations.unsign(token, secret="s3cret", max_age_days=30, now=later)
    assert expired.value.kind == "expired"
