"""The moments that open a member chat, read across domains (incidents and lost cards from the desk,
travel holds and refused redemptions from loyalty, open recovery cases from the desk), and the routes that need them: the portal's
offer (a chat at a moment, else the fastest channel) and opening a chat.

Each moment is found by one fetcher in ``MOMENT_FETCHERS`` (an open service-recovery case is one); a
new moment is one more fetcher and one more entry in ``desk/chat/chat_config.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import JSONResponse
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, ensure_member_scope, require
from prevenance.common.idempotency import Outcome
from prevenance.common.ids import as_utc, iso_z
from prevenance.common.problems import PROBLEM_JSON, InvalidInput
from prevenance.common.responses import respond
from prevenance.customers import service as customers
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import config as desk_config
from prevenance.desk import incidents as desk_incidents
from prevenance.desk import service as desk
from prevenance.desk.chat import config as chat_config
from prevenance.desk.chat import live
from prevenance.desk.chat import rules as chat_rules
from prevenance.desk.chat import service as chat
from prevenance.desk.chat.errors import MomentNotCurrent
from prevenance.desk.chat.rules import FoundMoment
from prevenance.desk.chat.schemas import ChatCreate, ChatOfferRead, ChatRead
from prevenance.loyalty import service as loyalty

MomentFetcher = Callable[[Session, str, datetime], list[FoundMoment]]


def _parse(value: Any) -> datetime:
    return (
        as_utc(datetime.fromisoformat(value.replace("Z", "+00:00")))
        if isinstance(value, str)
        else as_utc(value)
    )


def incident_moments(session: Session, member_ref: str, now: datetime) -> list[FoundMoment]:
    """An active incident the member was notified of."""
    return [
        FoundMoment("incident", i["id"], _parse(i["since"]), i["title_fr"] + " / " + i["title_en"])
        for i in desk_incidents.list_member_incidents(session, member_ref=member_ref)
    ]


def card_lost_moments(session: Session, member_ref: str, now: datetime) -> list[FoundMoment]:
    """A card reported lost or stolen whose emergency replacement is not delivered yet."""
    return [
        FoundMoment("card_lost", o["id"], _parse(o["ordered_at"]), o["city"])
        for o in desk.list_member_card_replacements(session, member_ref=member_ref, now=now, open_only=True)
    ]


def travel_hold_moments(session: Session, member_ref: str, now: datetime) -> list[FoundMoment]:
    """Points held for a trip that is not confirmed yet (and whose hold has not run out)."""
    holds = loyalty.list_member_redemption_states(session, member_ref=member_ref, statuses=("held",))
    return [
        FoundMoment("travel_hold", h["id"], h["created_at"])
        for h in holds
        if h["expires_at"] is None or h["expires_at"] > now
    ]


def refused_redemption_moments(session: Session, member_ref: str, now: datetime) -> list[FoundMoment]:
    """A redemption voided, or a hold that ran out, within the configured days."""
    policy = chat_config.current()
    found = loyalty.list_member_redemption_states(
        session, member_ref=member_ref, statuses=("voided", "expired"), since=now - policy.refused_window
    )
    return [
        FoundMoment("redemption_refused", r["id"], r["resolved_at"])
        for r in found
        if chat_rules.is_refused_redemption(
            status=r["status"], resolved_at=r["resolved_at"], now=now, config=policy
        )
    ]


def recovery_case_moments(session: Session, member_ref: str, now: datetime) -> list[FoundMoment]:
    """An open service-recovery case: the member said the service failed and is owed an answer."""
    member = customers.find_member(session, ref=member_ref)
    if member is None:
        return []
    return [
        FoundMoment("recovery_case", case["id"], _parse(case["opened_at"]))
        for case in desk.list_member_recovery_cases(session, member_id=member.id, now=now)
        if case["status"] != "closed"
    ]


MOMENT_FETCHERS: list[MomentFetcher] = [
    incident_moments,
    card_lost_moments,
    travel_hold_moments,
    refused_redemption_moments,
    recovery_case_moments,
]


def current_moments(session: Session, *, member_ref: str, now: datetime) -> list[FoundMoment]:
    """The member's moments that open a chat now, the most pressing first."""
    found = [moment for fetch in MOMENT_FETCHERS for moment in fetch(session, member_ref, now)]
    return chat_rules.offered_moments(found, chat_config.current())


def _moment_body(moment: FoundMoment) -> dict[str, Any]:
    policy = chat_config.current().moments[moment.kind]
    return {
        "kind": moment.kind,
        "ref": moment.ref,
        "since": iso_z(moment.since),
        "team": policy.team,
        "reason": policy.reason,
        "label": moment.label,
    }


def chat_offer(session: Session, *, member_ref: str, now: datetime) -> dict[str, Any]:
    """What the portal offers: a chat at the member's moments (and the chat already open, if any);
    elsewhere the fastest channel measured by the routing recommendation (chat left out)."""
    moments = current_moments(session, member_ref=member_ref, now=now)
    actor = chat.ChatActor("member", member_ref, member_ref=member_ref)
    open_chats = [c for c in chat.list_conversations(session, actor=actor) if c["status"] in chat.OPEN]
    fastest = None
    if not moments and not open_chats:
        reason = chat_config.current().fallback_reason
        recommendation = desk.channel_recommendation(session, member_ref=member_ref, reason=reason, now=now)
        order = desk_config.current().routing.default_order
        fastest = chat_rules.fastest_other_channel(recommendation["channels"], order)
    return {
        "member_ref": member_ref,
        "chat": bool(moments) or bool(open_chats),
        "moments": [_moment_body(m) for m in moments],
        "open_chat": open_chats[-1] if open_chats else None,
        "fastest_channel": fastest,
    }


def open_chat(
    engine: Engine, *, key: str, member_ref: str, moment_kind: str, moment_ref: str, now: datetime
) -> Outcome:
    """Open a chat at one of the member's current moments (422 for any other), in one transaction."""

    def use_case(session: Session) -> Outcome:
        found = current_moments(session, member_ref=member_ref, now=now)
        moment = next((m for m in found if (m.kind, m.ref) == (moment_kind, moment_ref)), None)
        if moment is None:
            raise MomentNotCurrent(
                f"{moment_kind} {moment_ref!r} is not a current moment of {member_ref}", field="moment_ref"
            )
        return chat.open_conversation(session, key=key, member_ref=member_ref, moment=moment, now=now)

    outcome = run_in_transaction(engine, use_case)
    if outcome.status_code == 201 and not outcome.replayed:
        live.publish_status(outcome.body)
    return outcome


# --- routes ---------------------------------------------------------------------------------------

router = APIRouter(prefix="/v1", tags=["chat"])
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Not found", **_PROBLEM},
    409: {"description": "Conflict", **_PROBLEM},
    422: {"description": "Invalid input", **_PROBLEM},
}
ChatOpener = Annotated[Principal, Depends(require(Role.MEMBER))]
OfferReader = Annotated[Principal, Depends(require(Role.MEMBER, Role.AGENT, Role.SUPERVISOR))]


@router.get("/members/{ref}/chat-offer", response_model=ChatOfferRead, responses=ERRORS)
def get_chat_offer(
    ref: Annotated[str, Path(min_length=1, max_length=200)],
    engine: DbEngine,
    clock: AppClock,
    principal: OfferReader,
) -> dict[str, Any]:
    """Whether the member is offered a chat (their current moments), else the fastest channel."""
    ensure_member_scope(principal, ref)
    with read_session(engine) as session:
        return chat_offer(session, member_ref=ref, now=clock.now())


@router.post("/chats", status_code=201, response_model=ChatRead, responses=ERRORS)
def post_chat(body: ChatCreate, engine: DbEngine, clock: AppClock, principal: ChatOpener) -> JSONResponse:
    """Open a chat at a current moment (201); a chat still open is given back instead (200)."""
    if principal.role is Role.MEMBER:
        member_ref = principal.member_ref
        if body.member_ref is not None:
            ensure_member_scope(principal, body.member_ref)
    else:
        member_ref = body.member_ref
    if not member_ref:
        raise InvalidInput("a staff key names the member", field="member_ref")
    return respond(
        open_chat(
            engine,
            key=body.id,
            member_ref=member_ref,
            moment_kind=body.moment_kind,
            moment_ref=body.moment_ref,
            now=clock.now(),
        )
    )
