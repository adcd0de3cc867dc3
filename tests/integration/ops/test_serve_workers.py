"""``prevenance serve --workers 2`` spreads keep-alive connections over both workers (each listens on
its own ``SO_REUSEPORT`` socket, ``prevenance.serving``): 32 connections opened at once, as a client
pool opens them, are held by both workers, not all by the first one to wake. Run as an operator runs
it: the real command in a subprocess, waiting on its log lines and on answers, never on a delay."""

from __future__ import annotations

import os
import queue
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from prevenance.serving import balanced_workers_supported
from tests.integration.ops.test_serve_json_logs import PROGRAM, WAIT, _free_port, _reader, _until, serve_env

CONNECTIONS = 32  # all on one worker by chance: 2 x 2^-32


ESTABLISHED, LISTEN = "01", "0A"


def _server_side_inodes(port: int, state: str = ESTABLISHED) -> set[str]:
    """Socket inodes in ``state`` whose local port is ``port`` (for connections: the server's side)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as rows:
            next(rows)
            for row in rows:
                fields = row.split()
                if fields[3] == state and int(fields[1].rsplit(":", 1)[1], 16) == port:
                    inodes.add(fields[9])
    return inodes


def _holders(inodes: set[str]) -> dict[int, int]:
    """Process id → how many of these sockets it holds."""
    held: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            links = [os.readlink(fd) for fd in (entry / "fd").iterdir()]
        except OSError:
            continue
        count = sum(1 for link in links if link.startswith("socket:[") and link[8:-1] in inodes)
        if count:
            held[int(entry.name)] = count
    return held


def test_keep_alive_connections_spread_over_every_worker(tmp_path: Path) -> None:
    # The servers this project runs on are Linux (the balancing and /proc are Linux's): a platform
    # without them fails here rather than passing unchecked.
    assert balanced_workers_supported()
    port = _free_port()
    env = serve_env(tmp_path)
    process = subprocess.Popen(
        [str(PROGRAM), "serve", "--host", "127.0.0.1", "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    clients: list[socket.socket] = []
    try:
        _until(lines, seen, "Application startup complete")
        _until(lines, seen, "Application startup complete")  # the second worker
        # The port is the workers' alone: a socket without SO_REUSEPORT cannot take it.
        with socket.socket() as intruder, pytest.raises(OSError):
            intruder.bind(("127.0.0.1", port))
        for _ in range(CONNECTIONS):
            client = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
            clients.append(client)
        for client in clients:  # each connection answered: accepted and served by a worker
            client.sendall(b"GET /healthz?probe=1 HTTP/1.1\r\nHost: x\r\nConnection: keep-alive\r\n\r\n")
            assert client.recv(12).startswith(b"HTTP/1.1 ")
        holders = _holders(_server_side_inodes(port))
        assert sum(holders.values()) == CONNECTIONS, holders
        assert len(holders) == 2 and process.pid not in holders, holders
        # One listener per worker and none in the parent: a listener there would be handed a share
        # of the connections and never accept them.
        listeners = _holders(_server_side_inodes(port, LISTEN))
        assert listeners.keys() == holders.keys() and set(listeners.values()) == {1}, listeners
    finally:
        for client in clients:
            client.close()
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, seen
