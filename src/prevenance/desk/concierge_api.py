"""REST routes of the concierge: requests, tastes and search of solved requests (concierge,
agent and admin keys; the member must hold a premium card, else 403 ``concierge-not-entitled``)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, note_member_access, require
from prevenance.common.inputs import Moment
from prevenance.common.responses import respond
from prevenance.common.text import ONE_LINE
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import concierge
from prevenance.desk.api import CONFLICT, INVALID, NOT_FOUND, Limit, Ref
from prevenance.desk.schemas import City, Id

router = APIRouter(prefix="/v1", tags=["concierge"])

ConciergeStaff = Annotated[Principal, Depends(require(Role.CONCIERGE, Role.AGENT))]
FORBIDDEN: dict[int | str, dict[str, Any]] = {403: {"description": "Not entitled", **INVALID[422]}}
Category = Literal["restaurant", "flowers", "tickets", "travel", "gifts", "events", "other"]
Status = Literal["open", "in_progress", "solved", "cancelled"]
Word = Annotated[str, Field(min_length=1, max_length=120), ONE_LINE]
Label = Annotated[str, Field(min_length=1, max_length=300), ONE_LINE]


class ConciergeRequestCreate(BaseModel):
    """A request to the concierge; ``id`` is the idempotency key."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    category: Category
    title: Label
    details: Annotated[str, Field(max_length=10_000)] = ""
    city: City
    country: Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]
    due_at: Moment


class ConciergeStatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Status
    partner: Annotated[str | None, Field(max_length=200), ONE_LINE] = None
    cost: Annotated[str | None, Field(max_length=40, examples=["120.00"], description="EUR")] = None
    solution: Annotated[str | None, Field(max_length=10_000)] = None


class TastesPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    notes: Annotated[str, Field(max_length=5_000)] = ""
    likes: Annotated[list[Word], Field(max_length=100)] = []
    dislikes: Annotated[list[Word], Field(max_length=100)] = []


class TastesRead(BaseModel):
    notes: str
    likes: list[str]
    dislikes: list[str]
    updated_at: datetime | None
    updated_by: str | None


class MemberTastesRead(TastesRead):
    member_ref: str


class ConciergeRequestRead(BaseModel):
    id: str
    member_ref: str
    category: Category
    title: str
    details: str
    city: str
    country: str
    due_at: datetime
    status: Status
    partner: str | None
    cost: str | None
    solution: str | None
    requested_by: str
    created_at: datetime
    updated_at: datetime


class NewConciergeRequestRead(ConciergeRequestRead):
    tastes: TastesRead


@router.post(
    "/members/{ref}/concierge-requests",
    status_code=201,
    response_model=NewConciergeRequestRead,
    responses={**CONFLICT, **INVALID, **NOT_FOUND, **FORBIDDEN},
)
def post_concierge_request(
    ref: Ref, body: ConciergeRequestCreate, engine: DbEngine, clock: AppClock, principal: ConciergeStaff
) -> Any:
    """Record a premium member's request; the answer shows the member's tastes."""
    request = concierge.ConciergeRequestInput(member_ref=ref, **body.model_dump())
    return respond(
        run_in_transaction(
            engine, lambda s: concierge.create_request(s, request=request, by=principal.name, now=clock.now())
        )
    )


@router.get("/concierge-requests", response_model=list[ConciergeRequestRead])
def get_concierge_requests(
    engine: DbEngine,
    _: ConciergeStaff,
    status: Annotated[Status | None, Query()] = None,
    due_before: Annotated[Moment | None, Query()] = None,
    limit: Limit = 500,
) -> list[dict[str, Any]]:
    """Requests by due time, soonest first."""
    with read_session(engine) as session:
        return concierge.list_requests(session, status=status, due_before=due_before, limit=limit)


@router.get("/concierge-requests/search", response_model=list[ConciergeRequestRead], responses=INVALID)
def search_concierge_requests(
    engine: DbEngine,
    _: ConciergeStaff,
    q: Annotated[str, Query(min_length=1, max_length=300)],
    category: Annotated[Category | None, Query()] = None,
    city: Annotated[str | None, Query(max_length=120)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    """Solved requests matching every word of ``q``, most recently solved first."""
    with read_session(engine) as session:
        return concierge.search_solved(session, q=q, category=category, city=city, limit=limit)


@router.get("/concierge-requests/{id}", response_model=ConciergeRequestRead, responses=NOT_FOUND)
def get_concierge_request(id: Ref, engine: DbEngine, _: ConciergeStaff, request: Request) -> dict[str, Any]:
    """One request (a read of its member's record: in their access log)."""
    with read_session(engine) as session:
        found = concierge.get_request(session, request_id=id)
    note_member_access(request, found["member_ref"])
    return found


@router.post(
    "/concierge-requests/{id}/status",
    response_model=ConciergeRequestRead,
    responses={**CONFLICT, **INVALID, **NOT_FOUND},
)
def post_concierge_status(
    id: Ref, body: ConciergeStatusChange, engine: DbEngine, clock: AppClock, _: ConciergeStaff
) -> dict[str, Any]:
    """open → in_progress → solved | cancelled; the current status again changes nothing."""
    return run_in_transaction(
        engine,
        lambda s: concierge.change_status(s, request_id=id, **body.model_dump(), now=clock.now()),
    )


@router.put("/members/{ref}/tastes", response_model=MemberTastesRead, responses={**NOT_FOUND, **FORBIDDEN})
def put_tastes(
    ref: Ref, body: TastesPut, engine: DbEngine, clock: AppClock, principal: ConciergeStaff
) -> Any:
    """Replace what the concierge remembers of the member's tastes."""
    return run_in_transaction(
        engine,
        lambda s: concierge.set_tastes(
            s, member_ref=ref, **body.model_dump(), by=principal.name, now=clock.now()
        ),
    )


@router.get("/members/{ref}/tastes", response_model=MemberTastesRead, responses=NOT_FOUND)
def get_tastes(ref: Ref, engine: DbEngine, _: ConciergeStaff) -> dict[str, Any]:
    with read_session(engine) as session:
        return concierge.get_tastes(session, member_ref=ref)


class ConciergePartnerPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, Field(min_length=1, max_length=200), ONE_LINE]
    country: Annotated[str, Field(pattern=r"^[A-Za-z]{2}$")]
    city: City
    category: Category
    rating: Annotated[int, Field(ge=1, le=5)]


class ConciergePartnerRead(BaseModel):
    code: str
    name: str
    country: str
    city: str
    category: Category
    rating: int
    updated_at: datetime
    updated_by: str


@router.put(
    "/concierge-partners/{code}",
    response_model=ConciergePartnerRead,
    responses={**INVALID, 201: {"model": ConciergePartnerRead, "description": "Created"}},
)
def put_concierge_partner(
    code: Annotated[str, Path(min_length=1, max_length=120)],
    body: ConciergePartnerPut,
    response: Response,
    engine: DbEngine,
    clock: AppClock,
    principal: ConciergeStaff,
) -> dict[str, Any]:
    """Create (201) or replace (200) a partner of the concierge network."""
    partner, created = run_in_transaction(
        engine,
        lambda s: concierge.put_partner(
            s, code=code, **body.model_dump(), by=principal.name, now=clock.now()
        ),
    )
    response.status_code = 201 if created else 200
    return partner


@router.get("/concierge-partners", response_model=list[ConciergePartnerRead])
def get_concierge_partners(
    engine: DbEngine,
    _: ConciergeStaff,
    country: Annotated[str | None, Query(pattern=r"^[A-Za-z]{2}$")] = None,
    city: Annotated[str | None, Query(max_length=120)] = None,
    category: Annotated[Category | None, Query()] = None,
) -> list[dict[str, Any]]:
    """Partners by country, city and category, best rated first."""
    with read_session(engine) as session:
        return concierge.list_partners(session, country=country, city=city, category=category)
