"""REST routes of the offers domain: the catalogue (marketing), the member's offers and activation."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, ensure_member_scope, require
from prevenance.common.problems import PROBLEM_JSON
from prevenance.db import read_session, run_in_transaction
from prevenance.offers import service
from prevenance.offers.schemas import MemberOfferRead, MemberOffersPage, ModelRead, OfferPut, OfferRead

router = APIRouter(prefix="/v1", tags=["offers"])

Marketing = Annotated[Principal, Depends(require(Role.MARKETING))]
StaffReader = Annotated[Principal, Depends(require(Role.MARKETING, Role.SUPERVISOR, Role.AGENT))]
MemberSide = Annotated[Principal, Depends(require(Role.MEMBER, Role.AGENT))]
Id = Annotated[str, Path(min_length=1, max_length=200)]
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"description": text, "content": {PROBLEM_JSON: {}}}
    for status, text in ((404, "Not found"), (409, "Conflict"), (422, "Invalid input"))
}


def preferred_language(accept_language: str | None) -> str | None:
    """The first of fr/en named in ``Accept-Language`` (quality order), or None."""
    if not accept_language:
        return None
    weighted = []
    for index, part in enumerate(accept_language.split(",")):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                quality = 0.0
        weighted.append((-quality, index, tag.strip().lower()[:2]))
    for _, _, tag in sorted(weighted):
        if tag in ("fr", "en"):
            return tag
    return None


@router.put("/offers/{id}", response_model=OfferRead, responses={201: {"model": OfferRead}, **PROBLEMS})
def put_offer(id: Id, body: OfferPut, engine: DbEngine, clock: AppClock, _: Marketing) -> JSONResponse:
    """Create (201) or replace (200) an offer; the same definition again is a no-op (200)."""

    def use_case(session: Session) -> tuple[dict[str, Any], int]:
        return service.put_offer(session, offer_id=id, data=body.model_dump(), now=clock.now())

    offer, status = run_in_transaction(engine, use_case)
    return JSONResponse(offer, status_code=status)


@router.get("/offers", response_model=list[OfferRead])
def get_offers(
    engine: DbEngine,
    _: StaffReader,
    status: Annotated[str | None, Query(pattern="^(active|paused|ended)$")] = None,
) -> list[dict[str, Any]]:
    """Every offer of the catalogue, by id (optionally of one status)."""
    with read_session(engine) as session:
        return service.list_offers(session, status=status)


@router.get("/offers/models", response_model=list[ModelRead])
def get_models(engine: DbEngine, _: Marketing) -> list[dict[str, Any]]:
    """Stored propensity model versions, newest first, with their held-out AUC and n."""
    with read_session(engine) as session:
        return service.list_models(session)


@router.get("/offers/{id}", response_model=OfferRead, responses=PROBLEMS)
def get_offer(id: Id, engine: DbEngine, _: StaffReader) -> dict[str, Any]:
    """One offer, with its decisions counted per arm and status."""
    with read_session(engine) as session:
        return service.get_offer(session, offer_id=id)


def _status_route(target: str, summary: str) -> None:
    @router.post(
        f"/offers/{{id}}/{target}",
        response_model=OfferRead,
        responses=PROBLEMS,
        summary=summary,
        name=f"{target}_offer",
    )
    def change(id: Id, engine: DbEngine, clock: AppClock, _: Marketing) -> dict[str, Any]:
        status = {"pause": "paused", "resume": "active", "end": "ended"}[target]
        return run_in_transaction(
            engine, lambda s: service.set_status(s, offer_id=id, status=status, now=clock.now())
        )

    change.__name__ = f"{target}_offer"


_status_route("pause", "Pause an offer (no new decisions; activated ones still pay)")
_status_route("resume", "Resume a paused offer")
_status_route("end", "End an offer for good")


@router.get("/members/{ref}/offers", response_model=MemberOffersPage, responses=PROBLEMS)
def get_member_offers(
    ref: Id,
    engine: DbEngine,
    clock: AppClock,
    principal: MemberSide,
    accept_language: Annotated[str | None, Header()] = None,
) -> dict[str, Any]:
    """The offers a member can still activate or use, in French or English (``Accept-Language``,
    else the member's language)."""
    ensure_member_scope(principal, ref)
    with read_session(engine) as session:
        return service.list_active_member_offers(
            session, member_ref=ref, language=preferred_language(accept_language), now=clock.now()
        )


@router.post(
    "/members/{ref}/offers/{offer_id}/activate",
    response_model=MemberOfferRead,
    responses=PROBLEMS,
)
def activate_offer(
    ref: Id, offer_id: Id, engine: DbEngine, clock: AppClock, principal: MemberSide
) -> JSONResponse:
    """Activate an offer made to the member; its reward posts on the next qualifying payment.
    Activating again returns the same answer (``Idempotent-Replayed: true``)."""
    ensure_member_scope(principal, ref)
    body, replayed = run_in_transaction(
        engine, lambda s: service.activate(s, member_ref=ref, offer_id=offer_id, now=clock.now())
    )
    headers = {"Idempotent-Replayed": "true"} if replayed else None
    return JSONResponse(body, status_code=200, headers=headers)
