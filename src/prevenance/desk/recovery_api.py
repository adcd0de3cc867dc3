"""REST routes of service recovery: the cases a detractor answer opened (or an agent opened by
hand), closing one with an outcome, and the monthly report. Desk staff work the cases; the report is
the supervisors' (and integrators')."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, note_member_access, require
from prevenance.common.inputs import Moment, Month
from prevenance.common.problems import PROBLEM_JSON
from prevenance.common.responses import respond
from prevenance.common.text import ONE_LINE
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import recovery

router = APIRouter(prefix="/v1", tags=["desk"])

DeskStaff = Annotated[
    Principal, Depends(require(Role.AGENT, Role.CONCIERGE, Role.SUPERVISOR, Role.INTEGRATOR))
]
ReportReader = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.INTEGRATOR))]
Ref = Annotated[str, Path(min_length=1, max_length=200)]
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not found", **_PROBLEM},
    409: {"description": "Conflict", **_PROBLEM},
    422: {"description": "Invalid input", **_PROBLEM},
}
Outcome = Literal["called_back", "resolved", "goodwill_given", "customer_declined"]
State = Literal["open", "due", "breached", "closed"]


class RecoveryCaseCreate(BaseModel):
    """A case opened by hand; ``id`` is the idempotency key. With ``contact_id`` the case goes to
    that contact's team, else to ``team``; due 24 hours from now unless ``due_at`` says otherwise."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$")]
    member_ref: Annotated[str, Field(min_length=1, max_length=64)]
    contact_id: Annotated[str | None, Field(min_length=1, max_length=200)] = None
    team: Annotated[str | None, Field(min_length=1, max_length=120), ONE_LINE] = None
    note: Annotated[str | None, Field(max_length=2000)] = None
    due_at: Moment | None = None


class RecoveryCaseClose(BaseModel):
    """Close the case with what was done; the same outcome again changes nothing."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["closed"] = "closed"
    outcome: Outcome
    note: Annotated[str | None, Field(max_length=2000)] = None


class RecoveryCaseRead(BaseModel):
    id: str
    member_ref: str
    answer_id: str | None
    contact_id: str | None
    team: str
    agent: str | None
    channel: str | None
    country: str
    cause: Literal["recommend", "interaction", "manual"]
    recommend: int | None
    interaction: int | None
    score: int | None = Field(description="the score of the answer that opened the case (per ``cause``)")
    answered_at: str | None
    opened_at: str
    opened_by: str
    due_at: str
    status: Literal["open", "closed"]
    state: Literal["due", "breached", "closed"]
    outcome: Outcome | None
    note: str | None
    closed_by: str | None
    closed_at: str | None
    follow_up_recommend: int | None
    follow_up_at: str | None


class Share(BaseModel):
    n: int
    successes: int
    value: float | None
    ci_low: float | None
    ci_high: float | None


class TeamReport(BaseModel):
    team: str
    opened: int
    closed: int
    outcomes: dict[str, int]
    recovery_rate: Share
    next_answer_promoter: Share


class RecoveryReport(BaseModel):
    """Cases opened in the month: how many were recovered (closed called back, resolved or with
    goodwill) and, of those followed by a scored answer, how many came back as promoters (9–10);
    Wilson 95% intervals."""

    month: str
    opened: int
    closed: int
    outcomes: dict[str, int]
    recovery_rate: Share
    next_answer_promoter: Share
    teams: list[TeamReport]


class RecoveryCounts(BaseModel):
    open: int
    due: int
    breached: int


@router.get("/recovery-cases", response_model=list[RecoveryCaseRead], responses=ERRORS)
def get_recovery_cases(
    engine: DbEngine,
    clock: AppClock,
    _: DeskStaff,
    request: Request,
    state: Annotated[State | None, Query()] = None,
    team: Annotated[str | None, Query(max_length=120)] = None,
    member_ref: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """Recovery cases, soonest due first: ``state`` ``open`` (due or breached), ``due`` (deadline
    ahead), ``breached`` (deadline passed) or ``closed``; by team or member (a read of that
    member's record: in their access log)."""
    with read_session(engine) as session:
        cases = recovery.list_cases(
            session, now=clock.now(), state=state, team=team, member_ref=member_ref, limit=limit
        )
    if member_ref is not None:
        note_member_access(request, member_ref)
    return cases


@router.post("/recovery-cases", status_code=201, response_model=RecoveryCaseRead, responses=ERRORS)
def post_recovery_case(
    body: RecoveryCaseCreate, engine: DbEngine, clock: AppClock, principal: DeskStaff
) -> JSONResponse:
    """Open a recovery case by hand (a complaint heard outside a survey); idempotent by ``id``."""
    case = recovery.RecoveryCaseInput(**body.model_dump())
    return respond(
        run_in_transaction(
            engine, lambda s: recovery.open_case(s, case=case, by=principal.name, now=clock.now())
        )
    )


@router.get("/recovery-cases/counts", response_model=RecoveryCounts)
def get_recovery_counts(
    engine: DbEngine,
    clock: AppClock,
    _: DeskStaff,
    team: Annotated[str | None, Query(max_length=120)] = None,
) -> dict[str, int]:
    """Open, due and breached cases now (the supervisor's dashboard)."""
    with read_session(engine) as session:
        return recovery.counts(session, now=clock.now(), team=team)


@router.get("/recovery-cases/report", response_model=RecoveryReport, responses=ERRORS)
def get_recovery_report(engine: DbEngine, _: ReportReader, month: Month) -> dict[str, Any]:
    """The month's recovery rate and next-answer promoters, overall and by team."""
    with read_session(engine) as session:
        return recovery.report(session, month=month)


@router.get("/recovery-cases/{id}", response_model=RecoveryCaseRead, responses=ERRORS)
def get_recovery_case(
    id: Ref, engine: DbEngine, clock: AppClock, _: DeskStaff, request: Request
) -> dict[str, Any]:
    """One recovery case (a read of its member's record: in their access log)."""
    with read_session(engine) as session:
        case = recovery.get_case(session, case_id=id, now=clock.now())
    note_member_access(request, case["member_ref"])
    return case


@router.patch("/recovery-cases/{id}", response_model=RecoveryCaseRead, responses=ERRORS)
def patch_recovery_case(
    id: Ref, body: RecoveryCaseClose, engine: DbEngine, clock: AppClock, principal: DeskStaff
) -> dict[str, Any]:
    """Close the case with an outcome (closing again with the same outcome changes nothing; another
    outcome is a conflict)."""
    return run_in_transaction(
        engine,
        lambda s: recovery.close_case(
            s, case_id=id, outcome=body.outcome, note=body.note, by=principal.name, now=clock.now()
        ),
    )
