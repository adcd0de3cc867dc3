"""The chat screens: the agents' live queue with the conversation and the member's 360 beside it,
and the member's chat in the portal. Both sockets ride on the console session cookie (and refuse a
page of another origin: a cookie is sent cross-site, a WebSocket has no CORS)."""

from __future__ import annotations

from typing import Annotated, Any, cast
from urllib.parse import urlsplit

from fastapi import Path, WebSocket
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from prevenance.common.auth import Role
from prevenance.common.ids import new_id
from prevenance.common.problems import InvalidInput, PrevenanceError
from prevenance.console import i18n, users
from prevenance.console.users import ConsoleIdentity
from prevenance.console.web import (
    DESK,
    Page,
    PageDep,
    console_router,
    problem_errors,
    read_cookie,
    redirect,
    render,
    screens_for,
    script_json,
)
from prevenance.customers import service as customers
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import incidents as desk_incidents
from prevenance.desk import rules as desk_rules
from prevenance.desk import service as desk
from prevenance.desk.chat import live
from prevenance.desk.chat import service as chat
from prevenance.desk.chat.service import ChatActor
from prevenance.loyalty import service as loyalty
from prevenance.settings import Settings
from prevenance.views import chat_moments

router = console_router()
Id = Annotated[str, Path(min_length=1, max_length=200)]
PORTAL = (Role.MEMBER,)


def actor_of_user(session: Any, user: ConsoleIdentity) -> ChatActor:
    """The chat actor of a signed-in console user: a member, an agent (by username) or a supervisor."""
    if user.role is Role.MEMBER:
        assert user.member_ref is not None
        return ChatActor("member", user.member_ref, member_ref=user.member_ref)
    return chat.actor_for_agent(
        session, name=user.username, supervisor=user.role in (Role.SUPERVISOR, Role.ADMIN)
    )


def _actor(p: Page, *roles: Role) -> ChatActor:
    user = p.require(*roles)
    with read_session(p.engine) as session:
        return actor_of_user(session, user)


def _words(p: Page) -> str:
    """The words the script shows, in the page's language."""
    return script_json(i18n.section(p.lang, "chat."))


# --- agents ---------------------------------------------------------------------------------------


@router.get("/console/chat")
def chat_page(p: PageDep) -> Response:
    """The live queue of the agent's teams; a chat taken opens beside the member's 360."""
    actor = _actor(p, *DESK)
    reasons = [(r["code"], r[f"label_{p.lang}"]) for r in desk.list_reasons()]
    outcomes = [(o, p.t(f"outcome.{o}")) for o in desk_rules.OUTCOMES]
    return render(
        p,
        "chat.html",
        screens=screens_for(p),
        teams=sorted(actor.teams) if actor.teams is not None else None,
        reasons=reasons,
        outcomes=outcomes,
        words=_words(p),
    )


@router.get("/console/chat/{id}/side")
def chat_side(p: PageDep, id: Id) -> Response:
    """The member's 360 in short, beside the conversation: who, what they hold, what is going on."""
    actor = _actor(p, *DESK)
    with read_session(p.engine) as session:
        conversation = chat.get_conversation(session, conversation_id=id, actor=actor)
        ref = conversation["member_ref"]
        member = customers.get_member(session, ref=ref)
        balance = loyalty.get_balance(session, member_ref=ref)
        cases = desk.list_member_cases(session, member_ref=ref, status="open", limit=5)
        contacts = desk.list_member_contacts(session, member_ref=ref, limit=5)["items"]
        incidents = desk_incidents.list_member_incidents(session, member_ref=ref)
        cards = desk.list_member_card_replacements(session, member_ref=ref, now=p.now, open_only=True)
    return render(
        p,
        "_chat_side.html",
        conversation=conversation,
        member=member,
        balance=balance,
        cases=cases,
        contacts=contacts,
        incidents=incidents,
        cards=cards,
    )


@router.post("/console/chat/{id}/take")
def chat_take(p: PageDep, id: Id) -> Response:
    """Take a waiting chat (409 when another agent was quicker)."""
    actor = _actor(p, *DESK)
    body = run_in_transaction(p.engine, lambda s: chat.take(s, conversation_id=id, actor=actor, now=p.now))
    live.publish_status(body)
    return Response(status_code=204)


@router.post("/console/chat/{id}/close")
def chat_close(p: PageDep, id: Id) -> Response:
    """Close the chat: a contact on channel chat with the reason and outcome chosen."""
    actor = _actor(p, *DESK)
    outcome = p.form.get("outcome", "")
    if outcome not in desk_rules.OUTCOMES:
        raise InvalidInput("choose an outcome", field="outcome")
    done = run_in_transaction(
        p.engine,
        lambda s: chat.close(
            s,
            conversation_id=id,
            actor=actor,
            reason=p.form.get("reason") or None,
            outcome=outcome,
            notes=p.form.get("notes", "")[:4000],
            now=p.now,
        ),
    )
    if not done.replayed:
        live.publish_status(done.body)
    return Response(status_code=204)


# --- the member ------------------------------------------------------------------------------------


@router.get("/portal/chat")
def portal_chat(p: PageDep) -> Response:
    """The chat at the member's moments (or the one open); elsewhere the fastest channel."""
    user = p.require(*PORTAL)
    assert user.member_ref is not None
    with read_session(p.engine) as session:
        offer = chat_moments.chat_offer(session, member_ref=user.member_ref, now=p.now)
    return render(p, "portal_chat.html", offer=offer, key=new_id("chat"), words=_words(p), error=None)


@router.post("/portal/chat/open")
def portal_chat_open(p: PageDep) -> Response:
    """Open a chat at one of the member's current moments."""
    user = p.require(*PORTAL)
    assert user.member_ref is not None
    ref, f = user.member_ref, p.form
    try:
        chat_moments.open_chat(
            p.engine,
            key=f.get("key", "") or new_id("chat"),
            member_ref=ref,
            moment_kind=f.get("moment_kind", ""),
            moment_ref=f.get("moment_ref", ""),
            now=p.now,
        )
    except PrevenanceError as error:
        with read_session(p.engine) as session:
            offer = chat_moments.chat_offer(session, member_ref=ref, now=p.now)
        message = next(iter(problem_errors(p, error).values()))
        return render(
            p,
            "portal_chat.html",
            error.status,
            offer=offer,
            key=new_id("chat"),
            words=_words(p),
            error=message,
        )
    return redirect(p, "/portal/chat")


# --- sockets on the session cookie -----------------------------------------------------------------


def _same_origin(ws: WebSocket) -> bool:
    origin = ws.headers.get("origin")
    return origin is None or urlsplit(origin).netloc == ws.headers.get("host")


async def _socket_actor(ws: WebSocket, roles: tuple[Role, ...]) -> ChatActor | None:
    """The actor of the socket's session cookie when its role is admitted; None to refuse."""
    if not _same_origin(ws):
        return None
    settings: Settings = ws.app.state.settings
    data = read_cookie(cast(Any, ws), settings)
    if data is None or not isinstance(data.get("u"), int):
        return None
    engine = ws.app.state.engine

    def load() -> ChatActor | None:
        with read_session(engine) as session:
            user = users.find_signed_in(session, user_id=data["u"], generation=data.get("g"))
            admitted = set(roles) if Role.MEMBER in roles else {Role.ADMIN, *roles}
            if user is None or user.role not in admitted:
                return None
            return actor_of_user(session, user)

    return await run_in_threadpool(load)


@router.websocket("/console/chat/queue/ws")
async def console_queue_socket(ws: WebSocket) -> None:
    actor = await _socket_actor(ws, DESK)
    if actor is None:
        await ws.close(code=live.POLICY_VIOLATION)
        return
    await live.serve_queue(ws, engine=ws.app.state.engine, clock=ws.app.state.clock, actor=actor)


@router.websocket("/console/chat/{id}/ws")
async def console_chat_socket(ws: WebSocket, id: str, after: int = 0) -> None:
    actor = await _socket_actor(ws, DESK)
    if actor is None:
        await ws.close(code=live.POLICY_VIOLATION)
        return
    await live.serve_conversation(
        ws, engine=ws.app.state.engine, clock=ws.app.state.clock, actor=actor, conversation_id=id, after=after
    )


@router.websocket("/portal/chat/{id}/ws")
async def portal_chat_socket(ws: WebSocket, id: str, after: int = 0) -> None:
    actor = await _socket_actor(ws, PORTAL)
    if actor is None:
        await ws.close(code=live.POLICY_VIOLATION)
        return
    await live.serve_conversation(
        ws, engine=ws.app.state.engine, clock=ws.app.state.clock, actor=actor, conversation_id=id, after=after
    )
