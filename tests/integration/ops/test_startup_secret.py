"""``prevenance serve``, ``prevenance stream run`` and the ASGI module refuse a guessable
PREVENANCE_SECRET_KEY (exit 2, one line on stderr saying how to make one); ``prevenance serve`` on a
loopback address only (``make demo``) starts with a warning."""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from prevenance.secret_key import SHIPPED_DEFAULT

STRONG = secrets.token_urlsafe(48)
CLI = [sys.executable, "-m", "prevenance.cli"]


# --- the commands themselves, in a subprocess -------------------------------------------------------


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if key != "PREVENANCE_SECRET_KEY"}
    env["PREVENANCE_DATABASE_URL"] = f"sqlite:///{tmp_path / 'p.db'}"
    env.update(extra)
    return env


def _run(argv: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)


def _assert_refused(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "PREVENANCE_SECRET_KEY" in lines[0] and "secrets.token_urlsafe" in lines[0]


@pytest.mark.parametrize("secret", [None, SHIPPED_DEFAULT, "CHANGE-ME", "too-short-but-random-9f3a"], ids=str)
def test_serve_on_a_public_address_refuses_to_start(tmp_path: Path, secret: str | None) -> None:
    extra = {} if secret is None else {"PREVENANCE_SECRET_KEY": secret}
    done = _run(
        [*CLI, "serve", "--host", "0.0.0.0", "--port", "9"],
        _env(tmp_path, **extra),
    )
    _assert_refused(done)


def test_stream_run_with_a_remote_nats_refuses_to_start(tmp_path: Path) -> None:
    done = _run(
        [*CLI, "stream", "run"],
        _env(tmp_path, PREVENANCE_NATS_URL="nats://nats.internal:4222"),
    )
    _assert_refused(done)


def test_the_asgi_module_run_by_uvicorn_directly_refuses_a_weak_secret(tmp_path: Path) -> None:
    """uvicorn gives the module no bind address: without ``prevenance serve`` vouching for a
    loopback address, a weak secret is refused even on uvicorn's default host."""
    done = _run([sys.executable, "-c", "import prevenance.asgi"], _env(tmp_path))
    _assert_refused(done)
    started = _run(
        [sys.executable, "-c", "import prevenance.asgi"],
        _env(tmp_path, PREVENANCE_SECRET_KEY=STRONG),
    )
    assert started.returncode == 0, started.stderr


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_on_loopback_without_a_secret_starts_with_a_warning(tmp_path: Path) -> None:
    """``make demo``: no secret, 127.0.0.1; the server answers and stderr says why it was let be."""
    port = _free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*CLI, "serve", "--host", "127.0.0.1", "--port", str(port)],
            env=_env(tmp_path),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 90
        status = None
        while status is None and time.monotonic() < deadline and server.poll() is None:
            try:
                status = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code
            except httpx.HTTPError:
                time.sleep(0.2)
        assert status is not None, log.read_text()[-2000:]
    finally:
        server.terminate()
        server.wait(timeout=60)
    first = log.read_text().splitlines()[0]
    assert first.startswith("warning: PREVENANCE_SECRET_KEY") and "127.0.0.1" in first


def test_sending_survey_invitations_through_a_remote_relay_refuses_a_weak_secret(tmp_path: Path) -> None:
    """The mails carry links signed with the key: a forgeable key must not sign them."""
    done = _run(
        [*CLI, "voice", "send-invitations"],
        _env(
            tmp_path, PREVENANCE_SMTP_URL="smtp://smtp-relay.internal:25", PREVENANCE_SECRET_KEY="CHANGE-ME"
        ),
    )
    _assert_refused(done)
