"""The SMTP listener of ``prevenance desk mail-in`` (aiosmtpd): it accepts mail for the configured
addresses only (others: ``550``), refuses a message over the size limit (``552``, aiosmtpd's
``data_size_limit``, also announced as ``SIZE`` in the EHLO answer so a sender can refuse early), and
answers ``250`` only once the message is committed: a crash before that leaves the sending server to
retry, and the retry is recognised by its Message-ID. A database failure answers ``451`` (try later).

Writes run on writer threads off the event loop (one on SQLite, whose writes are serial anyway:
measured, one thread stores more per second than several grouped by ``group_commit.GroupCommit``), each
message in its own transaction through ``run_in_transaction``, and every ``250`` is sent only after
the commit that holds its message. The classifier is trained on past contacts at start and
retrained every ``MODEL_MAX_AGE``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import structlog
from aiosmtpd.controller import Controller
from sqlalchemy import Engine

from prevenance.common.clock import Clock
from prevenance.db import read_session, run_in_transaction
from prevenance.desk.mail_in import classifier, service

log = structlog.get_logger()
MODEL_MAX_AGE = 600.0  # seconds between two trainings of the classifier
TEMPORARY_FAILURE = "451 4.3.0 Temporary local failure, please try again later"
NO_SUCH_MAILBOX = "550 5.1.1 No such mailbox here"


@dataclass(frozen=True)
class ListenerConfig:
    """What the listener needs of the settings."""

    addresses: frozenset[str]
    max_bytes: int
    attachment_max_bytes: int


class MailInHandler:
    """aiosmtpd handler: recipients checked at ``RCPT``, the message stored at ``DATA``."""

    def __init__(self, *, engine: Engine, clock: Clock, config: ListenerConfig, writers: int = 1) -> None:
        self.engine, self.clock, self.config = engine, clock, config
        self._writers = ThreadPoolExecutor(max_workers=max(1, writers), thread_name_prefix="mail-in")
        self._counted = threading.Lock()
        self._model: classifier.Model | None = None
        self._model_at = float("-inf")
        self._model_lock = threading.Lock()
        self.stored = 0
        self.duplicates = 0

    def model(self) -> classifier.Model | None:
        """The classifier, retrained when older than ``MODEL_MAX_AGE`` (one thread trains)."""
        if time.monotonic() - self._model_at > MODEL_MAX_AGE and self._model_lock.acquire(blocking=False):
            try:
                with read_session(self.engine) as session:
                    self._model = service.load_model(session)
                self._model_at = time.monotonic()
            finally:
                self._model_lock.release()
        return self._model

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        if address.strip().lower() not in self.config.addresses:
            return NO_SUCH_MAILBOX
        envelope.rcpt_tos.append(address)
        return "250 OK"

    def _store(self, raw: bytes, envelope_sender: str | None) -> service.Received:
        """One message in its transaction (grouped with others arriving together on SQLite); a
        message another writer stored first (its Message-ID) comes back as a duplicate."""
        model = self.model()
        received = run_in_transaction(
            self.engine,
            lambda session: service.receive(
                session,
                raw=raw,
                envelope_sender=envelope_sender,
                our_addresses=self.config.addresses,
                attachment_max_bytes=self.config.attachment_max_bytes,
                model=model,
                now=self.clock.now(),
            ),
        )
        with self._counted:
            if received.duplicate:
                self.duplicates += 1
            else:
                self.stored += 1
        return received

    def store(self, raw: bytes, envelope_sender: str | None) -> Future[service.Received]:
        """Hand one message to the writers; the future is done once its transaction committed."""
        return self._writers.submit(self._store, raw, envelope_sender)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        try:
            received = await asyncio.wrap_future(self.store(raw, envelope.mail_from))
        except Exception:
            log.exception("mail_in_store_failed", peer=str(session.peer[0]) if session.peer else None)
            return TEMPORARY_FAILURE
        log.info(
            "mail_in",
            id=received.id,
            state=received.state,
            duplicate=received.duplicate,
            case_id=received.case_id,
        )
        return f"250 2.0.0 Stored as {received.id}"

    def close(self) -> None:
        """Store what is handed over, then stop the writers."""
        self._writers.shutdown(wait=True)


def controller(handler: MailInHandler, *, host: str, port: int) -> Controller:
    """The aiosmtpd controller (its own thread and event loop) for ``handler``; ``start()`` it."""
    return Controller(
        handler,
        hostname=host,
        port=port,
        data_size_limit=handler.config.max_bytes,
        ident="Prevenance mail-in",
    )
