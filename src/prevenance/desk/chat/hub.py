"""In-process publish/subscribe for live chat: each open socket subscribes to topics (a
conversation, a team's queue) and gets every event published there after it subscribed.

One worker process only: events never leave the process. Several workers would need a shared bus
(PostgreSQL ``LISTEN/NOTIFY`` or Redis pub/sub) behind the same two calls; see ``docs/chat.md``.
Delivery is best effort by design: the database is the record, and a subscriber that sees a gap in
the sequence numbers reads the missing messages from it (``live.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

Event = dict[str, Any]


class Hub:
    """Topics to subscriber queues; ``publish`` is safe from the event loop and from worker threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Queue[Event]]]] = (
            defaultdict(set)
        )

    @contextmanager
    def subscribe(self, *topics: str) -> Iterator[asyncio.Queue[Event]]:
        """A queue receiving every event published on ``topics`` until the block ends."""
        queue: asyncio.Queue[Event] = asyncio.Queue()
        entry = (asyncio.get_running_loop(), queue)
        with self._lock:
            for topic in topics:
                self._subscribers[topic].add(entry)
        try:
            yield queue
        finally:
            with self._lock:
                for topic in topics:
                    self._subscribers[topic].discard(entry)
                    if not self._subscribers[topic]:
                        del self._subscribers[topic]

    def publish(self, topic: str, event: Event) -> int:
        """Hand ``event`` to every subscriber of ``topic``; how many there were."""
        with self._lock:
            targets = list(self._subscribers.get(topic, ()))
        for loop, queue in targets:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                queue.put_nowait(event)
            else:
                # A loop that has closed raises RuntimeError: its subscriber is gone.
                with contextlib.suppress(RuntimeError):
                    loop.call_soon_threadsafe(queue.put_nowait, event)
        return len(targets)


def conversation_topic(conversation_id: str) -> str:
    return f"chat:{conversation_id}"


def queue_topic(team: str) -> str:
    return f"queue:{team}"


ALL_QUEUES = "queue:*"
HUB = Hub()
