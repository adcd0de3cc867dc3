"""Request and response models of the member chat."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from prevenance.desk.rules import OUTCOMES

Outcome = Literal["resolved", "pending", "transferred", "callback_scheduled", "escalated"]
assert set(OUTCOMES) == set(Outcome.__args__)  # type: ignore[attr-defined]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ChatCreate(_Strict):
    """A member opens a chat at one of their current moments (see ``GET /v1/members/{ref}/chat-offer``)."""

    id: str = Field(
        min_length=1, max_length=200, pattern=r"^[A-Za-z0-9._:-]+$", description="idempotency key"
    )
    moment_kind: str = Field(min_length=1, max_length=40)
    moment_ref: str = Field(min_length=1, max_length=200)
    member_ref: str | None = Field(default=None, min_length=1, max_length=200, description="staff keys only")


class ChatRead(BaseModel):
    id: str
    member_ref: str
    language: str
    moment_kind: str
    moment_ref: str
    team: str
    reason: str
    status: Literal["waiting", "active", "closed"]
    agent: str | None
    last_seq: int
    opened_at: str
    taken_at: str | None
    closed_at: str | None
    contact_id: str | None


class ChatMessageCreate(_Strict):
    client_id: str = Field(min_length=1, max_length=200, description="the sender's id: a resend lands once")
    text: str = Field(min_length=1, max_length=4000)


class ChatMessageRead(BaseModel):
    conversation_id: str
    seq: int
    client_id: str
    author_role: Literal["member", "agent"]
    author: str
    text: str
    sent_at: str


class ChatClose(_Strict):
    reason: str | None = Field(default=None, min_length=1, max_length=80, description="default: the moment's")
    outcome: Outcome
    notes: str = Field(default="", max_length=4000)


class ChatClosedRead(ChatRead):
    contact: dict[str, object]


class ChatAgentPut(_Strict):
    teams: list[str] = Field(max_length=50)


class ChatAgentRead(BaseModel):
    name: str
    teams: list[str]
    updated_at: str


class ChatHourRead(BaseModel):
    hour: int
    chats: int
    wait_median_s: float | None
    wait_p90_s: float | None
    handled: int
    handle_median_s: float | None
    handle_p90_s: float | None


class ChatTimesRead(BaseModel):
    month: str
    hours: list[ChatHourRead]


class ChatMomentRead(BaseModel):
    kind: str
    ref: str
    since: str
    team: str
    reason: str
    label: str


class ChatOfferRead(BaseModel):
    member_ref: str
    chat: bool
    moments: list[ChatMomentRead]
    open_chat: ChatRead | None
    fastest_channel: str | None
