"""Use cases of the member chat. Each runs inside the caller's unit of work and never commits; the
caller publishes the live events once the transaction has committed (``live.py``), so a message a
subscriber hears of is always readable from the database."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from prevenance.common.bulk import rows_changed
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import as_utc, iso_z
from prevenance.customers import service as customers
from prevenance.desk import contacts
from prevenance.desk.chat import config, rules
from prevenance.desk.chat.errors import (
    ChatAlreadyTaken,
    ChatClosed,
    ChatNotTaken,
    ChatNotYours,
    UnknownChat,
    UnknownChatAgent,
)
from prevenance.desk.chat.rules import ChatTimes, FoundMoment
from prevenance.desk.chat.tables import ChatAgent, ChatConversation, ChatMessage
from prevenance.desk.errors import UnknownReason

OPEN = ("waiting", "active")
_CONV: Table = ChatConversation.__table__  # type: ignore[assignment]
_MSG: Table = ChatMessage.__table__  # type: ignore[assignment]
# Built once (the message path is the hot one): number the next message of an open chat when the
# sender is its member, or the agent who took it.
_NUMBER = (
    update(_CONV)
    .where(_CONV.c.id == bindparam("p_id"), _CONV.c.status != "closed")
    .values(last_seq=_CONV.c.last_seq + 1)
    .returning(_CONV.c.last_seq, _CONV.c.member_id)
)
_NUMBER_MEMBER = _NUMBER.where(_CONV.c.member_ref == bindparam("p_sender"))
_NUMBER_AGENT = _NUMBER.where(_CONV.c.agent == bindparam("p_sender"))
_INSERT = insert(_MSG)


def fingerprint_of(values: dict[str, Any]) -> str:
    """The fingerprint of a request's significant values (same key, other values: 409)."""
    return hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()


@dataclass(frozen=True)
class ChatActor:
    """Who acts on a chat: a member (their own chats), an agent (their teams' queues, ``teams``), or
    a supervisor (every team: ``teams`` is None)."""

    role: str  # "member" | "agent" | "supervisor"
    name: str
    member_ref: str | None = None
    teams: frozenset[str] | None = None


def actor_for_agent(session: Session, *, name: str, supervisor: bool) -> ChatActor:
    """An agent's actor with the teams set by ``PUT /v1/chat-agents/{name}`` (none until then)."""
    if supervisor:
        return ChatActor("supervisor", name)
    row = session.get(ChatAgent, name)
    return ChatActor("agent", name, teams=frozenset(row.teams if row else ()))


def conversation_body(conv: ChatConversation) -> dict[str, Any]:
    return {
        "id": conv.id,
        "member_ref": conv.member_ref,
        "language": conv.language,
        "moment_kind": conv.moment_kind,
        "moment_ref": conv.moment_ref,
        "team": conv.team,
        "reason": conv.reason,
        "status": conv.status,
        "agent": conv.agent,
        "last_seq": conv.last_seq,
        "opened_at": iso_z(conv.opened_at),
        "taken_at": iso_z(conv.taken_at),
        "closed_at": iso_z(conv.closed_at),
        "contact_id": conv.contact_id,
    }


def message_body(message: ChatMessage) -> dict[str, Any]:
    return {
        "conversation_id": message.conversation_id,
        "seq": message.seq,
        "client_id": message.client_id,
        "author_role": message.author_role,
        "author": message.author,
        "text": message.text,
        "sent_at": iso_z(message.sent_at),
    }


def may_see(actor: ChatActor, conv: ChatConversation) -> bool:
    """A member sees only their own chats; an agent their teams' chats and those they took."""
    if actor.role == "member":
        return conv.member_ref == actor.member_ref
    if actor.teams is None:
        return True
    return conv.team in actor.teams or conv.agent == actor.name


def _load(
    session: Session, conversation_id: str, actor: ChatActor, *, lock: bool = False
) -> ChatConversation:
    conv = session.get(ChatConversation, conversation_id, with_for_update=lock)
    # Another member's chat is answered as missing: its existence is not the caller's business.
    if conv is None or (actor.role == "member" and conv.member_ref != actor.member_ref):
        raise UnknownChat(f"no chat {conversation_id!r}", field="id")
    if not may_see(actor, conv):
        raise ChatNotYours(f"chat {conversation_id!r} is in team {conv.team!r}'s queue", field="id")
    return conv


def get_conversation(session: Session, *, conversation_id: str, actor: ChatActor) -> dict[str, Any]:
    """One chat the actor may see; 404 (another member's or unknown) or 403 (another team's)."""
    return conversation_body(_load(session, conversation_id, actor))


def open_conversation(
    session: Session, *, key: str, member_ref: str, moment: FoundMoment, now: datetime
) -> Outcome:
    """Open a chat at a moment the caller has checked is current for the member (``views``); a
    member with a chat still open gets that one back (200) instead of a second."""
    policy = config.current().moments[moment.kind]
    fingerprint = fingerprint_of({"member_ref": member_ref, "kind": moment.kind, "ref": moment.ref})

    def produce() -> Outcome:
        member = customers.get_member(session, ref=member_ref, for_update=True)
        existing = session.scalars(
            select(ChatConversation)
            .where(ChatConversation.member_id == member.id, ChatConversation.status.in_(OPEN))
            .order_by(ChatConversation.opened_at)
        ).first()
        if existing is not None:
            return Outcome(200, conversation_body(existing))
        conv = ChatConversation(
            id=key,
            member_id=member.id,
            member_ref=member.ref,
            language=member.language,
            moment_kind=moment.kind,
            moment_ref=moment.ref,
            team=policy.team,
            reason=policy.reason,
            status="waiting",
            agent=None,
            last_seq=0,
            opened_at=now,
        )
        session.add(conv)
        session.flush()
        return Outcome(201, conversation_body(conv))

    return run_idempotent(
        session, scope="chat-open", key=key, fingerprint=fingerprint, now=now, produce=produce
    )


def list_conversations(
    session: Session, *, actor: ChatActor, status: str | None = None, limit: int = 100
) -> list[dict[str, Any]]:
    """The actor's chats: a member's own (newest first); an agent's teams' queue and the chats they
    hold (open ones unless ``status`` says otherwise, oldest waiting first)."""
    statement = select(ChatConversation)
    if actor.role == "member":
        statement = statement.where(ChatConversation.member_ref == actor.member_ref)
        if status is not None:
            statement = statement.where(ChatConversation.status == status)
        statement = statement.order_by(ChatConversation.opened_at.desc(), ChatConversation.id)
    else:
        if actor.teams is not None:
            statement = statement.where(
                ChatConversation.team.in_(sorted(actor.teams)) | (ChatConversation.agent == actor.name)
            )
        wanted = (status,) if status else OPEN
        statement = statement.where(ChatConversation.status.in_(wanted)).order_by(
            ChatConversation.opened_at, ChatConversation.id
        )
    return [conversation_body(c) for c in session.scalars(statement.limit(limit))]


def list_messages(
    session: Session, *, conversation_id: str, actor: ChatActor, after: int = 0, limit: int = 500
) -> list[dict[str, Any]]:
    """The chat's messages after ``after`` in sequence order (a resuming client passes its last seq)."""
    _load(session, conversation_id, actor)
    return messages_after(session, conversation_id=conversation_id, after=after, limit=limit)


def messages_after(
    session: Session, *, conversation_id: str, after: int, limit: int = 500
) -> list[dict[str, Any]]:
    """Messages after ``after``, in order, without an access check (the socket checked on connect)."""
    rows = session.scalars(
        select(ChatMessage)
        .where(ChatMessage.conversation_id == conversation_id, ChatMessage.seq > after)
        .order_by(ChatMessage.seq)
        .limit(limit)
    )
    return [message_body(m) for m in rows]


def post_message(
    session: Session, *, conversation_id: str, actor: ChatActor, client_id: str, text: str, now: datetime
) -> Outcome:
    """Add a message with the next sequence number; the same ``client_id`` again replays the first
    answer (a message resent after a lost connection lands once)."""
    cleaned = rules.check_text(text, config.current())
    author_role = "member" if actor.role == "member" else "agent"
    fingerprint = fingerprint_of({"author": actor.name, "role": author_role, "text": cleaned})
    key = f"{conversation_id}:{client_id}"

    def produce() -> Outcome:
        # The hot path in two statements: one conditional update numbers the message (and checks,
        # in its WHERE, that the chat is open and the sender's), one insert stores it.
        statement = _NUMBER_MEMBER if author_role == "member" else _NUMBER_AGENT
        sender = actor.member_ref if author_role == "member" else actor.name
        row = session.execute(statement, {"p_id": conversation_id, "p_sender": sender}).first()
        if row is None:
            _refuse_message(session, conversation_id, actor)
        assert row is not None
        values = {
            "conversation_id": conversation_id,
            "seq": row.last_seq,
            "client_id": client_id,
            "author_role": author_role,
            "author": actor.name if author_role == "agent" else "member",
            "text": cleaned,
        }
        session.execute(_INSERT, {"id": key, "member_id": row.member_id, "sent_at": now, **values})
        return Outcome(201, {**values, "sent_at": iso_z(now)})

    return run_idempotent(
        session,
        scope="chat-message",
        key=key,
        fingerprint=fingerprint,
        now=now,
        produce=produce,
    )


def _refuse_message(session: Session, conversation_id: str, actor: ChatActor) -> None:
    """Why a message was refused: unknown or another's chat, closed, not taken, another agent's."""
    conv = _load(session, conversation_id, actor)
    if conv.status == "closed":
        raise ChatClosed(f"chat {conv.id!r} is closed", field="id")
    if conv.agent is None:
        raise ChatNotTaken(f"take chat {conv.id!r} before answering", field="id")
    raise ChatAlreadyTaken(f"chat {conv.id!r} is {conv.agent!r}'s", field="id")


def take(session: Session, *, conversation_id: str, actor: ChatActor, now: datetime) -> dict[str, Any]:
    """The agent takes a waiting chat. One conditional update decides: of agents taking at once,
    exactly one wins and the others get 409; the winner taking again gets the chat back."""
    conv = _load(session, conversation_id, actor)
    won = session.execute(
        update(ChatConversation)
        .where(ChatConversation.id == conversation_id, ChatConversation.status == "waiting")
        .values(status="active", agent=actor.name, taken_at=now)
        .execution_options(synchronize_session=False)
    )
    session.refresh(conv)
    if rows_changed(won) == 1 or (conv.status == "active" and conv.agent == actor.name):
        return conversation_body(conv)
    if conv.status == "closed":
        raise ChatClosed(f"chat {conv.id!r} is closed", field="id")
    raise ChatAlreadyTaken(f"chat {conv.id!r} was taken by {conv.agent!r}", field="id")


def close(
    session: Session,
    *,
    conversation_id: str,
    actor: ChatActor,
    reason: str | None,
    outcome: str,
    notes: str,
    now: datetime,
) -> Outcome:
    """Close a taken chat and record it as a contact (channel ``chat``, inbound) through the contact
    service, so first-contact resolution, the survey invitation and recovery follow as for any
    contact. Closing again with the same body replays the answer, to who may see the chat only: the
    check comes before the replay, which would otherwise show another team's chat to anyone sending
    the same (guessable) body."""
    fingerprint = fingerprint_of({"reason": reason, "outcome": outcome, "notes": notes})
    _load(session, conversation_id, actor)

    def produce() -> Outcome:
        conv = _load(session, conversation_id, actor, lock=True)
        if conv.status == "closed":
            raise ChatClosed(f"chat {conv.id!r} is already closed", field="id")
        if conv.status != "active" or conv.agent is None:
            raise ChatNotTaken(f"chat {conv.id!r} has not been taken", field="id")
        if actor.role == "agent" and conv.agent != actor.name:
            raise ChatAlreadyTaken(f"chat {conv.id!r} is {conv.agent!r}'s", field="id")
        chosen = reason or conv.reason
        contact = contacts.ContactInput(
            id=conv.id,
            member_ref=conv.member_ref,
            channel="chat",
            direction="inbound",
            agent=conv.agent,
            team=conv.team,
            reason=chosen,
            started_at=conv.opened_at,
            ended_at=max(as_utc(now), conv.opened_at),
            notes=notes,
            outcome=outcome,
        )
        try:
            logged = contacts.log_contact(session, contact=contact, now=now)
        except UnknownReason as error:
            raise UnknownReason(error.detail, field="reason") from None
        conv.status, conv.closed_at, conv.contact_id = "closed", now, conv.id
        session.flush()
        return Outcome(200, {**conversation_body(conv), "contact": logged.body})

    return run_idempotent(
        session, scope="chat-close", key=conversation_id, fingerprint=fingerprint, now=now, produce=produce
    )


def put_agent(session: Session, *, name: str, teams: list[str], now: datetime) -> dict[str, Any]:
    """Set the teams whose queues an agent serves (putting the same teams again changes nothing)."""
    cleaned = rules.check_teams(teams)
    row = session.get(ChatAgent, name, with_for_update=True)
    if row is None:
        row = ChatAgent(name=name, teams=cleaned, updated_at=now)
        session.add(row)
    elif row.teams != cleaned:
        row.teams, row.updated_at = cleaned, now
    session.flush()
    return {"name": row.name, "teams": list(row.teams), "updated_at": iso_z(row.updated_at)}


def get_agent(session: Session, *, name: str) -> dict[str, Any]:
    """An agent's teams; 404 when never set."""
    row = session.get(ChatAgent, name)
    if row is None:
        raise UnknownChatAgent(f"no chat agent {name!r}", field="name")
    return {"name": row.name, "teams": list(row.teams), "updated_at": iso_z(row.updated_at)}


def times_by_hour(session: Session, *, start: datetime, end: datetime, now: datetime) -> list[dict[str, Any]]:
    """Waiting and handling times of the chats opened in [start, end), by hour of opening."""
    rows = session.execute(
        select(ChatConversation.opened_at, ChatConversation.taken_at, ChatConversation.closed_at).where(
            ChatConversation.opened_at >= start, ChatConversation.opened_at < end
        )
    )
    return rules.times_by_hour([ChatTimes(r.opened_at, r.taken_at, r.closed_at) for r in rows], now=now)
