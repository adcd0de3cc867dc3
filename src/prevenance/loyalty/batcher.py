"""Group commit for ``POST /v1/transactions``: the earns of concurrent requests share one database
transaction.

Each process has one batcher per event loop. A request hands its earn to it and awaits its answer;
a drainer task takes up to ``max_batch`` waiting earns (after lingering ``linger`` seconds for
more when fewer are waiting), applies them with the earn engine (``earning.run_earns``: one
transaction, set-based statements) in a worker thread, and answers every request once that
transaction has committed. While a batch commits, the next one gathers, so under load batches form
by themselves and the linger only matters for a lone request.

Up to ``in_flight`` drainers run at once (``PREVENANCE_EARN_BATCHES_IN_FLIGHT``): on PostgreSQL a
batch spends most of its time waiting for the server's answers (a dozen round trips), and a second
batch on another connection fills that wait; its accounts are locked in the same order, its
idempotency keys are unique in the database, so two batches behave as two processes' batches do.
SQLite has one writer: one batch at a time there.

Durability is that of one request per transaction: no answer before the commit, the commit is the
same (no ``synchronous=OFF``). A refused earn (422, 404, 409) writes nothing and is answered with
its problem; an earn a hook refuses sends its batch round once more without it. Any other failure
of a batch of several earns runs each of them again alone, so only the earn at fault fails (500).
The drainer exits when nothing is waiting, so no task outlives the requests that need it.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine

from prevenance.common.idempotency import Outcome
from prevenance.loyalty import earning

DEFAULT_MAX_BATCH = 32
DEFAULT_LINGER_S = 0.001
DEFAULT_IN_FLIGHT = 2
"""Batches a process applies at once on a server database (SQLite: always one)."""


@dataclass
class EarnBatcher:
    """The group-commit queue of one event loop (see the module docstring)."""

    engine: Engine
    now: Callable[[], datetime]
    max_batch: int = DEFAULT_MAX_BATCH
    linger: float = DEFAULT_LINGER_S
    in_flight: int = 1
    _waiting: list[tuple[earning.EarnRequest, asyncio.Future[Outcome]]] = field(default_factory=list)
    _drainers: set[asyncio.Task[None]] = field(default_factory=set)
    _full: asyncio.Event = field(default_factory=asyncio.Event)
    batches: int = 0
    earns: int = 0

    async def submit(self, request: earning.EarnRequest) -> Outcome:
        """The earn's outcome once its batch has committed; its refusal is raised."""
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[Outcome] = loop.create_future()
        self._waiting.append((request, answer))
        if len(self._waiting) >= self.max_batch:
            self._full.set()
        # A drainer that found nothing left is done at once (no await between its last look at the
        # queue and its end), so counting the ones not done never leaves this earn without one.
        self._drainers = {drainer for drainer in self._drainers if not drainer.done()}
        if len(self._drainers) < self.in_flight:
            self._drainers.add(loop.create_task(self._drain()))
        return await answer

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting:
            if len(self._waiting) < self.max_batch and self.linger > 0:
                self._full.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._full.wait(), self.linger)
            batch = self._waiting[: self.max_batch]
            del self._waiting[: self.max_batch]
            if len(self._waiting) < self.max_batch:
                self._full.clear()
            if not batch:  # another drainer took them while this one lingered
                continue
            requests = [request for request, _ in batch]
            try:
                results = await loop.run_in_executor(None, self._apply, requests)
            except BaseException as error:
                for _, answer in batch:
                    if not answer.done():
                        answer.set_exception(error)
                if isinstance(error, asyncio.CancelledError):
                    raise
                continue
            for (_, answer), result in zip(batch, results, strict=True):
                if answer.done():  # the client went away; the earn is committed all the same
                    continue
                if isinstance(result, BaseException):
                    answer.set_exception(result)
                else:
                    answer.set_result(result)

    def _apply(self, requests: list[earning.EarnRequest]) -> list[Outcome | BaseException]:
        """One batch in one transaction (blocking); when it fails, each earn alone."""
        self.batches += 1
        self.earns += len(requests)
        try:
            return list(earning.run_earns(self.engine, requests, now=self.now))
        except Exception:
            if len(requests) == 1:
                raise
        answers: list[Outcome | BaseException] = []
        for request in requests:
            try:
                answers.extend(earning.run_earns(self.engine, [request], now=self.now))
            except Exception as error:
                answers.append(error)
        return answers


_BATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, EarnBatcher]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True)
class EarnBatching:
    """How an app batches its earns, fixed once when the app is built: the engine, the clock and
    the batch limits (``PREVENANCE_EARN_BATCH_MAX``, ``PREVENANCE_EARN_BATCH_LINGER_MS``)."""

    engine: Engine
    now: Callable[[], datetime]
    max_batch: int = DEFAULT_MAX_BATCH
    linger: float = DEFAULT_LINGER_S
    in_flight: int = DEFAULT_IN_FLIGHT

    def batcher(self) -> EarnBatcher:
        """The running loop's batcher (created on first use)."""
        return batcher_for(
            self.engine, self.now, max_batch=self.max_batch, linger=self.linger, in_flight=self.in_flight
        )


def batcher_for(
    engine: Engine, now: Callable[[], datetime], *, max_batch: int, linger: float, in_flight: int = 1
) -> EarnBatcher:
    """The running loop's batcher for ``engine`` (created on first use); ``in_flight`` batches at
    once at most, one on SQLite."""
    per_loop = _BATCHERS.setdefault(asyncio.get_running_loop(), {})
    found = per_loop.get(id(engine))
    if found is None or found.engine is not engine:
        parallel = 1 if engine.dialect.name == "sqlite" else max(1, in_flight)
        found = EarnBatcher(engine=engine, now=now, max_batch=max_batch, linger=linger, in_flight=parallel)
        per_loop[id(engine)] = found
    return found
