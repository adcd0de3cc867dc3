"""``run_idempotent`` on each backend: a new key costs one claim statement, a repeated key replays
the stored answer without producing again, another body is a conflict, and two threads racing on
one key produce once."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import Engine, event

from prevenance.common.clock import FrozenClock
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.problems import IdempotencyConflict
from prevenance.db import run_in_transaction


@contextmanager
def statements(engine: Engine) -> Iterator[list[str]]:
    seen: list[str] = []

    def watch(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()).upper())

    event.listen(engine, "before_cursor_execute", watch)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", watch)


def _write(engine: Engine, clock: FrozenClock, key: str, body: str, produced: list[str]) -> Outcome:
    def produce() -> Outcome:
        produced.append(key)
        return Outcome(201, {"key": key, "body": body})

    return run_in_transaction(
        engine,
        lambda s: run_idempotent(
            s, scope="test", key=key, fingerprint=body, now=clock.now(), produce=produce
        ),
    )


def test_a_new_key_is_claimed_in_one_statement_and_a_repeat_replays(
    engine: Engine, clock: FrozenClock
) -> None:
    produced: list[str] = []
    with statements(engine) as seen:
        first = _write(engine, clock, "K1", "a", produced)
    keyed = [s for s in seen if "IDEMPOTENCY_KEYS" in s]
    assert len(keyed) == 2 and "ON CONFLICT" in keyed[0] and keyed[1].startswith("UPDATE")
    again = _write(engine, clock, "K1", "a", produced)
    assert (again.status_code, again.body, again.replayed) == (201, first.body, True)
    assert produced == ["K1"]
    with pytest.raises(IdempotencyConflict):
        _write(engine, clock, "K1", "another body", produced)
    assert produced == ["K1"]


def test_threads_racing_on_one_key_produce_once(engine: Engine, clock: FrozenClock) -> None:
    produced: list[str] = []
    start = threading.Barrier(6)
    answers: list[Outcome] = []

    def racer() -> None:
        start.wait()
        answers.append(_write(engine, clock, "RACE", "same", produced))

    threads = [threading.Thread(target=racer) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert produced == ["RACE"]
    assert len(answers) == 6 and {a.body["key"] for a in answers} == {"RACE"}
    assert sum(not a.replayed for a in answers) == 1
