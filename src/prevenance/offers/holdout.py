"""The programme-wide holdout: a salted share of members who get no marketing offer for a period,
so the whole programme's incremental value can be measured against them (``roi.service``)."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.ids import as_utc
from prevenance.common.problems import InvalidInput
from prevenance.offers import rules
from prevenance.offers.cache import HOLDOUT, engine_of, invalidate_caches
from prevenance.offers.errors import HoldoutStillRunning
from prevenance.offers.tables import ProgrammeHoldout


@dataclass(frozen=True)
class HoldoutPeriod:
    """The open period of the programme-wide holdout, as the decision reads it."""

    id: int
    salt: str
    share: Decimal
    started_at: datetime
    min_days: int

    def body(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "share": str(self.share),
            "started_at": self.started_at.isoformat(),
            "min_days": self.min_days,
            "runs_until_at_least": (self.started_at + timedelta(days=self.min_days)).isoformat(),
        }


def programme_holdout_in_force(session: Session) -> HoldoutPeriod | None:
    """The open holdout period (cached like the live offers: one query per few seconds at most)."""
    engine = engine_of(session)
    found, value = HOLDOUT.get(engine)
    if found:
        cached: HoldoutPeriod | None = value
        return cached
    row = session.scalars(select(ProgrammeHoldout).where(ProgrammeHoldout.ended_at.is_(None))).first()
    period = (
        None
        if row is None
        else HoldoutPeriod(row.id, row.salt, Decimal(row.share), as_utc(row.started_at), row.min_days)
    )
    HOLDOUT.put(engine, period)
    return period


def start_programme_holdout(
    session: Session,
    *,
    share: str,
    now: datetime,
    by: str,
    min_days: int = rules.PROGRAMME_HOLDOUT_MIN_DAYS,
    salt: str | None = None,
) -> dict[str, Any]:
    """Start a new period of the programme-wide holdout with a fresh salt (409 while the open period
    has not run its minimum): members under ``share`` get no marketing offer until it ends."""
    try:
        parsed = rules.parse_decimal(
            share, field="share", low=Decimal("0.001"), high=rules.PROGRAMME_HOLDOUT_MAX_SHARE
        )
    except rules.RuleViolation as error:
        raise InvalidInput(str(error), field=error.field)
    if min_days < rules.PROGRAMME_HOLDOUT_MIN_DAYS:
        raise InvalidInput(
            f"a holdout period runs at least {rules.PROGRAMME_HOLDOUT_MIN_DAYS} days", field="min_days"
        )
    current = session.scalars(
        select(ProgrammeHoldout).where(ProgrammeHoldout.ended_at.is_(None)).with_for_update()
    ).first()
    if current is not None:
        until = as_utc(current.started_at) + timedelta(days=current.min_days)
        if now < until:
            raise HoldoutStillRunning(
                f"the holdout period started {as_utc(current.started_at).date()} runs until at least {until.date()}",
                field="share",
            )
        current.ended_at, current.open_marker = now, None
        session.flush()
    row = ProgrammeHoldout(
        salt=salt or secrets.token_hex(16),
        share=str(parsed),
        started_at=now,
        min_days=min_days,
        ended_at=None,
        open_marker=1,
        started_by=by,
    )
    session.add(row)
    session.flush()
    outbox.emit(
        session,
        type="offers.programme_holdout_started",
        payload={"id": row.id, "share": row.share, "min_days": min_days, "by": by},
        now=now,
    )
    invalidate_caches(session)
    return HoldoutPeriod(row.id, row.salt, parsed, now, min_days).body()


def programme_holdout_periods(session: Session) -> list[dict[str, Any]]:
    """Every holdout period, newest first (the salt is never shown)."""
    rows = session.scalars(select(ProgrammeHoldout).order_by(ProgrammeHoldout.id.desc())).all()
    return [
        {
            **HoldoutPeriod(r.id, r.salt, Decimal(r.share), as_utc(r.started_at), r.min_days).body(),
            "ended_at": None if r.ended_at is None else as_utc(r.ended_at).isoformat(),
            "started_by": r.started_by,
        }
        for r in rows
    ]
