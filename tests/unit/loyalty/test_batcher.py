"""How many earn batches a process applies at once: two on a server database (a second batch fills
the first one's waits for the server), one on SQLite (one writer)."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine

from prevenance.common.idempotency import Outcome
from prevenance.loyalty import batcher, earning, transactions


def _request(n: int) -> earning.EarnRequest:
    tx = transactions.TransactionInput(
        id=f"T{n}",
        member_ref="M1",
        amount="10.00",
        currency="EUR",
        merchant="Librairie",
        category="books",
        occurred_at=datetime(2026, 12, 1, tzinfo=UTC),
    )
    return earning.EarnRequest.of(tx)


def _now() -> datetime:
    return datetime(2026, 12, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("url", "asked", "expected"),
    [
        ("postgresql+psycopg://nobody@127.0.0.1/none", 2, 2),
        ("sqlite://", 2, 1),
        ("postgresql+psycopg://", 1, 1),
    ],
)
def test_batches_in_flight_per_backend(url: str, asked: int, expected: int) -> None:
    engine = create_engine(url)  # never connected: only its dialect is read

    async def made() -> batcher.EarnBatcher:
        return batcher.batcher_for(engine, _now, max_batch=8, linger=0.001, in_flight=asked)

    assert asyncio.run(made()).in_flight == expected


def test_two_batches_are_applied_at_once_and_every_earn_is_answered(monkeypatch: pytest.MonkeyPatch) -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1/none")
    together = threading.Barrier(2, timeout=60)  # broken (and the test failed) if only one batch runs
    seen: list[list[str]] = []
    active, peak, lock = [0], [0], threading.Lock()

    def apply(_engine: Engine, requests: Sequence[earning.EarnRequest], **_: Any) -> list[Outcome]:
        with lock:
            seen.append([r.tx.id for r in requests])
            active[0] += 1
            peak[0] = max(peak[0], active[0])
            first_two = len(seen) <= 2
        if first_two:
            together.wait()  # the first two batches meet here: both are in flight
        with lock:
            active[0] -= 1
        return [Outcome(201, {"id": r.tx.id}) for r in requests]

    monkeypatch.setattr(earning, "run_earns", apply)

    async def scenario() -> list[Outcome]:
        earns = batcher.EarnBatcher(engine=engine, now=_now, max_batch=2, linger=0.0, in_flight=2)
        return list(await asyncio.gather(*(earns.submit(_request(n)) for n in range(7))))

    answers = asyncio.run(scenario())
    assert peak[0] == 2 and not together.broken
    assert [a.body["id"] for a in answers] == [f"T{n}" for n in range(7)]
    assert sorted(i for batch in seen for i in batch) == sorted(f"T{n}" for n in range(7))
    assert all(len(batch) <= 2 for batch in seen)


def test_an_earn_submitted_as_the_drainers_finish_is_never_left_waiting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two batches finish together and their requesters at once hand in one more earn each, with
    nothing else arriving after: each is answered. (When a drainer counted as running until its
    end had been noticed, an earn that came between both drainers' last look at the queue and that
    notice found the two slots taken, started none, and waited for ever.)"""
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1/none")
    together = threading.Barrier(2)

    def apply(_engine: Engine, requests: Sequence[earning.EarnRequest], **_: Any) -> list[Outcome]:
        with contextlib.suppress(threading.BrokenBarrierError):
            together.wait(timeout=5)  # the two batches end together when both run
        return [Outcome(201, {"id": r.tx.id}) for r in requests]

    monkeypatch.setattr(earning, "run_earns", apply)

    async def two_in_a_row(earns: batcher.EarnBatcher, n: int) -> int:
        first = await earns.submit(_request(n))
        second = await earns.submit(_request(n + 1))  # no loop turn in between
        return int(first.body["id"] == f"T{n}") + int(second.body["id"] == f"T{n + 1}")

    async def scenario() -> int:
        earns = batcher.EarnBatcher(engine=engine, now=_now, max_batch=1, linger=0.0, in_flight=2)
        answered = 0
        for round_ in range(100):
            pairs = asyncio.gather(two_in_a_row(earns, 10 * round_), two_in_a_row(earns, 10 * round_ + 5))
            answered += sum(await asyncio.wait_for(pairs, 60))
        return answered

    assert asyncio.run(scenario()) == 400


def test_a_drainer_that_lingered_while_the_other_took_every_earn_applies_no_empty_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two drainers over bursts of one to three earns: a drainer that lingered for more while the
    other took every waiting earn goes back to the queue instead of committing an empty batch."""
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1/none")
    sizes: list[int] = []

    def apply(_engine: Engine, requests: Sequence[earning.EarnRequest], **_: Any) -> list[Outcome]:
        sizes.append(len(requests))
        return [Outcome(201, {"id": r.tx.id}) for r in requests]

    monkeypatch.setattr(earning, "run_earns", apply)
    rng = random.Random(11)

    async def scenario() -> int:
        earns = batcher.EarnBatcher(engine=engine, now=_now, max_batch=2, linger=0.0005, in_flight=2)
        answered = 0
        for round_ in range(200):
            burst = [earns.submit(_request(10 * round_ + k)) for k in range(rng.randint(1, 3))]
            answered += len(await asyncio.gather(*burst))
        return answered

    answered = asyncio.run(scenario())
    assert sum(sizes) == answered and 0 not in sizes
