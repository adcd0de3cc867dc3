"""Group commit for ``POST /v1/transactions``: the earns of concurrent requests share one database
transaction.

Each process has one batcher per event loop. A request hands its earn to it and awaits its answer;
one drainer task takes up to ``max_batch`` waiting earns (after lingering ``linger`` seconds for
more when fewer are waiting), applies them with the earn engine (``earning.run_earns``: one
transaction, set-based statements) in a worker thread, and answers every request once that
transaction has committed. While a batch commits, the next one gathers, so under load batches form
by themselves and the linger only matters for a lone request.

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


@dataclass
class EarnBatcher:
    """The group-commit queue of one event loop (see the module docstring)."""

    engine: Engine
    now: Callable[[], datetime]
    max_batch: int = DEFAULT_MAX_BATCH
    linger: float = DEFAULT_LINGER_S
    _waiting: list[tuple[earning.EarnRequest, asyncio.Future[Outcome]]] = field(default_factory=list)
    _drainer: asyncio.Task[None] | None = None
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
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain())
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

    def batcher(self) -> EarnBatcher:
        """The running loop's batcher (created on first use)."""
        return batcher_for(self.engine, self.now, max_batch=self.max_batch, linger=self.linger)


def batcher_for(engine: Engine, now: Callable[[], datetime], *, max_batch: int, linger: float) -> EarnBatcher:
    """The running loop's batcher for ``engine`` (created on first use)."""
    per_loop = _BATCHERS.setdefault(asyncio.get_running_loop(), {})
    found = per_loop.get(id(engine))
    if found is None or found.engine is not engine:
        found = EarnBatcher(engine=engine, now=now, max_batch=max_batch, linger=linger)
        per_loop[id(engine)] = found
    return found
