"""Handlers run per event, in order; a ``ManyEvents`` handler gets each run of consecutive events of
its type in one call, and is still callable with one event."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.outbox import ManyEvents, OutboxEvent

NO_SESSION = cast(Session, None)


def _events(*kinds: str) -> list[OutboxEvent]:
    return [OutboxEvent(id=i, type=kind, payload={"n": i}) for i, kind in enumerate(kinds, start=1)]


def test_many_events_handlers_get_runs_and_plain_ones_each_event_in_order() -> None:
    calls: list[tuple[str, Any]] = []

    def many(_session: Session, events: Sequence[OutboxEvent]) -> None:
        calls.append(("many", [e.id for e in events]))

    def plain(_session: Session, event: OutboxEvent) -> None:
        calls.append(("plain", event.id))

    def everything(_session: Session, event: OutboxEvent) -> None:
        calls.append(("*", event.id))

    handlers: dict[str, list[outbox.Handler]] = {"a": [ManyEvents(many), plain], "*": [everything]}
    outbox.run_handlers(NO_SESSION, _events("a", "a", "b", "a", "a", "a"), handlers)
    assert calls == [
        ("many", [1, 2]),
        ("plain", 1),
        ("*", 1),
        ("plain", 2),
        ("*", 2),
        ("*", 3),
        ("many", [4, 5, 6]),
        ("plain", 4),
        ("*", 4),
        ("plain", 5),
        ("*", 5),
        ("plain", 6),
        ("*", 6),
    ]


def test_a_many_events_handler_called_with_one_event_handles_a_run_of_one() -> None:
    runs: list[list[int]] = []
    handler = ManyEvents(lambda _session, events: runs.append([e.id for e in events]))
    handler(NO_SESSION, _events("a")[0])
    assert runs == [[1]]
