"""Fixtures of the voice integration tests: a real SMTP server and a way to log closed contacts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest

from tests.conftest import Api
from tests.factories import put_member
from tests.smtp_server import Smtp, running_smtp


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """A real SMTP server on a free local port, collecting what it is sent."""
    with running_smtp() as server:
        yield server


def add_member(api: Api, ref: str, **overrides: Any) -> None:
    put_member(api, ref, **{"email": f"{ref.lower()}@example.org", **overrides})


def log_contact(
    api: Api, contact_id: str, member_ref: str, *, at: datetime | None = None, **overrides: Any
) -> None:
    moment = (at or datetime(2026, 1, 1, tzinfo=UTC)).isoformat().replace("+00:00", "Z")
    body: dict[str, Any] = {
        "id": contact_id,
        "member_ref": member_ref,
        "channel": "phone",
        "direction": "inbound",
        "agent": "alice",
        "team": "paris-1",
        "reason": "rewards.balance",
        "started_at": moment,
        "ended_at": moment,
        "notes": "",
        "outcome": "resolved",
    }
    body.update(overrides)
    response = api.post("/v1/contacts", body, role="agent")
    assert response.status_code == 201, response.text


LINK = re.compile(r"https?://\S+/survey/(\S+)")


def link_path(message: EmailMessage) -> str:
    """The path of the survey link in an invitation mail."""
    found = LINK.search(message.get_content())
    assert found, message.get_content()
    return f"/survey/{found.group(1)}"
