"""What counts as a guessable PREVENANCE_SECRET_KEY, and where one is tolerated (loopback only);
the commands themselves are run in ``tests/integration/ops/test_startup_secret.py``."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable

import pytest

from prevenance.secret_key import (
    SHIPPED_DEFAULT,
    is_loopback,
    judge_mailer,
    judge_server,
    judge_stream,
    url_is_local,
    weakness,
)
from prevenance.settings import Settings

STRONG = secrets.token_urlsafe(48)


@pytest.mark.parametrize(
    "secret",
    [
        None,
        "",
        "   ",
        SHIPPED_DEFAULT,
        "CHANGE-ME",
        "changeme",
        "change-me-in-production",
        "Change_Me_Before_Going_Live_Please_0123456789",
        "placeholder-placeholder-placeholder-42",
        "this-is-an-example-secret-key-for-the-docs-only",
        "s3cret",
        "a" * 31 + "b",
        "Zq8vP3xKt7LmW2nRb5Yc0d",  # random-looking but 22 characters
        "x" * 64,
        "0123" * 16,
    ],
)
def test_unset_default_placeholder_short_or_patterned_secrets_are_weak(secret: str | None) -> None:
    assert weakness(secret) is not None


@pytest.mark.parametrize(
    "make", [lambda: STRONG, lambda: os.urandom(16).hex(), lambda: secrets.token_hex(32)]
)
def test_a_random_secret_of_32_characters_or_more_is_accepted(make: Callable[[], str]) -> None:
    """The secrets are drawn inside the test: parameters drawn at collection would differ between
    pytest-xdist's workers, which then refuse to run."""
    assert weakness(make()) is None


def test_the_shipped_settings_carry_a_weak_secret() -> None:
    assert weakness(Settings.model_fields["secret_key"].default) is not None


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "[::1]", "localhost", "LOCALHOST"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize(
    "host", ["0.0.0.0", "::", "192.168.1.10", "10.0.0.1", "prevenance.example.com", "", None]
)
def test_every_other_bind_address_reaches_other_machines(host: str | None) -> None:
    assert not is_loopback(host)


def test_a_server_on_a_public_address_refuses_a_weak_secret_with_one_line_saying_how_to_make_one() -> None:
    for host in ("0.0.0.0", "::", "10.1.2.3", None):
        verdict = judge_server(SHIPPED_DEFAULT, host)
        assert verdict.refuse
        assert verdict.line is not None and "\n" not in verdict.line
        assert "PREVENANCE_SECRET_KEY" in verdict.line and "secrets.token_urlsafe(48)" in verdict.line


def test_a_server_on_loopback_only_starts_with_a_warning() -> None:
    for host in ("127.0.0.1", "::1", "localhost"):
        verdict = judge_server(None, host)
        assert not verdict.refuse
        assert verdict.line is not None and verdict.line.startswith("warning:")
        assert "PREVENANCE_SECRET_KEY" in verdict.line


def test_a_strong_secret_starts_anywhere_silently() -> None:
    assert judge_server(STRONG, "0.0.0.0").line is None
    assert judge_stream(STRONG, nats_url="nats://nats:4222", database_url="postgresql://db/x").line is None


def test_the_stream_worker_accepts_a_weak_secret_only_when_nats_and_the_database_are_local() -> None:
    local_pg = "postgresql+psycopg://postgres:pw@127.0.0.1:5432/test"
    assert not judge_stream(None, nats_url="nats://127.0.0.1:4222", database_url=local_pg).refuse
    assert not judge_stream(None, nats_url="nats://localhost:4222", database_url="sqlite:///./p.db").refuse
    assert judge_stream(None, nats_url="nats://nats:4222", database_url=local_pg).refuse
    assert judge_stream(
        None, nats_url="nats://127.0.0.1:4222", database_url="postgresql://u@db:5432/p"
    ).refuse
    assert judge_stream(
        None, nats_url="nats://127.0.0.1:4222,nats://10.0.0.2:4222", database_url=local_pg
    ).refuse


def test_local_urls() -> None:
    assert url_is_local("sqlite:///:memory:")
    assert url_is_local("postgresql+psycopg:///prevenance")  # a Unix socket
    assert url_is_local("tls://[::1]:4222")
    assert not url_is_local("postgresql+psycopg://u:p@postgres:5432/prevenance")
    assert not url_is_local("nats://0.0.0.0:4222")


def test_the_survey_mailer_accepts_a_weak_secret_only_when_the_relay_and_the_database_are_local() -> None:
    assert not judge_mailer(None, smtp_url="smtp://127.0.0.1:2525", database_url="sqlite:///x.db").refuse
    refused = judge_mailer(SHIPPED_DEFAULT, smtp_url="smtp://smtp-relay:25", database_url="sqlite:///x.db")
    assert refused.refuse and refused.line is not None and "mail relay is on another machine" in refused.line
