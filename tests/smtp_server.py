"""A real SMTP server (aiosmtpd) in the test process, collecting what it is sent, for every test that
reads the mail a relay delivered (incident notices, survey invitations).

``Inbox.refuse`` makes it answer ``RCPT TO`` for a given address with a chosen reply (``550 …`` for a
mailbox that is gone, ``451 …`` for a greylisting relay); ``Inbox.refuse_data`` does the same at the
end of ``DATA`` for any message to that address."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller


@dataclass
class Inbox:
    """What the SMTP server received, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: dict[str, str] = field(default_factory=dict)  # recipient → reply to its RCPT TO
    refuse_data: dict[str, str] = field(default_factory=dict)  # recipient → reply to the DATA
    refused: list[tuple[str, str]] = field(default_factory=list)  # (recipient, reply) as answered

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        reply = self.refuse.get(address.lower())
        if reply is not None:
            self.refused.append((address, reply))
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        for address in envelope.rcpt_tos:
            reply = self.refuse_data.get(address.lower())
            if reply is not None:
                self.refused.append((address, reply))
                return reply
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


@contextmanager
def running_smtp() -> Iterator[Smtp]:
    """A real SMTP server on a free local port while the block runs."""
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
