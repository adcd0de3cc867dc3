"""``prevenance stream run`` keeps the relay in a child process of its own (``--relay-apart``, the
default): both roles work, the relay never outlives its worker (stopped, or killed with SIGKILL), and a
relay that dies takes its worker down with exit 1 so the service manager restarts the pair."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.stream.names import Names
from tests.factories import wait_until
from tests.integration.stream.conftest import add_members
from tests.integration.stream.test_crash import TOTAL, counts, publish

_RELAY_STARTED = re.compile(r"stream_relay_started\W.*?pid\W+(\d+)")


def _start(engine: Engine, nats_url: str, names: Names, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PREVENANCE_DATABASE_URL": engine.url.render_as_string(hide_password=False),
        "PREVENANCE_NATS_URL": nats_url,
        "PREVENANCE_STREAM_NAMESPACE": names.namespace,
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "prevenance.cli", "stream", "run", "--ack-wait", "5"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def _relay_pid(worker: subprocess.Popen[bytes], log: Path) -> int:
    def found() -> int | None:
        assert worker.poll() is None, log.read_text()
        match = _RELAY_STARTED.search(log.read_text(errors="replace"))
        return int(match.group(1)) if match else None

    return int(wait_until(found, what=f"the relay child to start (log: {log})"))


def _gone(pid: int) -> bool:
    """True once the process has exited (a zombie waiting for its new parent to reap it counts)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return True
    return state in {"Z", "X"}


@contextmanager
def _worker(
    engine: Engine, nats_url: str, names: Names, log: Path
) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A running ``stream run`` and its relay child's pid; the worker is killed at the end if still up."""
    worker = _start(engine, nats_url, names, log)
    try:
        yield worker, _relay_pid(worker, log)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(timeout=30)


@pytest.mark.slow
def test_both_roles_run_and_the_relay_stops_with_its_worker(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str, tmp_path: Path
) -> None:
    add_members(engine, clock, [f"M{i}" for i in range(10)])
    log = tmp_path / "stream.log"
    with _worker(engine, nats_url, names, log) as (worker, relay):
        assert relay != worker.pid and not _gone(relay)
        asyncio.run(publish(nats_url, names))
        # Consumed here, relayed by the child: every transaction recorded, every event delivered.
        wait_until(
            lambda: counts(engine) == (TOTAL, 0), what=f"the transactions and their events (log: {log})"
        )
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=60) == 0, log.read_text()
        wait_until(lambda: _gone(relay), what="the relay to stop with its worker")


@pytest.mark.slow
def test_a_killed_worker_takes_its_relay_with_it(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "stream.log"
    with _worker(engine, nats_url, names, log) as (worker, relay):
        worker.send_signal(signal.SIGKILL)
        worker.wait(timeout=30)
        wait_until(lambda: _gone(relay), what=f"the orphaned relay to stop (log: {log})")


@pytest.mark.slow
def test_a_dead_relay_stops_its_worker_with_exit_1(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "stream.log"
    with _worker(engine, nats_url, names, log) as (worker, relay):
        os.kill(relay, signal.SIGKILL)
        assert worker.wait(timeout=60) == 1, log.read_text()
        assert "stream_relay_died" in log.read_text()
