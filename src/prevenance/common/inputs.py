"""Values every entry point checks the same way: instants, months and quarters inside one accepted
window, and text without NUL characters.

**The window.** Every instant the platform accepts — a body or query field of the API, a row of a
settlement file, a message of the stream, a month or a date given to a command — lies in
``[2000-01-01T00:00:00Z, 2100-01-01T00:00:00Z)``. Nothing the programme handles happened before
2000 or will happen after 2099, and both ends leave room for every computation made from a value
(a month before, a quarter after, a time zone's offset) without leaving what Python and the
databases can represent: ``0001-01-01`` or ``9999-12-31T23:59:59-05:00`` used to overflow there and
answer 500. An instant without an offset is taken as UTC (as it always was); the value kept is
timezone-aware.

**NUL.** PostgreSQL cannot store the character U+0000 in text and refuses the whole statement, and
no name, e-mail or search term ever needs it. So it is refused where it enters: every string of a
request (``request_guards.NulGuard``), every field of a settlement row and of a stream message
(``nul_field``), each answered as a 422 naming the field (a rejects-file line, a rejected message).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, date, datetime
from typing import Annotated, Any

from fastapi import Query
from pydantic import AfterValidator, Field
from pydantic_core import PydanticCustomError

from prevenance.common.problems import InvalidInput

WINDOW_START = datetime(2000, 1, 1, tzinfo=UTC)
WINDOW_END = datetime(2100, 1, 1, tzinfo=UTC)  # exclusive
FIRST_MONTH, LAST_MONTH = "2000-01", "2099-12"
WINDOW_TEXT = "between 2000-01-01T00:00:00Z (included) and 2100-01-01T00:00:00Z (excluded)"
OUT_OF_WINDOW = f"must be an instant {WINDOW_TEXT}"
NUL_MESSAGE = "must not contain a NUL character (U+0000)"
INT32_MAX = 2**31 - 1
"""The largest value of a 32-bit integer column (PostgreSQL ``integer``): a larger one is a 422."""
BIGINT_MAX = 2**63 - 1
"""The largest value of a 64-bit integer column (``bigint``, SQLite's ``INTEGER``): a larger id or
cursor is a 422, where the database refused to bind it (a 500)."""

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


# --- instants ------------------------------------------------------------------------------------


def in_window(value: datetime) -> bool:
    """True when the instant lies inside the accepted window (a naive value is read as UTC)."""
    # The year first: converting a far instant to UTC (or comparing it with one) could overflow.
    if not 1999 <= value.year <= 2100:
        return False
    if 2001 <= value.year <= 2098:
        return True  # an offset (under 24 hours) cannot carry it out of the window
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    try:
        return WINDOW_START <= aware < WINDOW_END
    except OverflowError:  # pragma: no cover - ruled out by the year check
        return False


def moment(value: datetime) -> datetime:
    """The instant, timezone-aware (naive means UTC); ``ValueError`` when outside the window."""
    if not in_window(value):
        raise PydanticCustomError("datetime_out_of_window", OUT_OF_WINDOW)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


Moment = Annotated[
    datetime,
    AfterValidator(moment),
    Field(
        description=(
            f"An ISO 8601 instant {WINDOW_TEXT}; without an offset it is taken as UTC. "
            "Anything else is refused with 422 naming the field."
        ),
        examples=["2026-01-15T10:30:00Z"],
    ),
]
"""A request field holding an instant: refused with 422 naming the field outside the window."""


# --- months, quarters and days -------------------------------------------------------------------


def month_error(month: str | None) -> str | None:
    """Why ``month`` is not an accepted ``YYYY-MM`` (None when it is)."""
    match = _MONTH.match(month or "")
    if not match:
        return f"must look like YYYY-MM, not {month!r}"
    if not FIRST_MONTH <= month <= LAST_MONTH:  # type: ignore[operator]
        return f"must be a month from {FIRST_MONTH} to {LAST_MONTH}, not {month!r}"
    return None


def quarter_error(quarter: str | None) -> str | None:
    """Why ``quarter`` is not an accepted ``YYYYQn`` (None when it is)."""
    match = _QUARTER.match(quarter or "")
    if not match:
        return f"must look like 2026Q3, not {quarter!r}"
    if not 2000 <= int(match.group(1)) <= 2099:
        return f"must be a quarter from 2000Q1 to 2099Q4, not {quarter!r}"
    return None


def day_error(day: str | None) -> str | None:
    """Why ``day`` is not an accepted ``YYYY-MM-DD`` (None when it is)."""
    try:
        value = date.fromisoformat(day or "") if _DAY.match(day or "") else None
    except ValueError:
        value = None
    if value is None:
        return f"must be a date YYYY-MM-DD, not {day!r}"
    if not 2000 <= value.year <= 2099:
        return f"must be a date from 2000-01-01 to 2099-12-31, not {day!r}"
    return None


def check_month(month: str, field: str = "month") -> str:
    """``month`` when it is an accepted ``YYYY-MM``; ``InvalidInput`` naming ``field`` else."""
    error = month_error(month)
    if error:
        raise InvalidInput(f"{field} {error}", field=field)
    return month


def check_quarter(quarter: str, field: str = "quarter") -> str:
    """``quarter`` when it is an accepted ``YYYYQn``; ``InvalidInput`` naming ``field`` else."""
    error = quarter_error(quarter)
    if error:
        raise InvalidInput(f"{field} {error}", field=field)
    return quarter


def _pydantic(check: Any) -> Any:
    def validate(value: str | None) -> str | None:
        error = None if value is None else check(value)
        if error:
            raise PydanticCustomError("period_out_of_window", error)
        return value

    return AfterValidator(validate)


MONTH_CHECK = _pydantic(month_error)
QUARTER_CHECK = _pydantic(quarter_error)
MONTH_TEXT = f"A calendar month, YYYY-MM, from {FIRST_MONTH} to {LAST_MONTH}; anything else is a 422."
QUARTER_TEXT = "A quarter, YYYYQn, from 2000Q1 to 2099Q4; anything else is a 422."


Month = Annotated[str, Query(description=MONTH_TEXT, examples=["2026-01"]), MONTH_CHECK]
"""A month query parameter (``YYYY-MM``): refused with 422 naming it outside the window."""
OptionalMonth = Annotated[str | None, Query(description=MONTH_TEXT, examples=["2026-01"]), MONTH_CHECK]
Quarter = Annotated[str, Query(description=QUARTER_TEXT, examples=["2026Q3"]), QUARTER_CHECK]
"""A quarter query parameter (``YYYYQn``): refused with 422 naming it outside the window."""
OptionalQuarter = Annotated[str | None, Query(description=QUARTER_TEXT, examples=["2026Q3"]), QUARTER_CHECK]


def cli_month(value: str | None) -> str | None:
    """Typer callback of a ``--month`` option: exit 2 with a clear line outside the window."""
    return _cli_check(value, month_error)


def cli_quarter(value: str | None) -> str | None:
    """Typer callback of a ``--quarter`` option."""
    return _cli_check(value, quarter_error)


def cli_day(value: str | None) -> str | None:
    """Typer callback of a ``--date`` option (``YYYY-MM-DD``)."""
    return _cli_check(value, day_error)


def _cli_check(value: str | None, check: Any) -> str | None:
    import typer

    if value is None:
        return None
    error = check(value)
    if error:
        raise typer.BadParameter(error)  # typer prints "Invalid value for '--month': …" and exits 2
    return value


# --- NUL -----------------------------------------------------------------------------------------


def nul_path(value: Any, path: tuple[str, ...] = ()) -> tuple[str, ...] | None:
    """Where the first NUL character sits in a decoded JSON value (keys included), or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            where = (*path, str(key))
            if "\x00" in str(key):
                return where
            found = nul_path(item, where)
            if found is not None:
                return found
        return None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = nul_path(item, (*path, str(index)))
            if found is not None:
                return found
    return None


def nul_field(values: Mapping[str, Any] | Iterable[tuple[str, Any]]) -> str | None:
    """The first field whose name or value holds a NUL (nested as ``a.b.0``), or None."""
    if isinstance(values, Mapping):
        found = nul_path(values)
        return None if found is None else ".".join(found)
    for name, value in values:
        if "\x00" in name or (isinstance(value, str) and "\x00" in value):
            return name
    return None


def printable(text: str) -> str:
    """``text`` with each NUL written ``\\x00``: for a rejects file or a log line."""
    return text.replace("\x00", "\\x00")
