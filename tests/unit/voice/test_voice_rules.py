"""The pure rules of the voice domain, read as a specification (no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from prevenance.common.periods import month_of
from prevenance.common.rules import FieldError
from prevenance.voice import invitations, rules
from prevenance.voice.errors import SurveyLinkError

T0 = datetime(2026, 3, 1, 12, tzinfo=UTC)
EVERY = rules.Sampling()


def test_an_opted_out_member_is_never_asked_whatever_the_sampling() -> None:
    assert (
        rules.invitation_decision(
            contact_id="C1", ended_at=T0, opted_out=True, last_invited_at=None, sampling=EVERY
        )
        == "opted_out"
    )


def test_by_default_every_contact_is_surveyed() -> None:
    for i in range(50):
        assert (
            rules.invitation_decision(
                contact_id=f"C{i}", ended_at=T0, opted_out=False, last_invited_at=T0, sampling=EVERY
            )
            is None
        )


def test_the_cap_counts_from_the_last_invitation() -> None:
    capped = rules.Sampling(cap_days=30)
    decide = lambda last: rules.invitation_decision(  # noqa: E731
        contact_id="C1", ended_at=T0, opted_out=False, last_invited_at=last, sampling=capped
    )
    assert decide(None) is None
    assert decide(T0 - timedelta(days=29, hours=23)) == "capped"
    assert decide(T0 - timedelta(days=30)) is None


@given(st.floats(min_value=0.05, max_value=0.95))
def test_sampling_is_deterministic_per_contact_and_near_its_rate(rate: float) -> None:
    ids = [f"contact-{i}" for i in range(4000)]
    first = [rules.sampled(i, rate) for i in ids]
    assert first == [rules.sampled(i, rate) for i in ids]
    share = sum(first) / len(ids)
    assert abs(share - rate) < 0.05  # 4000 draws: the share's standard error is under 0.8 points
    assert not any(rules.sampled(i, 0.0) for i in ids[:100])


def test_months_and_quarters() -> None:
    assert month_of(datetime(2026, 1, 31, 23, 30, tzinfo=UTC)) == "2026-01"
    assert rules.quarter_months("2026Q3") == ["2026-07", "2026-08", "2026-09"]
    assert rules.quarter_of("2026-12") == "2026Q4"
    assert rules.previous_quarters("2026Q1", 3) == ["2025Q3", "2025Q4", "2026Q1"]
    for bad in ("2026-13", "2026-1", "26-01", ""):
        with pytest.raises(FieldError):
            rules.check_month(bad)
    with pytest.raises(FieldError):
        rules.quarter_months("2026Q5")


def test_the_form_needs_a_recommend_score_and_refuses_values_out_of_range() -> None:
    form, errors = rules.read_form(recommend="", interaction="5", comment="  ", suggestion=None)
    assert errors == {"recommend": "required"}
    assert form.comment is None and form.interaction == 5
    _, errors = rules.read_form(recommend="11", interaction="0", comment=None, suggestion="x" * 5000)
    assert errors == {"recommend": "range", "interaction": "range", "suggestion": "too_long"}
    form, errors = rules.read_form(recommend="0", interaction=None, comment="ok", suggestion=None)
    assert errors == {} and (form.recommend, form.interaction, form.comment) == (0, None, "ok")


def _line(**overrides: str) -> dict[str, str | None]:
    row: dict[str, str | None] = {
        "id": "P1",
        "member_ref": "M1",
        "answered_at": "2026-01-05T10:00:00",
        "agent": "a",
        "team": "t",
        "channel": "phone",
        "reason": "r",
        "recommend": "9",
        "interaction": "",
    }
    row.update(overrides)
    return row


def test_an_imported_line_is_read_or_refused_with_the_column_at_fault() -> None:
    parsed = rules.parse_import_row(_line(country="gb"))
    assert parsed.answered_at == datetime(2026, 1, 5, 10, tzinfo=UTC)  # no offset: UTC
    assert (parsed.recommend, parsed.interaction, parsed.country) == (9, None, "GB")
    for overrides, field in [
        ({"member_ref": " "}, "member_ref"),
        ({"channel": "fax"}, "channel"),
        ({"recommend": "9.5"}, "recommend"),
        ({"recommend": "", "interaction": ""}, "recommend"),
        ({"interaction": "6"}, "interaction"),
        ({"answered_at": "yesterday"}, "answered_at"),
        ({"answered_at": "9999-12-31T23:59:59-05:00"}, "answered_at"),  # used to overflow
        ({"answered_at": "0001-01-01T00:00:00+05:00"}, "answered_at"),
        ({"answered_at": "1999-12-31T23:59:59Z"}, "answered_at"),
        ({"language": "de"}, "language"),
        ({"country": "GBR"}, "country"),
    ]:
        with pytest.raises(FieldError) as raised:
            rules.parse_import_row(_line(**overrides))
        assert raised.value.field == field, overrides


def test_a_barometer_line_is_checked() -> None:
    line = rules.parse_barometer_row(
        {"source": "S", "country": "fr", "quarter": "2026Q2", "metric": "rtf", "value": "21.5", "n": ""}
    )
    assert (line.country, line.value, line.n) == ("FR", 21.5, None)
    for overrides, field in [
        ({"quarter": "2026-Q2"}, "quarter"),
        ({"value": "nan"}, "value"),
        ({"n": "0"}, "n"),
    ]:
        row = {"source": "S", "country": "FR", "quarter": "2026Q2", "metric": "rtf", "value": "1", "n": "5"}
        row.update(overrides)
        with pytest.raises(FieldError) as raised:
            rules.parse_barometer_row(row)
        assert raised.value.field == field


def test_the_shipped_configuration_surveys_every_contact() -> None:
    from prevenance.voice import service

    config = service.current_config()
    assert config.sampling == rules.Sampling(rate=1.0, cap_days=None)
    assert {"target_rtf", "min_answers", "bands"} <= set(config.payout_grid)
    with pytest.raises(FieldError):
        rules.parse_config({"sampling": {"rate": 2}, "payout_grid": config.payout_grid})


def test_a_link_is_signed_expires_and_cannot_be_forged() -> None:
    token = invitations.sign("inv_1", secret="s3cret", now=T0)
    assert invitations.unsign(token, secret="s3cret", max_age_days=30, now=T0 + timedelta(days=29)) == "inv_1"
    with pytest.raises(SurveyLinkError) as expired:
        invitations.unsign(token, secret="s3cret", max_age_days=30, now=T0 + timedelta(days=30, seconds=1))
    assert expired.value.kind == "expired"
    for forged, secret in [
        (token, "other"),
        (token[:-2] + "xx", "s3cret"),
        ("nonsense", "s3cret"),
        ("é", "s3cret"),
    ]:
        with pytest.raises(SurveyLinkError) as invalid:
            invitations.unsign(forged, secret=secret, max_age_days=30, now=T0)
        assert invalid.value.kind == "invalid"
