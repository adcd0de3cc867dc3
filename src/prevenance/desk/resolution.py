"""Time to resolution as the member lives it: a case "resolved" by a quick answer that brings the
member back on the same reason is not over until the repeat is. No I/O."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta


def time_to_resolution(
    *,
    first_started_at: datetime,
    resolved_at: datetime | None,
    repeats: Iterable[tuple[datetime, datetime | None]],
    window: timedelta,
) -> timedelta | None:
    """From the first contact to the end of the matter, repeat contacts included; None while open.

    ``repeats`` are the member's other contacts on the same reason: (start, resolution of its case,
    None while open). A repeat starting after the first contact and within ``window`` of the
    current end extends the matter to its own resolution (and can be followed by another repeat);
    an open repeat leaves the whole matter open.
    """
    if resolved_at is None:
        return None
    end = resolved_at
    for started, repeat_resolved in sorted(repeats, key=lambda repeat: repeat[0]):
        if started <= first_started_at:
            continue
        if started > end + window:
            break
        if repeat_resolved is None:
            return None
        end = max(end, repeat_resolved)
    return end - first_started_at
