"""``GET /v1/members/{ref}/360``: the whole customer on one screen, for the front line.

A composition above the domains (like ``app`` and ``console``): it reads the customer record, the
rewards ledger and the desk through their services and adds nothing of its own. Surveys and
offers are read through their services too.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, Field

from prevenance.common.auth import Role
from prevenance.common.deps import AppClock, DbEngine, Reader, ensure_member_scope
from prevenance.common.problems import PROBLEM_JSON
from prevenance.customers import service as customers
from prevenance.customers.schemas import MemberRead
from prevenance.db import read_session
from prevenance.desk import concierge
from prevenance.desk import incidents as desk_incidents
from prevenance.desk import service as desk
from prevenance.desk.concierge_api import ConciergeRequestRead, TastesRead
from prevenance.desk.schemas import (
    CardReplacementRead,
    CaseRead,
    CommunicationRead,
    ContactPreferenceRead,
    ContactRead,
    IncidentRead,
    MemberBenefitRead,
)
from prevenance.loyalty import service as loyalty
from prevenance.loyalty.schemas import BalanceRead, Movement
from prevenance.offers import service as offers
from prevenance.voice import service as voice

router = APIRouter(prefix="/v1", tags=["members"])
Ref = Annotated[str, Path(min_length=1, max_length=64)]
LAST = 10  # movements and contacts shown
COMMUNICATIONS = 20


class Member360Read(BaseModel):
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
    surveys: list[dict[str, Any]] = Field(description="surveys the member answered, newest first")
    offers: list[dict[str, Any]] = Field(description="offers made to the member, newest first (FR/EN)")


@router.get(
    "/members/{ref}/360",
    response_model=Member360Read,
    responses={404: {"description": "Unknown member", "content": {PROBLEM_JSON: {}}}},
)
def get_member_360(ref: Ref, engine: DbEngine, clock: AppClock, principal: Reader) -> dict[str, Any]:
    """Profile, product and tier, contact preference, balance and last movements, open cases and last
    contacts, communications sent, open emergency cards and the benefits the card is entitled to but
    the member has not used in twelve months (for the agent to tell) and the active incidents
    affecting the member, and for premium cards the latest concierge requests and the member's tastes,
    in one read transaction.

    A member key reads only its own 360, without the agents' notes on its contacts.
    """
    ensure_member_scope(principal, ref)
    now = clock.now()
    with read_session(engine) as session:
        member = customers.get_or_raise(session, ref=ref)
        product = customers.product_of(session, code=member.product)
        assert product is not None
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
        contacts = desk.list_member_contacts(session, member_ref=ref, limit=LAST)["items"]
        if principal.role is Role.MEMBER:
            contacts = [{**contact, "notes": ""} for contact in contacts]
        return {
            "profile": profile,
            "contact_preference": desk.get_contact_preference(session, member_ref=ref),
            "balance": loyalty.get_balance(session, member_ref=ref),
            "last_movements": loyalty.list_movements(session, member_ref=ref, limit=LAST, cursor=None)[
                "items"
            ],
            "open_cases": desk.list_member_cases(session, member_ref=ref, status="open"),
            "last_contacts": contacts,
            "communications": desk.list_member_communications(session, member_ref=ref, limit=COMMUNICATIONS)[
                "items"
            ],
            "open_card_replacements": desk.list_member_card_replacements(
                session, member_ref=ref, now=now, open_only=True
            ),
            "unused_benefits": desk.list_unused_benefits(session, member_ref=ref, now=now),
            "incidents": desk_incidents.list_member_incidents(session, member_ref=ref),
            "concierge_requests": (
                concierge.list_member_requests(session, member_id=member.id, limit=LAST)
                if product.premium
                else []
            ),
            "tastes": concierge.get_member_tastes(session, member_id=member.id) if product.premium else None,
            "surveys": voice.list_member_surveys(session, member_id=member.id, limit=LAST),
            "offers": offers.list_member_offers(session, member_id=member.id, limit=LAST),
        }
