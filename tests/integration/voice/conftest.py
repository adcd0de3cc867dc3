"""Fixtures of the voice integration tests: a real SMTP server and a way to log closed contacts."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from tests.conftest import Api, member_body


@dataclass
class Inbox:
    """What the SMTP server received, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        self.messages.append(message)
        return "250 Message accepted for delivery"

    def take(self) -> list[EmailMessage]:
        taken, self.messages = self.messages, []
        return taken


@dataclass
class Smtp:
    url: str
    inbox: Inbox


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """A real SMTP server on a free local port, collecting what it is sent."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield Smtp(url=f"smtp://127.0.0.1:{port}", inbox=inbox)
    finally:
        controller.stop()


def add_member(api: Api, ref: str, **overrides: Any) -> None:
    response = api.put(f"/v1/members/{ref}", member_body(email=f"{ref.lower()}@example.org", **overrides))
    assert response.status_code in (200, 201), response.text


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
