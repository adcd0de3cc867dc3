"""The live side of the chat: one WebSocket per open conversation (member or agent) and one per
agent for the queue. The database is the record; the in-process hub only says "something new".

A conversation socket subscribes first, then sends what the database holds after the client's last
seen ``seq``, then forwards live events, skipping any seq already sent and reading any gap from the
database: a reload, a dropped connection or a server restart loses no message and shows none twice.

Client → server: ``{"type": "message", "client_id": "...", "text": "..."}`` (a resent ``client_id``
lands once) and ``{"type": "typing"}``. Server → client: ``conversation`` (on connect), ``message``,
``typing`` (from the other side), ``status`` (taken, closed) and ``error``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from prevenance.common.clock import Clock
from prevenance.common.ids import iso_z, new_id
from prevenance.common.problems import PrevenanceError
from prevenance.db import read_session, run_in_transaction
from prevenance.desk.chat import rules, service
from prevenance.desk.chat.hub import ALL_QUEUES, HUB, conversation_topic, queue_topic
from prevenance.desk.chat.service import ChatActor

POLICY_VIOLATION = 1008


def publish_message(message: dict[str, Any]) -> None:
    """Tell the conversation's sockets a message was stored (call after the commit)."""
    HUB.publish(conversation_topic(message["conversation_id"]), {"type": "message", **message})


def publish_status(conversation: dict[str, Any]) -> None:
    """Tell the conversation's sockets and its team's queues the chat changed (after the commit)."""
    HUB.publish(conversation_topic(conversation["id"]), {"type": "status", "conversation": conversation})
    HUB.publish(queue_topic(conversation["team"]), {"type": "queue"})
    HUB.publish(ALL_QUEUES, {"type": "queue"})


def _problem(error: PrevenanceError) -> dict[str, Any]:
    return {"type": "error", "problem": error.type_slug, "status": error.status, "detail": error.detail}


class _Sender:
    """One writer at a time on a socket (the reader and the forwarder both answer)."""

    def __init__(self, ws: WebSocket) -> None:
        self.ws, self.lock = ws, asyncio.Lock()

    async def __call__(self, data: dict[str, Any]) -> None:
        async with self.lock:
            await self.ws.send_json(data)


async def _until_first_done(*jobs: Awaitable[None]) -> None:
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if not task.cancelled() and task.exception() is not None:
                error = task.exception()
                if not isinstance(error, WebSocketDisconnect):
                    raise error  # type: ignore[misc]
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task


async def serve_conversation(
    ws: WebSocket, *, engine: Engine, clock: Clock, actor: ChatActor, conversation_id: str, after: int
) -> None:
    """Run one conversation socket until the client leaves (refused before accepting when the
    actor may not see the chat)."""

    def load() -> dict[str, Any]:
        with read_session(engine) as session:
            return service.get_conversation(session, conversation_id=conversation_id, actor=actor)

    try:
        conversation = await run_in_threadpool(load)
    except PrevenanceError:
        await ws.close(code=POLICY_VIOLATION)
        return
    await ws.accept()
    send = _Sender(ws)
    my_role = "member" if actor.role == "member" else "agent"
    with HUB.subscribe(conversation_topic(conversation_id)) as events:
        last = rules.resume_after(after)

        def backlog(since: int) -> list[dict[str, Any]]:
            with read_session(engine) as session:
                return service.messages_after(session, conversation_id=conversation_id, after=since)

        await send({"type": "conversation", "conversation": conversation})
        for message in await run_in_threadpool(backlog, last):
            await send({"type": "message", **message})
            last = message["seq"]

        async def forward() -> None:
            nonlocal last
            while True:
                event = await events.get()
                if event["type"] == "message":
                    if event["seq"] <= last:
                        continue
                    pending = [event]
                    if rules.missed(last, event["seq"]):
                        pending = [{"type": "message", **m} for m in await run_in_threadpool(backlog, last)]
                    for message in pending:
                        if message["seq"] > last:
                            await send(message)
                            last = message["seq"]
                elif event["type"] == "typing":
                    if event["role"] != my_role:
                        await send(event)
                else:
                    await send(event)

        def store(client_id: str, text: str) -> Any:
            return run_in_transaction(
                engine,
                lambda s: service.post_message(
                    s,
                    conversation_id=conversation_id,
                    actor=actor,
                    client_id=client_id,
                    text=text,
                    now=clock.now(),
                ),
            )

        async def receive() -> None:
            while True:
                data = await ws.receive_json()
                if not isinstance(data, dict):
                    continue
                if data.get("type") == "typing":
                    HUB.publish(conversation_topic(conversation_id), {"type": "typing", "role": my_role})
                elif data.get("type") == "message":
                    client_id = str(data.get("client_id") or new_id("cm"))[:200]
                    text = str(data.get("text") or "")
                    try:
                        outcome = await run_in_threadpool(store, client_id, text)
                    except PrevenanceError as error:
                        await send({**_problem(error), "client_id": client_id})
                        continue
                    publish_message(outcome.body)

        await _until_first_done(forward(), receive())


async def serve_queue(ws: WebSocket, *, engine: Engine, clock: Clock, actor: ChatActor) -> None:
    """Run an agent's queue socket: a snapshot of their teams' open chats on connect and again
    after every change (several changes at once give one snapshot)."""
    await ws.accept()
    send = _Sender(ws)
    topics = [ALL_QUEUES] if actor.teams is None else [queue_topic(team) for team in sorted(actor.teams)]

    def snapshot() -> dict[str, Any]:
        with read_session(engine) as session:
            items = service.list_conversations(session, actor=actor)
        return {"type": "queue", "server_now": iso_z(clock.now()), "items": items}

    with HUB.subscribe(*topics) as events:
        await send(await run_in_threadpool(snapshot))

        async def forward() -> None:
            while True:
                await events.get()
                while not events.empty():
                    events.get_nowait()
                await send(await run_in_threadpool(snapshot))

        async def receive() -> None:
            while True:
                await ws.receive_text()

        await _until_first_done(forward(), receive())
