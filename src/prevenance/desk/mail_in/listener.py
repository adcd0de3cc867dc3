"""The SMTP listener of ``prevenance desk mail-in`` (aiosmtpd): it accepts mail for the configured
addresses only (others: ``550``), refuses a message over the size limit (``552``, aiosmtpd's
``data_size_limit``, also announced as ``SIZE`` in the EHLO answer so a sender can refuse early), and
answers ``250`` only once the message is committed: a crash before that leaves the sending server to
retry, and the retry is recognised by its Message-ID. A database failure answers ``451`` (try later).

Writes run on writer threads off the event loop (one on SQLite, whose writes are serial anyway)
with **group commit**: a writer takes every message waiting (at most ``BATCH``) and stores them in one
transaction, each in its own savepoint, so a burst costs one commit per batch, one bad message fails
alone, and every ``250`` is still sent only after the commit that holds its message. The classifier
is trained on past contacts at start and retrained every ``MODEL_MAX_AGE``.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import structlog
from aiosmtpd.controller import Controller
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from prevenance.common.clock import Clock
from prevenance.db import read_session, unit_of_work
from prevenance.desk.mail_in import classifier, service

log = structlog.get_logger()
MODEL_MAX_AGE = 600.0  # seconds between two trainings of the classifier
BATCH = 32  # messages stored in one transaction at most
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
        self._queue: queue.SimpleQueue[tuple[bytes, str | None, Future[service.Received]] | None] = (
            queue.SimpleQueue()
        )
        self._writers = [
            threading.Thread(target=self._write_loop, name=f"mail-in-{n}", daemon=True)
            for n in range(writers)
        ]
        for writer in self._writers:
            writer.start()
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

    def _store_one(self, session: Session, raw: bytes, envelope_sender: str | None) -> service.Received:
        """One message in its own savepoint; a message that another writer stored first (unique
        Message-ID key) comes back as a duplicate."""
        model = self.model()
        try:
            with session.begin_nested():
                return service.receive(
                    session,
                    raw=raw,
                    envelope_sender=envelope_sender,
                    our_addresses=self.config.addresses,
                    attachment_max_bytes=self.config.attachment_max_bytes,
                    model=model,
                    now=self.clock.now(),
                )
        except IntegrityError:
            with session.begin_nested():
                return service.receive(
                    session,
                    raw=raw,
                    envelope_sender=envelope_sender,
                    our_addresses=self.config.addresses,
                    attachment_max_bytes=self.config.attachment_max_bytes,
                    model=model,
                    now=self.clock.now(),
                )

    def _write_loop(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            batch = [item]
            while len(batch) < BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # let the loop end after this batch
                    break
                batch.append(more)
            self._write(batch)

    def _write(self, batch: list[tuple[bytes, str | None, Future[service.Received]]]) -> None:
        outcomes: list[tuple[Future[service.Received], service.Received | BaseException]] = []
        try:
            with unit_of_work(self.engine) as session:
                for raw, envelope_sender, future in batch:
                    try:
                        outcomes.append((future, self._store_one(session, raw, envelope_sender)))
                    except Exception as error:  # this message only: its savepoint is rolled back
                        outcomes.append((future, error))
        except Exception as error:  # the commit failed: nothing of the batch is stored
            for _, _, future in batch:
                future.set_exception(error)
            return
        for future, outcome in outcomes:
            if isinstance(outcome, BaseException):
                future.set_exception(outcome)
                continue
            if outcome.duplicate:
                self.duplicates += 1
            else:
                self.stored += 1
            future.set_result(outcome)

    def store(self, raw: bytes, envelope_sender: str | None) -> Future[service.Received]:
        """Queue one message for the writers; the future is done once its transaction committed."""
        future: Future[service.Received] = Future()
        self._queue.put((raw, envelope_sender, future))
        return future

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
        """Store what is queued, then stop the writers."""
        for _ in self._writers:
            self._queue.put(None)
        for writer in self._writers:
            writer.join()


def controller(handler: MailInHandler, *, host: str, port: int) -> Controller:
    """The aiosmtpd controller (its own thread and event loop) for ``handler``; ``start()`` it."""
    return Controller(
        handler,
        hostname=host,
        port=port,
        data_size_limit=handler.config.max_bytes,
        ident="Prevenance mail-in",
    )
