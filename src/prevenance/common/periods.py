"""Calendar months as the reports count them: ``YYYY-MM`` in UTC, start inclusive, end exclusive."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from prevenance.common.rules import FieldError

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def month_bounds(month: str, field: str = "month") -> tuple[datetime, datetime]:
    """The UTC instants where ``month`` starts and the next one begins; a ``FieldError`` on
    ``field`` when it is not ``YYYY-MM``."""
    match = _MONTH.fullmatch(month or "")
    if not match:
        raise FieldError(f"{field} must look like YYYY-MM, not {month!r}", field)
    year, number = int(match.group(1)), int(match.group(2))
    start = datetime(year, number, 1, tzinfo=UTC)
    end = datetime(year + number // 12, number % 12 + 1, 1, tzinfo=UTC)
    return start, end


def previous_month(month: str) -> str:
    """The ``YYYY-MM`` month before ``month``."""
    start, _ = month_bounds(month)
    return (start - timedelta(days=1)).strftime("%Y-%m")


def month_of(instant: datetime) -> str:
    """The ``YYYY-MM`` month an instant falls in, in UTC (the text ``strftime("%Y-%m")`` writes,
    without its cost: a bulk import asks it once per line)."""
    if instant.tzinfo is not UTC:
        instant = instant.astimezone(UTC)
    return f"{instant.year}-{instant.month:02d}"
