"""``/v1/incidents``: declare a proactive incident, post updates, resolve it.

A composition above the domains, like the 360: who is affected is a rule over the customer record
(product, country) and over loyalty's card transactions (a merchant in a time window), and the desk
may not read loyalty. This module resolves the rule through the customers and loyalty services and
hands the member ids to ``desk.incidents``, inside the transaction that records the incident and
queues its notices.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, require
from prevenance.common.idempotency import Outcome
from prevenance.common.problems import PROBLEM_JSON
from prevenance.common.responses import respond
from prevenance.customers import service as customers
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import incidents
from prevenance.desk.schemas import (
    IncidentAffects,
    IncidentCreate,
    IncidentRead,
    IncidentResolve,
    IncidentUpdateCreate,
    IncidentUpdateRead,
)
from prevenance.loyalty import service as loyalty

router = APIRouter(prefix="/v1", tags=["incidents"])
# Operators on the desk and marketing (the console declares incidents from the marketing screen).
IncidentWriter = Annotated[Principal, Depends(require(Role.AGENT, Role.SUPERVISOR, Role.MARKETING))]
IncidentReader = Annotated[
    Principal, Depends(require(Role.AGENT, Role.CONCIERGE, Role.SUPERVISOR, Role.MARKETING, Role.INTEGRATOR))
]
Id = Annotated[str, Path(min_length=1, max_length=200)]
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown incident", **_PROBLEM},
    409: {"description": "Conflict", **_PROBLEM},
    422: {"description": "Invalid input", **_PROBLEM},
}


def affected_member_ids(session: Session, affects: IncidentAffects) -> set[int]:
    """The members a targeting rule names: every criterion given must hold (AND)."""
    found: set[int] | None = None
    if affects.products or affects.countries or affects.cities:
        found = set(
            customers.list_member_ids(
                session, products=affects.products, countries=affects.countries, cities=affects.cities
            )
        )
    if affects.merchant:
        at_merchant = set(
            loyalty.list_member_ids_at_merchant(
                session, merchant=affects.merchant, start=affects.window_start, end=affects.window_end
            )
        )
        found = at_merchant if found is None else found & at_merchant
    return found or set()


def declare(engine: Engine, body: IncidentCreate, *, by: str, now: datetime) -> Outcome:
    """Declare the incident a body describes, its audience found by its rule: the one use case
    behind ``POST /v1/incidents`` and the console's marketing form."""
    incident = incidents.IncidentInput(
        id=body.id,
        title_fr=body.title_fr,
        title_en=body.title_en,
        body_fr=body.body_fr,
        body_en=body.body_en,
        since=body.since,
        affects=body.affects.model_dump(mode="json", exclude_defaults=True),
    )
    return run_in_transaction(
        engine,
        lambda s: incidents.declare(
            s,
            incident=incident,
            affected=lambda session: affected_member_ids(session, body.affects),
            by=by,
            now=now,
        ),
    )


@router.post("/incidents", status_code=201, response_model=IncidentRead, responses=RESPONSES)
def post_incident(
    body: IncidentCreate, engine: DbEngine, clock: AppClock, principal: IncidentWriter
) -> JSONResponse:
    """Declare an incident; every affected member gets an email notice in their language.
    ``id`` is the idempotency key."""
    return respond(declare(engine, body, by=principal.name, now=clock.now()))


@router.get("/incidents/{id}", response_model=IncidentRead, responses=RESPONSES)
def get_incident(id: Id, engine: DbEngine, _: IncidentReader) -> dict[str, Any]:
    """One incident and how many members it affects."""
    with read_session(engine) as session:
        return incidents.get(session, incident_id=id)


@router.post(
    "/incidents/{id}/updates", status_code=201, response_model=IncidentUpdateRead, responses=RESPONSES
)
def post_incident_update(
    id: Id, body: IncidentUpdateCreate, engine: DbEngine, clock: AppClock, _: IncidentWriter
) -> JSONResponse:
    """Tell every affected member how things stand; the update's ``id`` is the idempotency key."""
    return respond(
        run_in_transaction(
            engine,
            lambda s: incidents.add_update(
                s,
                incident_id=id,
                update_id=body.id,
                body_fr=body.body_fr,
                body_en=body.body_en,
                now=clock.now(),
            ),
        )
    )


@router.post("/incidents/{id}/resolve", response_model=IncidentRead, responses=RESPONSES)
def post_incident_resolve(
    id: Id, body: IncidentResolve, engine: DbEngine, clock: AppClock, _: IncidentWriter
) -> JSONResponse:
    """Resolve the incident and tell every affected member (once: the same body replays)."""
    return respond(
        run_in_transaction(
            engine,
            lambda s: incidents.resolve(
                s, incident_id=id, body_fr=body.body_fr, body_en=body.body_en, now=clock.now()
            ),
        )
    )
