"""The accepted window for instants, months, quarters and days, and the NUL finder
(``common.inputs``): the boundaries, the far dates that used to overflow, and the CLI options."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
import typer
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError
from typer.testing import CliRunner

from prevenance.cli import app as cli_app
from prevenance.common import inputs
from prevenance.common.problems import InvalidInput


class Body(BaseModel):
    at: inputs.Moment


@pytest.mark.parametrize(
    "value",
    [
        "2000-01-01T00:00:00Z",
        "2099-12-31T23:59:59.999999Z",
        "2000-01-01T01:00:00+01:00",  # 2000-01-01T00:00Z
        "2099-12-31T18:59:59-05:00",  # 2099-12-31T23:59:59Z
        "2026-06-01T12:00:00",  # naive: UTC
    ],
)
def test_instants_inside_the_window_are_kept_timezone_aware(value: str) -> None:
    at = Body.model_validate({"at": value}).at
    assert at.tzinfo is not None
    assert inputs.WINDOW_START <= at < inputs.WINDOW_END


@pytest.mark.parametrize(
    "value",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+05:00",  # would underflow once converted to UTC
        "9999-12-31T23:59:59-05:00",  # would overflow once converted to UTC
        "9999-12-31T23:59:59Z",
        "1999-12-31T23:59:59.999999Z",
        "2000-01-01T00:30:00+01:00",  # 1999-12-31T23:30Z
        "2100-01-01T00:00:00Z",
        "2099-12-31T23:30:00-01:00",  # 2100-01-01T00:30Z
        0,
        -62135596800,
    ],
)
def test_instants_outside_the_window_are_refused_naming_the_field(value: object) -> None:
    with pytest.raises(ValidationError) as raised:
        Body.model_validate({"at": value})
    error = raised.value.errors()[0]
    assert error["loc"] == ("at",)
    assert error["type"] == "datetime_out_of_window"
    assert "2000-01-01T00:00:00Z" in error["msg"] and "2100-01-01T00:00:00Z" in error["msg"]


def test_in_window_never_overflows_on_the_extremes() -> None:
    far_east = timezone(timedelta(hours=23, minutes=59))
    far_west = timezone(-timedelta(hours=23, minutes=59))
    for moment in (
        datetime.min.replace(tzinfo=far_east),
        datetime.max.replace(tzinfo=far_west),
        datetime.min,
    ):
        assert inputs.in_window(moment) is False


@pytest.mark.parametrize(
    ("month", "ok"),
    [
        ("2000-01", True),
        ("2099-12", True),
        ("1999-12", False),
        ("2100-01", False),
        ("0001-01", False),
        ("9999-12", False),
        ("2026-13", False),
        ("2026-1", False),
        ("", False),
    ],
)
def test_months(month: str, ok: bool) -> None:
    assert (inputs.month_error(month) is None) is ok
    if not ok:
        with pytest.raises(InvalidInput) as raised:
            inputs.check_month(month, "period")
        assert raised.value.field == "period"


@pytest.mark.parametrize(
    ("quarter", "ok"),
    [
        ("2000Q1", True),
        ("2099Q4", True),
        ("1999Q4", False),
        ("2100Q1", False),
        ("9999Q4", False),
        ("2026Q5", False),
    ],
)
def test_quarters(quarter: str, ok: bool) -> None:
    assert (inputs.quarter_error(quarter) is None) is ok


@pytest.mark.parametrize(
    ("day", "ok"),
    [
        ("2000-01-01", True),
        ("2099-12-31", True),
        ("1999-12-31", False),
        ("9999-12-31", False),
        ("2026-02-30", False),
        ("2026-2-3", False),
    ],
)
def test_days(day: str, ok: bool) -> None:
    assert (inputs.day_error(day) is None) is ok


def test_cli_callbacks_raise_bad_parameter() -> None:
    assert inputs.cli_month(None) is None and inputs.cli_month("2026-01") == "2026-01"
    with pytest.raises(typer.BadParameter):
        inputs.cli_month("0001-01")
    with pytest.raises(typer.BadParameter):
        inputs.cli_quarter("9999Q1")
    with pytest.raises(typer.BadParameter):
        inputs.cli_day("0001-01-01")


@pytest.mark.parametrize(
    "args",
    [
        ["voice", "scores", "--month", "0001-01"],
        ["voice", "scorecards", "--month", "9999-12"],
        ["voice", "report", "--quarter", "1999Q4"],
        ["desk", "fcr", "--month", "9999-12"],
        ["desk", "reasons", "--month", "0001-01"],
        ["benefits", "usage", "--month", "2100-01"],
        ["partners", "export", "--date", "9999-12-31"],
    ],
)
def test_commands_refuse_periods_outside_the_window_with_exit_2(args: list[str]) -> None:
    """Refused while the options are parsed: no database is opened."""
    result = CliRunner().invoke(cli_app, args)
    assert result.exit_code == 2, result.output
    assert "Invalid value for" in result.output and args[-1] in result.output
    assert "Traceback" not in result.output


def test_nul_field_finds_nested_values_and_keys() -> None:
    assert inputs.nul_field({"a": "x", "b": {"c": ["ok", "n\x00"]}}) == "b.c.1"
    assert inputs.nul_field({"a\x00": 1}) == "a\x00"
    assert inputs.nul_field({"a": "x", "b": 3, "c": None}) is None
    assert inputs.nul_field([("q", "ok"), ("r", "\x00")]) == "r"
    assert inputs.printable("a\x00b") == "a\\x00b"


@given(
    st.datetimes(
        min_value=datetime(1998, 1, 1), max_value=datetime(2102, 1, 1), timezones=st.none() | st.timezones()
    )
)
def test_in_window_by_year_agrees_with_the_comparison_in_utc(value: datetime) -> None:
    """Years 2001–2098 are decided without converting: the comparison in UTC agrees."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    assert inputs.in_window(value) is (inputs.WINDOW_START <= aware < inputs.WINDOW_END)
