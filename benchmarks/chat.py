"""Benchmark: the member chat on one uvicorn worker — 300 members and 50 agents connected at once —
beside a bare WebSocket relay that stores nothing, in the same run. Not a test.

1. ``prevenance``: a fresh SQLite database with ``--members`` members, each with a card reported
   lost (the moment that opens their chat), an open chat, and ``--agents`` agents who took the chats
   (``--members / --agents`` each). One worker serves the API; the driver (this process, asyncio)
   opens one socket per member (``/v1/chats/{id}/ws``), one per agent per chat, and one queue
   socket per agent (``/v1/chat-queue/ws``). Each member sends a message every ``--interval``
   seconds (jittered); the agent's socket answers each one on receipt. A message's delivery time is
   from the sender's ``send`` to the other side's receipt: the write (numbered, idempotent, in one
   transaction), the in-process publication and the forward, end to end.
2. The ceiling: a bare Starlette app relaying each message to the other socket of its room, nothing
   stored, the same sockets and the same pattern.

It prints messages delivered per second, p50/p99/max delivery, lost and duplicated messages, and the
server's peak resident memory (``VmHWM``) and CPU time, for both, and the verdict against p99 ≤ 200 ms.

    PYTHONPATH=src python benchmarks/chat.py [--duration 20] [--members 300] [--agents 50] [--interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from _server import cpu_seconds, free_port, peak_rss_kb, stop, wait_ready
from websockets.asyncio.client import ClientConnection, connect

BARE_APP = '''
"""A bare WebSocket relay: each message goes to the other socket of its room; nothing stored."""
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

rooms: dict[str, dict[str, WebSocket]] = {}


async def healthz(request):
    return PlainTextResponse("ok")


async def room(ws: WebSocket) -> None:
    name, side = ws.path_params["room"], ws.path_params["side"]
    await ws.accept()
    rooms.setdefault(name, {})[side] = ws
    other = "agent" if side == "member" else "member"
    try:
        while True:
            text = await ws.receive_text()
            peer = rooms[name].get(other)
            if peer is not None:
                await peer.send_text(text)
    except WebSocketDisconnect:
        rooms[name].pop(side, None)


app = Starlette(routes=[Route("/healthz", healthz), WebSocketRoute("/{room}/{side}", room)])
'''


@dataclass
class Result:
    name: str
    sent: int = 0
    delivered: int = 0
    duplicates: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    errors: int = 0
    seconds: float = 0.0
    peak_rss_kb: int = 0
    cpu_seconds: float = 0.0
    connect_seconds: float = 0.0

    def line(self) -> str:
        lat = sorted(self.latencies_ms)
        p50 = statistics.median(lat) if lat else float("nan")
        p99 = lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan")
        worst = lat[-1] if lat else float("nan")
        lost = self.sent - self.delivered
        return (
            f"{self.name:<44} {self.delivered / self.seconds:8.1f} msg/s delivered · p50 {p50:6.1f} ms · "
            f"p99 {p99:6.1f} ms · max {worst:7.1f} ms · sent {self.sent} · lost {lost} · "
            f"duplicated {self.duplicates} · errors {self.errors} · peak RSS {self.peak_rss_kb / 1024:.0f} MiB · "
            f"server CPU {self.cpu_seconds:.1f} s · connect {self.connect_seconds:.1f} s"
        )

    def p99(self) -> float:
        lat = sorted(self.latencies_ms)
        return lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("inf")


# --- preparing prevenance ---------------------------------------------------------------------------


def prepare(url: str, members: int, agents: int) -> tuple[list[tuple[str, str]], list[tuple[str, list[str]]]]:
    """Members with a lost card and an open chat, agents who took them; the keys to connect with."""
    from prevenance.common.auth import create_key
    from prevenance.customers import service as customers
    from prevenance.db import make_engine, read_session, run_in_transaction, unit_of_work
    from prevenance.desk import service as desk
    from prevenance.desk.chat import service as chat
    from prevenance.loyalty import programme
    from prevenance.migrate import upgrade
    from prevenance.views import chat_moments

    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    member_keys: list[tuple[str, str]] = []
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=now)
        for i in range(members):
            ref = f"bench-{i:05d}"
            data = customers.MemberData(f"Member {i}", f"m{i}@example.fr", "fr", "FR", "gold")
            customers.upsert(session, ref=ref, data=data, now=now)
            order = desk.CardReplacementInput(
                id=f"lost-{i}", member_ref=ref, city="Paris", country="FR", address=""
            )
            desk.order_card_replacement(session, order=order, now=now)
            _, secret = create_key(session, role="member", name=ref, member_ref=ref, now=now)
            member_keys.append((f"chat-{i:05d}", secret))
        agent_keys = []
        for a in range(agents):
            _, secret = create_key(session, role="agent", name=f"agent-{a}", now=now)
            agent_keys.append(secret)
            chat.put_agent(session, name=f"agent-{a}", teams=["cards"], now=now)
    for i in range(members):
        ref = f"bench-{i:05d}"
        chat_moments.open_chat(
            engine,
            key=f"chat-{i:05d}",
            member_ref=ref,
            moment_kind="card_lost",
            moment_ref=f"lost-{i}",
            now=now,
        )
    agents_chats: list[tuple[str, list[str]]] = []
    for a in range(agents):
        with read_session(engine) as session:
            actor = chat.actor_for_agent(session, name=f"agent-{a}", supervisor=False)
        mine = [f"chat-{i:05d}" for i in range(a, members, agents)]
        for chat_id in mine:
            run_in_transaction(
                engine, lambda s, c=chat_id, who=actor: chat.take(s, conversation_id=c, actor=who, now=now)
            )
        agents_chats.append((agent_keys[a], mine))
    engine.dispose()
    return member_keys, agents_chats


# --- driving ---------------------------------------------------------------------------------------


class Pairs:
    """Both sides of every conversation, the messages in flight, the measurements."""

    def __init__(self, result: Result) -> None:
        self.result = result
        self.sent_at: dict[str, float] = {}
        self.seen: set[str] = set()
        self.stopping = False

    def received(self, token: str) -> None:
        if token in self.seen:
            self.result.duplicates += 1
            return
        started = self.sent_at.get(token)
        if started is None:
            return
        self.seen.add(token)
        self.result.delivered += 1
        self.result.latencies_ms.append((time.perf_counter() - started) * 1000)


async def _open(url: str, headers: dict[str, str], gate: asyncio.Semaphore) -> ClientConnection:
    async with gate:
        for attempt in range(5):
            try:
                return await connect(url, additional_headers=headers, open_timeout=60, max_queue=None)
            except (OSError, TimeoutError):
                await asyncio.sleep(0.2 * (attempt + 1))
        return await connect(url, additional_headers=headers, open_timeout=60, max_queue=None)


def _token(text: str) -> str:
    return text.split(" ", 1)[0]


async def run_side(
    ws: ClientConnection, pairs: Pairs, *, role: str, interval: float, kind: str, deadline: float
) -> None:
    """One socket: a member sends every ``interval`` (jittered); an agent answers what it receives."""
    count = 0

    async def send(text: str) -> None:
        token = _token(text)
        pairs.sent_at[token] = time.perf_counter()
        pairs.result.sent += 1
        if kind == "prevenance":
            await ws.send(json.dumps({"type": "message", "client_id": token, "text": text}))
        else:
            await ws.send(json.dumps({"type": "message", "author_role": role, "text": text}))

    async def talk() -> None:
        nonlocal count
        await asyncio.sleep(random.uniform(0, interval))
        while time.perf_counter() < deadline:
            count += 1
            await send(f"m{id(ws)}-{count} bonjour, où en est ma carte ?")
            await asyncio.sleep(interval * random.uniform(0.8, 1.2))

    async def listen() -> None:
        nonlocal count
        async for raw in ws:
            data = json.loads(raw)
            if data.get("type") == "error":
                pairs.result.errors += 1
                continue
            if data.get("type") != "message" or data.get("author_role") == role:
                continue
            token = _token(data["text"])
            pairs.received(token)
            if role == "agent" and not pairs.stopping and token.startswith("m"):
                count += 1
                await send(f"a{id(ws)}-{count} elle part ce soir.")

    listener = asyncio.ensure_future(listen())
    if role == "member":
        await talk()
    else:
        while time.perf_counter() < deadline:
            await asyncio.sleep(0.2)
    await asyncio.sleep(2.0)  # the last messages' deliveries
    listener.cancel()
    await ws.close()


async def drive(
    port: int,
    sides: list[tuple[str, str, dict[str, str]]],
    args: argparse.Namespace,
    result: Result,
    kind: str,
) -> None:
    pairs = Pairs(result)
    gate = asyncio.Semaphore(32)
    started = time.perf_counter()
    sockets = await asyncio.gather(
        *(_open(f"ws://127.0.0.1:{port}{path}", headers, gate) for path, _, headers in sides)
    )
    result.connect_seconds = time.perf_counter() - started
    print(f"  {kind}: {len(sockets)} sockets open in {result.connect_seconds:.1f} s")
    if kind == "prevenance":
        for ws in sockets:  # the conversation / queue snapshot each socket starts with
            await ws.recv()
    deadline = time.perf_counter() + args.duration
    start = time.perf_counter()
    jobs = [
        run_side(ws, pairs, role=role, interval=args.interval, kind=kind, deadline=deadline)
        for ws, (_, role, _) in zip(sockets, sides, strict=True)
        if role in ("member", "agent")
    ]
    queues = [ws for ws, (_, role, _) in zip(sockets, sides, strict=True) if role == "queue"]

    async def finish() -> None:
        await asyncio.sleep(args.duration)
        pairs.stopping = True

    await asyncio.gather(finish(), *jobs)
    result.seconds = time.perf_counter() - start
    for ws in queues:
        await ws.close()


def _serve(command: list[str], env: dict[str, str], cwd: Path, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command, cwd=cwd, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )


def run_prevenance(args: argparse.Namespace, tmp: Path) -> Result:
    url = f"sqlite:///{tmp / 'chat.db'}"
    started = time.perf_counter()
    member_keys, agents = prepare(url, args.members, args.agents)
    print(
        f"prevenance: {args.members} members with an open chat, {args.agents} agents ({time.perf_counter() - started:.1f} s)"
    )
    sides: list[tuple[str, str, dict[str, str]]] = []
    for chat_id, secret in member_keys:
        sides.append((f"/v1/chats/{chat_id}/ws", "member", {"Authorization": f"Bearer {secret}"}))
    for secret, chats in agents:
        headers = {"Authorization": f"Bearer {secret}"}
        sides.append(("/v1/chat-queue/ws", "queue", headers))
        sides += [(f"/v1/chats/{chat_id}/ws", "agent", headers) for chat_id in chats]
    port = free_port()
    env = {**os.environ, "PREVENANCE_DATABASE_URL": url, "PREVENANCE_SECRET_KEY": os.urandom(16).hex()}
    command = [sys.executable, "-m", "uvicorn", "prevenance.asgi:app", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--log-level", "warning"]  # fmt: skip
    server = _serve(command, env, Path.cwd(), tmp / "prevenance.log")
    result = Result("prevenance chat (stored, numbered, live)")
    try:
        wait_ready(port, server)
        cpu = cpu_seconds(server.pid)
        asyncio.run(drive(port, sides, args, result, "prevenance"))
        result.cpu_seconds = cpu_seconds(server.pid) - cpu
        result.peak_rss_kb = peak_rss_kb(server.pid)
    finally:
        stop(server)
    return result


def run_bare(args: argparse.Namespace, tmp: Path) -> Result:
    (tmp / "bare_ws.py").write_text(BARE_APP)
    sides: list[tuple[str, str, dict[str, str]]] = []
    for i in range(args.members):
        sides += [(f"/r{i}/member", "member", {}), (f"/r{i}/agent", "agent", {})]
    sides += [(f"/q{a}/queue", "queue", {}) for a in range(args.agents)]
    port = free_port()
    command = [sys.executable, "-m", "uvicorn", "bare_ws:app", "--host", "127.0.0.1", "--port", str(port),
               "--workers", "1", "--log-level", "warning"]  # fmt: skip
    server = _serve(command, {**os.environ, "PYTHONPATH": str(tmp)}, tmp, tmp / "bare.log")
    result = Result("bare WebSocket relay (nothing stored)")
    try:
        wait_ready(port, server)
        cpu = cpu_seconds(server.pid)
        asyncio.run(drive(port, sides, args, result, "bare"))
        result.cpu_seconds = cpu_seconds(server.pid) - cpu
        result.peak_rss_kb = peak_rss_kb(server.pid)
    finally:
        stop(server)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of load per server")
    parser.add_argument("--members", type=int, default=300, help="member sockets (one chat each)")
    parser.add_argument("--agents", type=int, default=50, help="agents (each holds members/agents chats)")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds between a member's messages")
    args = parser.parse_args()
    random.seed(17)
    with tempfile.TemporaryDirectory(prefix="chat-bench-") as folder:
        tmp = Path(folder)
        ours = run_prevenance(args, tmp)
        bare = run_bare(args, tmp)
    print()
    print(
        f"{args.members} members, {args.agents} agents, one worker, {args.duration:.0f} s, a member message every ~{args.interval:g} s, each answered"
    )
    print(bare.line())
    print(ours.line())
    verdict = "OK" if ours.p99() <= 200 and ours.sent == ours.delivered and not ours.duplicates else "MISSED"
    print(f"target p99 ≤ 200 ms end to end, none lost, none twice: {verdict}")


if __name__ == "__main__":
    main()
