"""REST routes of the customer record."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import BaseModel

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, Reader, ensure_member_scope, require
from prevenance.common.inputs import BIGINT_MAX
from prevenance.customers import rules, service
from prevenance.customers.schemas import MemberPut, MemberRead
from prevenance.customers.tables import Member
from prevenance.db import read_session, run_in_transaction

router = APIRouter(prefix="/v1", tags=["members"])
MemberWriter = Annotated[Principal, Depends(require(Role.AGENT, Role.INTEGRATOR))]
# The pattern is stated for clients; the service checks it (is_valid_ref) with its own 422.
MemberRef = Annotated[
    str, Path(min_length=1, max_length=64, json_schema_extra={"pattern": rules.REF_PATTERN})
]


def to_read(member: Member, *, tier: str, premium: bool) -> MemberRead:
    return MemberRead(
        ref=member.ref,
        name=member.name,
        email=member.email,
        language=member.language,
        country=member.country,
        product=member.product,
        city=member.city,
        phone=member.phone,
        tier=tier,
        premium=premium,
        created_at=member.created_at,
        updated_at=member.updated_at,
    )


@router.put(
    "/members/{ref}",
    response_model=MemberRead,
    status_code=200,
    responses={201: {"model": MemberRead, "description": "Created"}},
)
def put_member(
    ref: MemberRef, body: MemberPut, engine: DbEngine, clock: AppClock, _: MemberWriter, response: Response
) -> MemberRead:
    """Create (201) or replace (200) a member. PUT is idempotent by nature."""
    data = service.MemberData(**body.model_dump())

    def use_case(session):  # type: ignore[no-untyped-def]
        member, created = service.upsert(session, ref=ref, data=data, now=clock.now())
        product = service.product_of(session, code=member.product)
        assert product is not None
        return to_read(member, tier=product.tier, premium=product.premium), created

    read, created = run_in_transaction(engine, use_case)
    response.status_code = 201 if created else 200
    return read


@router.get("/members/{ref}", response_model=MemberRead)
def get_member(ref: MemberRef, engine: DbEngine, principal: Reader) -> MemberRead:
    """The member's record."""
    ensure_member_scope(principal, ref)
    with read_session(engine) as session:
        member = service.get_member(session, ref=ref)
        product = service.product_of(session, code=member.product)
        assert product is not None
        return to_read(member, tier=product.tier, premium=product.premium)


class AccessLogRead(BaseModel):
    id: int
    at: datetime
    actor: str
    actor_role: str
    action: str
    channel: str
    method: str
    route: str
    status: int
    request_id: str | None


Auditor = Annotated[Principal, Depends(require(Role.SUPERVISOR))]


@router.get("/members/{ref}/access-log", response_model=list[AccessLogRead])
def get_access_log(
    ref: MemberRef,
    engine: DbEngine,
    _: Auditor,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    before_id: Annotated[int | None, Query(ge=1, le=BIGINT_MAX)] = None,
) -> list[dict[str, object]]:
    """Who read or changed this customer's record (API and console), newest first; append-only.
    Supervisor and admin keys."""
    with read_session(engine) as session:
        return service.list_access(session, member_ref=ref, limit=limit, before_id=before_id)
