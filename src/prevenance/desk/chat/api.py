"""REST and WebSocket routes of the member chat (opening a chat checks the member's moments across
domains, so ``POST /v1/chats`` lives in ``views.chat_moments``).

A member key sees only its own chats (another member's answer 404); an agent key sees the queues of
the teams set by ``PUT /v1/chat-agents/{name}`` (its key's name) and the chats it took; supervisors
and admins see every queue.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, WebSocket
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from prevenance.common.auth import Principal, Role
from prevenance.common.clock import Clock
from prevenance.common.deps import AppClock, DbEngine, find_principal, require
from prevenance.common.inputs import OptionalMonth
from prevenance.common.periods import month_bounds, month_of
from prevenance.common.problems import PROBLEM_JSON
from prevenance.common.responses import respond
from prevenance.db import read_session, run_in_transaction
from prevenance.desk.chat import live, service
from prevenance.desk.chat.rules import MAX_SEQ
from prevenance.desk.chat.schemas import (
    ChatAgentPut,
    ChatAgentRead,
    ChatClose,
    ChatClosedRead,
    ChatMessageCreate,
    ChatMessageRead,
    ChatRead,
    ChatTimesRead,
)
from prevenance.desk.chat.service import ChatActor

router = APIRouter(prefix="/v1", tags=["chat"])

ChatUser = Annotated[Principal, Depends(require(Role.MEMBER, Role.AGENT, Role.SUPERVISOR))]
ChatStaff = Annotated[Principal, Depends(require(Role.AGENT, Role.SUPERVISOR))]
Supervisor = Annotated[Principal, Depends(require(Role.SUPERVISOR))]
Id = Annotated[str, Path(min_length=1, max_length=200)]
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
ERRORS: dict[int | str, dict[str, Any]] = {
    403: {"description": "Another team's chat", **_PROBLEM},
    404: {"description": "Not found", **_PROBLEM},
    409: {"description": "Conflict", **_PROBLEM},
    422: {"description": "Invalid input", **_PROBLEM},
}


def actor_of(session: Any, principal: Principal) -> ChatActor:
    """The chat actor behind an API key: its member, an agent (by the key's name) or a supervisor."""
    if principal.role is Role.MEMBER:
        assert principal.member_ref is not None
        return ChatActor("member", principal.member_ref, member_ref=principal.member_ref)
    return service.actor_for_agent(
        session, name=principal.name, supervisor=principal.role in (Role.SUPERVISOR, Role.ADMIN)
    )


def _actor(engine: Any, principal: Principal) -> ChatActor:
    with read_session(engine) as session:
        return actor_of(session, principal)


@router.get("/chats", response_model=list[ChatRead])
def get_chats(
    engine: DbEngine,
    principal: ChatUser,
    status: Annotated[Literal["waiting", "active", "closed"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> list[dict[str, Any]]:
    """A member's own chats; an agent's queue (their teams' open chats and those they hold)."""
    with read_session(engine) as session:
        actor = actor_of(session, principal)
        return service.list_conversations(session, actor=actor, status=status, limit=limit)


@router.get("/chats/{id}", response_model=ChatRead, responses=ERRORS)
def get_chat(id: Id, engine: DbEngine, principal: ChatUser) -> dict[str, Any]:
    """One chat."""
    with read_session(engine) as session:
        return service.get_conversation(session, conversation_id=id, actor=actor_of(session, principal))


@router.get("/chats/{id}/messages", response_model=list[ChatMessageRead], responses=ERRORS)
def get_chat_messages(
    id: Id,
    engine: DbEngine,
    principal: ChatUser,
    after: Annotated[int, Query(ge=0, le=MAX_SEQ, description="the last seq the client has")] = 0,
    limit: Annotated[int, Query(ge=1, le=500)] = 500,
) -> list[dict[str, Any]]:
    """The chat's messages after ``after``, in order."""
    with read_session(engine) as session:
        actor = actor_of(session, principal)
        return service.list_messages(session, conversation_id=id, actor=actor, after=after, limit=limit)


@router.post("/chats/{id}/messages", status_code=201, response_model=ChatMessageRead, responses=ERRORS)
def post_chat_message(
    id: Id, body: ChatMessageCreate, engine: DbEngine, clock: AppClock, principal: ChatUser
) -> JSONResponse:
    """Send a message (the member, or the agent who took the chat); the same ``client_id`` replays."""
    actor = _actor(engine, principal)
    outcome = run_in_transaction(
        engine,
        lambda s: service.post_message(
            s, conversation_id=id, actor=actor, client_id=body.client_id, text=body.text, now=clock.now()
        ),
    )
    if not outcome.replayed:
        live.publish_message(outcome.body)
    return respond(outcome)


@router.post("/chats/{id}/take", response_model=ChatRead, responses=ERRORS)
def post_chat_take(id: Id, engine: DbEngine, clock: AppClock, principal: ChatStaff) -> dict[str, Any]:
    """Take a waiting chat of one's teams: of agents taking at once exactly one wins (409 for the others)."""
    actor = _actor(engine, principal)
    body = run_in_transaction(
        engine, lambda s: service.take(s, conversation_id=id, actor=actor, now=clock.now())
    )
    live.publish_status(body)
    return body


@router.post("/chats/{id}/close", response_model=ChatClosedRead, responses=ERRORS)
def post_chat_close(
    id: Id, body: ChatClose, engine: DbEngine, clock: AppClock, principal: ChatStaff
) -> JSONResponse:
    """Close a taken chat and record it as a contact (channel ``chat``) with its reason and outcome."""
    actor = _actor(engine, principal)
    outcome = run_in_transaction(
        engine,
        lambda s: service.close(
            s,
            conversation_id=id,
            actor=actor,
            reason=body.reason,
            outcome=body.outcome,
            notes=body.notes,
            now=clock.now(),
        ),
    )
    if not outcome.replayed:
        live.publish_status(outcome.body)
    return respond(outcome)


@router.put("/chat-agents/{name}", response_model=ChatAgentRead, responses=ERRORS)
def put_chat_agent(
    name: Annotated[str, Path(min_length=1, max_length=120)],
    body: ChatAgentPut,
    engine: DbEngine,
    clock: AppClock,
    _: Supervisor,
) -> dict[str, Any]:
    """Set the teams whose chat queues an agent (an API key's or console user's name) serves."""
    return run_in_transaction(
        engine, lambda s: service.put_agent(s, name=name, teams=body.teams, now=clock.now())
    )


@router.get("/chat-agents/{name}", response_model=ChatAgentRead, responses=ERRORS)
def get_chat_agent(
    name: Annotated[str, Path(min_length=1, max_length=120)], engine: DbEngine, _: ChatStaff
) -> dict[str, Any]:
    """An agent's chat teams."""
    with read_session(engine) as session:
        return service.get_agent(session, name=name)


@router.get("/reports/chat-times", response_model=ChatTimesRead)
def get_chat_times(
    engine: DbEngine, clock: AppClock, _: Supervisor, month: OptionalMonth = None
) -> dict[str, Any]:
    """Waiting (never charged to the member) and handling times of a month's chats, by hour of day (UTC)."""
    now = clock.now()
    chosen = month or month_of(now)
    start, end = month_bounds(chosen)
    with read_session(engine) as session:
        return {"month": chosen, "hours": service.times_by_hour(session, start=start, end=end, now=now)}


# --- live: WebSockets with an API key (the console and portal have their own, on the session) ---


async def _ws_actor(ws: WebSocket) -> ChatActor | None:
    """The actor of a socket's ``Authorization: Bearer`` key; None (refused) when absent or unknown."""
    scheme, _, secret = (ws.headers.get("authorization") or "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        return None
    engine = ws.app.state.engine
    principal = await find_principal(engine, secret.strip())
    if principal is None or principal.role not in (Role.MEMBER, Role.AGENT, Role.SUPERVISOR, Role.ADMIN):
        return None
    return await run_in_threadpool(_actor, engine, principal)


@router.websocket("/chats/{id}/ws")
async def chat_socket(ws: WebSocket, id: str, after: int = 0) -> None:
    """A conversation, live: history after ``after``, then messages, typing and status as they happen."""
    actor = await _ws_actor(ws)
    if actor is None:
        await ws.close(code=live.POLICY_VIOLATION)
        return
    clock: Clock = ws.app.state.clock
    await live.serve_conversation(
        ws, engine=ws.app.state.engine, clock=clock, actor=actor, conversation_id=id, after=after
    )


@router.websocket("/chat-queue/ws")
async def chat_queue_socket(ws: WebSocket) -> None:
    """An agent's queue, live: their teams' open chats on connect and after every change."""
    actor = await _ws_actor(ws)
    if actor is None or actor.role == "member":
        await ws.close(code=live.POLICY_VIOLATION)
        return
    await live.serve_queue(ws, engine=ws.app.state.engine, clock=ws.app.state.clock, actor=actor)
