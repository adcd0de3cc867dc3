"""The desk's queries that several of its modules share."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from prevenance.desk.tables import (
    Contact,
)

CHUNK = 1000  # members per IN list: well under SQLite's and PostgreSQL's parameter limits


def chunks(items: Sequence[int]) -> Iterable[Sequence[int]]:
    """``items`` in slices of ``CHUNK`` (one IN list each)."""
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def same_reason_contacts(
    session: Session, cases: Sequence[Any], *, window: timedelta
) -> dict[tuple[int, str], list[tuple[datetime, str]]]:
    """Start times (and cases) of the contacts that could make a candidate case a repeat."""
    candidates = [case for case in cases if case.contact_count == 1 and case.status == "resolved"]
    if not candidates:
        return {}
    earliest = min(case.started_at for case in candidates)
    latest = max((case.resolved_at or case.started_at) for case in candidates) + window
    member_ids = sorted({case.member_id for case in candidates})
    found: dict[tuple[int, str], list[tuple[datetime, str]]] = defaultdict(list)
    for chunk in chunks(member_ids):
        rows = session.execute(
            select(Contact.member_id, Contact.reason, Contact.started_at, Contact.case_id).where(
                Contact.member_id.in_(chunk), Contact.started_at > earliest, Contact.started_at <= latest
            )
        )
        for member_id, reason, started_at, case_id in rows:
            found[(member_id, reason)].append((started_at, case_id))
    return found
