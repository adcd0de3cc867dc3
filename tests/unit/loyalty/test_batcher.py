"""How many earn batches a process applies at once: two on a server database (a second batch fills
the first one's waits for the server), one on SQLite (one writer)."""

from __future__ import annotations

import asyncio
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
