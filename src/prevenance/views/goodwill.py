"""``/v1/goodwill``: the month's goodwill report, and goodwill to every member an incident affected.

A composition above the domains: the incident and its affected members are the desk's, the
gesture is loyalty's (points on the ledger or a statement credit). Granting for an incident runs in
batches of members, each batch one transaction; every grant is keyed by (incident, member), so a
retried call, or one after the process died half-way, grants only to the members not yet granted.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from pydantic import BaseModel
from sqlalchemy import Engine

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, require
from prevenance.common.inputs import Month
from prevenance.common.problems import PROBLEM_JSON, Conflict
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import incidents
from prevenance.loyalty import goodwill

router = APIRouter(prefix="/v1", tags=["goodwill"])
ReportReader = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.MARKETING, Role.INTEGRATOR))]
Granter = Annotated[Principal, Depends(require(Role.SUPERVISOR))]
Id = Annotated[str, Path(min_length=1, max_length=200)]
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown incident", **_PROBLEM},
    409: {"description": "The incident is still active", **_PROBLEM},
    422: {"description": "Invalid input", **_PROBLEM},
}
BATCH = 200  # members granted per transaction


class IncidentActive(Conflict):
    type_slug = "incident-active"
    title = "Goodwill is granted once the incident is resolved"


class GoodwillTotals(BaseModel):
    key: str
    count: int
    capped: int
    points: int
    credit_eur: str
    cost_eur: str


class GoodwillReport(BaseModel):
    """Gestures granted in the month (``capped``: owed but the member's monthly cap was reached)."""

    month: str
    count: int
    capped: int
    points: int
    credit_eur: str
    cost_eur: str
    by_reason: list[GoodwillTotals]
    by_country: list[GoodwillTotals]
    by_team: list[GoodwillTotals]


class MemberGoodwillRead(BaseModel):
    """A gesture as the member sees it: what was given and why, no cost or staff identity."""

    cause: str
    reference: str
    form: str
    points: int
    credit: str
    currency: str
    granted_at: str


class GoodwillRead(MemberGoodwillRead):
    """A gesture as staff see it (the 360)."""

    cost_eur: str
    team: str | None
    granted_by: str


class IncidentGoodwill(BaseModel):
    incident_id: str
    affected: int
    granted: int
    already: int


@router.get("/goodwill", response_model=GoodwillReport, responses=ERRORS)
def get_goodwill(engine: DbEngine, _: ReportReader, month: Month) -> dict[str, Any]:
    """The month's goodwill: count, cost, points and credits, by reason, country and team."""
    with read_session(engine) as session:
        return goodwill.report(session, month=month)


def grant_incident_goodwill(engine: Engine, *, incident_id: str, by: str, now: datetime) -> dict[str, Any]:
    """Goodwill to every member the resolved incident affected, once each (see the module)."""
    with read_session(engine) as session:
        incident = incidents.get(session, incident_id=incident_id)
        if incident["status"] != "resolved":
            raise IncidentActive("resolve the incident first", field="id")
        members = incidents.incident_member_ids(session, incident_id=incident_id)
    granted = already = 0
    for start in range(0, len(members), BATCH):
        chunk = members[start : start + BATCH]

        def use_case(session: Any, chunk: list[int] = chunk) -> list[dict[str, Any] | None]:
            return [
                goodwill.grant(
                    session,
                    member_id=m,
                    cause="incident",
                    reference=incident_id,
                    team="incidents",
                    by=by,
                    now=now,
                )
                for m in chunk
            ]

        for result in run_in_transaction(engine, use_case):
            if result is not None:
                already += 1 if result["replayed"] else 0
                granted += 0 if result["replayed"] else 1
    return {"incident_id": incident_id, "affected": len(members), "granted": granted, "already": already}


@router.post("/incidents/{id}/goodwill", response_model=IncidentGoodwill, responses=ERRORS)
def post_incident_goodwill(id: Id, engine: DbEngine, clock: AppClock, principal: Granter) -> dict[str, Any]:
    """Grant the programme's incident goodwill to every affected member of a resolved incident;
    calling again (after a failure half-way too) grants only to those not yet granted."""
    return grant_incident_goodwill(engine, incident_id=id, by=principal.name, now=clock.now())
