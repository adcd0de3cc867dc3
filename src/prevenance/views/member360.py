"""``GET /v1/members/{ref}/360``: the whole customer on one screen, for the front line.

A composition above the domains (like ``app`` and ``console``): it reads the customer record, the
rewards ledger and the desk through their services and adds nothing of its own. Surveys and
offers are read through their services too.

Two views, told apart by ``view``: staff keys get ``"staff"`` (everything); a member key gets
``"member"``, what the member may see of themselves. The member view is an allow-list
(:class:`MemberSelf360Read` and its ``Member…`` parts name every field it carries), so a field added to
a staff schema never reaches a member: staff notes (contact notes, concierge tastes), costs and
partners, staff identities (agent, owner, requested_by, updated_by…) and internal workflow figures
stay out. ``docs/authorization.md`` lists what each role sees (written by the authorisation test).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from prevenance.common.auth import Role
from prevenance.common.deps import AppClock, DbEngine, Reader, ensure_member_scope
from prevenance.common.problems import PROBLEM_JSON
from prevenance.common.reads import Read, read_together
from prevenance.customers import service as customers
from prevenance.customers.schemas import MemberRead
from prevenance.db import read_statements
from prevenance.desk import benefits, cards, communications, concierge, contacts, recovery
from prevenance.desk import incidents as desk_incidents
from prevenance.desk.concierge_api import ConciergeRequestRead, TastesRead
from prevenance.desk.recovery_api import RecoveryCaseRead
from prevenance.desk.schemas import (
    CardReplacementRead,
    CaseRead,
    CommunicationRead,
    ContactPreferenceRead,
    ContactRead,
    IncidentRead,
    MemberBenefitRead,
    MemberCommunicationRead,
    MemberContactPreferenceRead,
)
from prevenance.loyalty import balances, goodwill
from prevenance.loyalty.schemas import BalanceRead, Movement
from prevenance.offers import service as offers
from prevenance.views.goodwill import GoodwillRead, MemberGoodwillRead
from prevenance.voice import service as voice

router = APIRouter(prefix="/v1", tags=["members"])
Ref = Annotated[str, Path(min_length=1, max_length=64)]
LAST = 10  # movements and contacts shown
COMMUNICATIONS = 20


# --- the parts of the member's view: an allow-list of what a member may see of themselves ----------


class MemberCaseRead(BaseModel):
    id: str
    member_ref: str
    reason: str
    status: Literal["open", "resolved"]
    country: str
    contact_count: int
    first_contact_id: str
    opened_at: datetime
    resolved_at: datetime | None


class MemberContactRead(BaseModel):
    id: str
    member_ref: str
    case_id: str
    channel: str
    direction: str
    team: str
    reason: str
    reason_label_fr: str
    reason_label_en: str
    started_at: datetime
    ended_at: datetime
    outcome: str


class MemberIncidentRead(BaseModel):
    id: str
    title_fr: str
    title_en: str
    body_fr: str
    body_en: str
    since: datetime
    status: Literal["active", "resolved"]
    resolved_at: datetime | None


class MemberConciergeRequestRead(BaseModel):
    id: str
    member_ref: str
    category: str
    title: str
    details: str
    city: str
    country: str
    due_at: datetime
    status: str
    created_at: datetime
    updated_at: datetime


class MemberSurveyRead(BaseModel):
    id: str
    contact_id: str | None
    answered_at: datetime | None
    channel: str | None
    reason: str | None
    recommend: int | None
    interaction: int | None
    comment: str | None
    suggestion: str | None


class SurveyRead(MemberSurveyRead):
    agent: str | None
    source: str | None


# --- the two views -------------------------------------------------------------------------------


class Member360Read(BaseModel):
    """The staff view: everything the front line needs."""

    view: Literal["staff"] = "staff"
    profile: MemberRead
    contact_preference: ContactPreferenceRead
    balance: BalanceRead
    last_movements: list[Movement]
    open_cases: list[CaseRead]
    last_contacts: list[ContactRead]
    communications: list[CommunicationRead]
    open_card_replacements: list[CardReplacementRead]
    unused_benefits: list[MemberBenefitRead]
    incidents: list[IncidentRead]
    concierge_requests: list[ConciergeRequestRead] = Field(
        description="latest concierge requests (premium cards only; empty otherwise)"
    )
    tastes: TastesRead | None = Field(description="what the concierge remembers (premium cards only)")
    surveys: list[SurveyRead] = Field(description="surveys the member answered, newest first")
    offers: list[dict[str, Any]] = Field(description="offers made to the member, newest first (FR/EN)")
    recovery_cases: list[RecoveryCaseRead] = Field(
        default=[], description="service-recovery cases of the member, newest first"
    )
    goodwill: list[GoodwillRead] = Field(
        default=[], description="goodwill granted to the member, newest first"
    )


class MemberSelf360Read(BaseModel):
    """The member's view of themselves: no staff notes, costs, partners or staff identities."""

    view: Literal["member"] = "member"
    profile: MemberRead
    contact_preference: MemberContactPreferenceRead
    balance: BalanceRead
    last_movements: list[Movement]
    open_cases: list[MemberCaseRead]
    last_contacts: list[MemberContactRead]
    communications: list[MemberCommunicationRead]
    open_card_replacements: list[CardReplacementRead]
    unused_benefits: list[MemberBenefitRead]
    incidents: list[MemberIncidentRead]
    concierge_requests: list[MemberConciergeRequestRead] = Field(
        description="latest concierge requests (premium cards only; empty otherwise)"
    )
    surveys: list[MemberSurveyRead] = Field(description="surveys the member answered, newest first")
    offers: list[dict[str, Any]] = Field(description="offers made to the member, newest first (FR/EN)")
    goodwill: list[MemberGoodwillRead] = Field(default=[], description="goodwill granted to the member")


Any360Read = Annotated[Member360Read | MemberSelf360Read, Field(discriminator="view")]


def member_view(staff: dict[str, Any]) -> dict[str, Any]:
    """What a member may see of the staff 360: only the fields :class:`MemberSelf360Read` names."""
    return MemberSelf360Read.model_validate({**staff, "view": "member"}).model_dump()


@router.get(
    "/members/{ref}/360",
    response_model=Any360Read,
    responses={404: {"description": "Unknown member", "content": {PROBLEM_JSON: {}}}},
)
def get_member_360(ref: Ref, engine: DbEngine, clock: AppClock, principal: Reader) -> dict[str, Any]:
    """Profile, product and tier, contact preference, balance and last movements, open cases and last
    contacts, communications sent, open emergency cards and the benefits the card is entitled to but
    the member has not used in twelve months (for the agent to tell) and the active incidents
    affecting the member, and for premium cards the latest concierge requests and the member's tastes
    (``read_statements``: on SQLite one snapshot; on PostgreSQL each part committed as of its read,
    as at READ COMMITTED in a transaction).

    A member key reads only its own 360, in the member view (``"view": "member"``): without staff
    notes, concierge tastes, partners and costs, staff identities or internal case figures.
    """
    ensure_member_scope(principal, ref)
    now = clock.now()
    with read_statements(engine) as session:
        member, product = customers.get_member_with_product(session, ref=ref)
        profile = {
            "ref": member.ref,
            "name": member.name,
            "email": member.email,
            "language": member.language,
            "country": member.country,
            "city": member.city,
            "phone": member.phone,
            "product": member.product,
            "tier": product.tier,
            "premium": product.premium,
            "created_at": member.created_at,
            "updated_at": member.updated_at,
        }
        parts: dict[str, Read[Any]] = {
            "contact_preference": communications.contact_preference(member),
            "balance": balances.balance_of(member),
            "last_movements": balances.last_movements(member, limit=LAST),
            "open_cases": contacts.member_cases(member, status="open", limit=50),
            "last_contacts": contacts.member_contacts(member, limit=LAST),
            "communications": communications.member_communications(member, limit=COMMUNICATIONS),
            "open_card_replacements": cards.member_card_replacements(member, now=now, open_only=True),
            "unused_benefits": benefits.member_unused_benefits(member, now=now),
            "incidents": desk_incidents.member_incidents(member),
            "surveys": voice.member_surveys(member.id, limit=LAST),
            "offers": offers.member_offers(member.id, limit=LAST),
            "recovery_cases": recovery.member_cases(member.id, now=now, limit=LAST),
            "goodwill": goodwill.member_grants(member, limit=LAST),
        }
        if product.premium:
            parts["concierge_requests"] = concierge.member_requests(member.id, limit=LAST)
            parts["tastes"] = concierge.member_tastes(member.id)
        answers = dict(zip(parts, read_together(session, list(parts.values())), strict=True))
    staff = {
        "view": "staff",
        "profile": profile,
        **answers,
        "concierge_requests": answers.get("concierge_requests", []),
        "tastes": answers.get("tastes"),
    }
    return member_view(staff) if principal.role is Role.MEMBER else staff
