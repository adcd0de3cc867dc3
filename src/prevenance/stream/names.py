"""Stream, subject and consumer names, and the idempotent creation of the streams.

One ``Names`` value carries every name, so tests (and a staging deployment sharing a server) can
run side by side under a ``namespace`` without touching each other's streams.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import nats.js.errors
from nats.js import JetStreamContext
from nats.js.api import DiscardPolicy, RetentionPolicy, StorageType, StreamConfig

# JetStream drops a second message with the same Nats-Msg-Id seen within this window (seconds).
EVENTS_DUPLICATE_WINDOW = 600.0


@dataclass(frozen=True)
class Names:
    """Every name the stream package uses, derived from an optional namespace."""

    namespace: str = ""

    @property
    def _subject_root(self) -> str:
        return f"{self.namespace}.prevenance" if self.namespace else "prevenance"

    @property
    def _stream_suffix(self) -> str:
        return f"_{self.namespace.upper().replace('-', '_')}" if self.namespace else ""

    @property
    def transactions_stream(self) -> str:
        return "PREVENANCE_TRANSACTIONS" + self._stream_suffix

    @property
    def transactions_subject(self) -> str:
        """The filter of the transactions stream (card networks publish below it)."""
        return f"{self._subject_root}.transactions.>"

    def transaction_subject(self, source: str = "card") -> str:
        """The subject a producer publishes one transaction on."""
        return f"{self._subject_root}.transactions.{source}"

    @property
    def consumer(self) -> str:
        return "prevenance-earn"

    @property
    def events_stream(self) -> str:
        return "PREVENANCE_EVENTS" + self._stream_suffix

    def event_subject(self, event_type: str) -> str:
        return f"{self._subject_root}.events.{event_type}"

    @property
    def events_subjects(self) -> str:
        return f"{self._subject_root}.events.>"

    @property
    def rejects_stream(self) -> str:
        return "PREVENANCE_REJECTS" + self._stream_suffix

    @property
    def rejects_subject(self) -> str:
        return f"{self._subject_root}.rejects.transactions"

    def streams(self) -> list[StreamConfig]:
        """The three streams, file-backed and limits-retained."""
        file, limits = StorageType.FILE, RetentionPolicy.LIMITS
        return [
            StreamConfig(
                name=self.transactions_stream,
                subjects=[self.transactions_subject],
                storage=file,
                retention=limits,
            ),
            StreamConfig(
                name=self.events_stream,
                subjects=[self.events_subjects],
                duplicate_window=EVENTS_DUPLICATE_WINDOW,
                storage=file,
                retention=limits,
            ),
            StreamConfig(
                name=self.rejects_stream,
                subjects=[self.rejects_subject],
                discard=DiscardPolicy.OLD,
                storage=file,
                retention=limits,
            ),
        ]


async def ensure_streams(js: JetStreamContext, names: Names) -> None:
    """Create the streams, or bring an existing one to this configuration."""
    for config in names.streams():
        try:
            await js.add_stream(config=config)
        except nats.js.errors.BadRequestError:
            await js.update_stream(config=config)


async def delete_streams(js: JetStreamContext, names: Names) -> None:
    """Delete the streams (tests and benchmarks clean up after themselves)."""
    for config in names.streams():
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await js.delete_stream(config.name or "")
