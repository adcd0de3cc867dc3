"""``prevenance serve`` with ``PREVENANCE_LOG_JSON``: every line it writes — uvicorn's own start-up
lines and access log included — is one JSON object, as a log shipper expects. Run as an operator
runs it: the real command in a subprocess on a free loopback port, waiting on its log lines (the
signals), never on a delay."""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

import httpx

from prevenance.db import make_engine
from prevenance.migrate import upgrade

PROGRAM = Path(sys.executable).parent / "prevenance"
WAIT = 120  # seconds a line may take on a loaded machine; the test moves on as soon as it comes


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _reader(stream: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stream:
        lines.put(line)
    lines.put(None)


def _until(lines: queue.Queue[str | None], seen: list[str], needle: str) -> None:
    while True:
        line = lines.get(timeout=WAIT)
        assert line is not None, f"serve ended before {needle!r}: {seen}"
        seen.append(line)
        if needle in line:
            return


def serve_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a ``prevenance serve`` subprocess on a fresh migrated SQLite file."""
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    engine = make_engine(url)
    upgrade(engine)
    engine.dispose()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(
            p for p in (str(Path.cwd() / "src"), os.environ.get("PYTHONPATH")) if p
        ),
        "PREVENANCE_DATABASE_URL": url,
        "PREVENANCE_SECRET_KEY": secrets.token_urlsafe(48),
        **extra,
    }
    env.pop("PREVENANCE_NATS_URL", None)
    return env


def test_serve_writes_only_json_lines_when_asked(tmp_path: Path) -> None:
    port = _free_port()
    env = serve_env(tmp_path, PREVENANCE_LOG_JSON="true")
    process = subprocess.Popen(
        [str(PROGRAM), "serve", "--host", "127.0.0.1", "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_reader, args=(process.stdout, lines), daemon=True).start()
    seen: list[str] = []
    try:
        _until(lines, seen, "Application startup complete")
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz?probe=1", timeout=WAIT)
        assert answer.status_code in (200, 503)
        _until(lines, seen, "GET /healthz")
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=WAIT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    while (line := lines.get(timeout=WAIT)) is not None:
        seen.append(line)
    written = [line for line in seen if line.strip()]
    parsed = []
    for line in written:
        try:
            parsed.append(json.loads(line))
        except ValueError:
            raise AssertionError(f"not a JSON line: {line!r}") from None
    assert all(isinstance(entry, dict) and "event" in entry and "level" in entry for entry in parsed), parsed
    by_logger = {entry.get("logger") for entry in parsed}
    assert {"uvicorn.error", "uvicorn.access"} <= by_logger, parsed
    (access,) = [entry for entry in parsed if entry.get("logger") == "uvicorn.access"]
    assert "GET /healthz" in access["event"] and access["timestamp"].endswith("Z")
    assert any(entry["event"] == "Application startup complete." for entry in parsed)
