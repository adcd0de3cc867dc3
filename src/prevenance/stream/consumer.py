"""The card-transaction consumer: a durable JetStream pull consumer feeding the earn use case.

Each fetched batch is applied through the earn engine behind ``POST /v1/transactions``
(``loyalty.earning.run_earns``: one transaction, set-based statements) and each message is
acknowledged only after that transaction has committed. Three outcomes:

- **accepted** (or replayed: the transaction id was already recorded) → ack;
- **rejected**: the body can never be accepted (not JSON, a field missing or malformed, a domain
  refusal such as an unknown member or an id reused with another body) → the message, its
  stream sequence and the problem are published to the rejects stream and logged, *then* acked, so
  a poison message neither redelivers forever nor blocks the ones behind it;
- **transient failure** (database unreachable, a lock timeout, anything unexpected) → nak with a
  delay; JetStream redelivers it later and the consumer goes on with the rest of the batch.

Why transactions of up to ``commit_every`` messages: the engine writes a batch with one statement
per table, so the cost per message falls with the batch; a refused message writes nothing and never
rolls back its neighbours. A much larger group would hold SQLite's single write lock (and delay
every ack of the group) for longer than the API's writers should wait. When a group's transaction
fails, its messages are retried one per transaction so that only the message at fault is nakked.
Messages are pulled up to ``batch`` at a time (see ``Consumer._fetch``).

Why nothing is lost or counted twice: a message is acked only after its commit, so a crash before
the ack (a SIGKILL in the middle of a batch) leaves it unacknowledged and JetStream redelivers it
after ``ack_wait``; the redelivered message finds its transaction id already claimed (the
idempotency key is written in the same transaction as the postings) and replays the stored answer
instead of posting again. The same holds for a producer that publishes one transaction twice.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import gc
import hashlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
import structlog
from nats.aio.msg import Msg
from nats.errors import TimeoutError as NatsTimeoutError
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy import Engine

from prevenance.common.clock import Clock
from prevenance.common.inputs import NUL_MESSAGE, nul_path, printable
from prevenance.common.problems import PROBLEM_BASE, PrevenanceError
from prevenance.loyalty import earning, service
from prevenance.loyalty.schemas import TransactionCreate
from prevenance.stream.names import Names

log = structlog.get_logger()

ACCEPTED, REPLAYED, REJECTED = "accepted", "replayed", "rejected"


@dataclass(frozen=True)
class Result:
    """What became of one message; ``committed_ns`` is the wall clock just after the commit."""

    status: str
    body: dict[str, Any]
    committed_ns: int = field(default_factory=time.time_ns)


def _validation_problem(error: ValidationError) -> dict[str, Any]:
    first = error.errors()[0] if error.errors() else {"loc": (), "msg": "invalid message"}
    loc = [str(part) for part in first.get("loc", ())]
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + "invalid-input",
        "title": "Invalid input",
        "status": 422,
        "detail": f"{'.'.join(loc)}: {first['msg']}" if loc else str(first["msg"]),
    }
    if loc:
        body["field"] = loc[0]
    return body


# What a reject record keeps of a message and of a field name taken from it. A message may be as
# large as the server allows (``max_payload``, 1 MiB by default), and its record is larger still: the
# message written as JSON text (a control byte becomes ``\\u0001``, six bytes), plus the problem. A
# record the server refuses could never be stored, so the message was nakked and redelivered for
# ever; bounded, every record fits, and the whole message stays in the transactions stream at
# ``stream_sequence``.
REJECT_DATA_BYTES = 64 * 1024
FIELD_NAME_CHARACTERS = 200


def _bounded_name(name: str) -> str:
    """A field name taken from a message, cut to ``FIELD_NAME_CHARACTERS`` (marked with "…")."""
    return name if len(name) <= FIELD_NAME_CHARACTERS else name[:FIELD_NAME_CHARACTERS] + "…"


def reject_record(subject: str, sequence: int, problem: dict[str, Any], data: bytes) -> dict[str, Any]:
    """The record published to the rejects stream: the message as UTF-8 text (lossy), or, beyond
    ``REJECT_DATA_BYTES``, its head (whole characters) with its size and SHA-256 and
    ``data_truncated``, so the record always fits the server's limit."""
    record: dict[str, Any] = {"subject": subject, "stream_sequence": sequence, "problem": problem}
    if len(data) <= REJECT_DATA_BYTES:
        record["data"] = data.decode("utf-8", errors="replace")
        return record
    # An incremental decoder leaves out a character cut in half at the end of the head.
    head = codecs.getincrementaldecoder("utf-8")("replace").decode(data[:REJECT_DATA_BYTES], final=False)
    record.update(
        data=head,
        data_truncated=True,
        data_bytes=len(data),
        data_sha256=hashlib.sha256(data).hexdigest(),
    )
    return record


def _nul_problem(data: bytes) -> dict[str, Any] | None:
    """The problem of a message with a NUL character in a field (the API refuses it with 422)."""
    if b"\\u0000" not in data and b"\x00" not in data:
        return None  # one scan of the bytes: the usual message costs nothing more
    try:
        found = nul_path(orjson.loads(data))
    except orjson.JSONDecodeError:
        return None  # not JSON: the model's own refusal says so
    except RecursionError:
        # The search walks the value recursively: a NUL some thousand arrays deep (a 1 KiB message)
        # exhausted the stack, and the consumer took that for a transient failure (nak, redelivered
        # for ever). No transaction nests anything: the message is refused like any other.
        return {
            "type": PROBLEM_BASE + "invalid-input",
            "title": "Invalid input",
            "status": 422,
            "detail": "body: nested too deeply to be read",
            "field": "body",
        }
    if found is None:
        return None
    # The path may hold a key of the message's choosing, of any length: the problem names it bounded.
    field = _bounded_name(printable(".".join(found))) or "body"
    return {
        "type": PROBLEM_BASE + "invalid-input",
        "title": "Invalid input",
        "status": 422,
        "detail": f"{field}: {NUL_MESSAGE}",
        "field": field,
    }


def parse(data: bytes) -> service.TransactionInput | Result:
    """The transaction a message carries, validated as the API validates its body, or a rejection
    (a NUL character in a field included: PostgreSQL could not store it)."""
    nul = _nul_problem(data)
    if nul is not None:
        return Result(REJECTED, nul)
    try:
        body = TransactionCreate.model_validate_json(data)
    except ValidationError as error:
        return Result(REJECTED, _validation_problem(error))
    return service.TransactionInput(**body.model_dump())


def apply_batch(engine: Engine, clock: Clock, messages: Sequence[bytes]) -> list[Result]:
    """Parse and apply messages in one transaction through the earn engine (blocking).

    A refused message (invalid body, unknown member, id reused with another body) writes nothing
    and is answered with its problem; its neighbours commit in the same transaction (the engine
    decides refusals before writing, so no savepoint is needed). A hook refusing an earn sends the
    batch round once more without it. Any other error rolls back the whole transaction and is
    raised (nothing committed).
    """
    parsed = [parse(data) for data in messages]
    requests = [earning.EarnRequest.of(item) for item in parsed if not isinstance(item, Result)]
    results = iter(earning.run_earns(engine, requests, now=clock.now))
    committed = time.time_ns()
    answers: list[Result] = []
    for item in parsed:
        if isinstance(item, Result):
            answers.append(Result(item.status, item.body, committed))
            continue
        outcome = next(results)
        if isinstance(outcome, PrevenanceError):
            answers.append(Result(REJECTED, outcome.to_problem(), committed))
        elif outcome.status_code >= 400:
            answers.append(Result(REJECTED, outcome.body, committed))
        else:
            answers.append(Result(REPLAYED if outcome.replayed else ACCEPTED, outcome.body, committed))
    return answers


def apply_message(engine: Engine, clock: Clock, data: bytes) -> Result:
    """Parse and apply one message in its own transaction (blocking)."""
    return apply_batch(engine, clock, [data])[0]


OnResult = Callable[[Msg, Result], None]


def freeze_startup_heap() -> None:
    """Move every object alive after start-up (modules, mappers, compiled statements: some 200,000)
    out of the garbage collector's reach.

    A full collection otherwise walks them all and stops the consumer 40 to 70 ms, several times a
    minute, which made most of the p99 latency at 500 transactions/s (``benchmarks/stream.py``).
    Frozen objects are not collected as cycles any more, so this runs once per process, when the
    process has finished starting.
    """
    global _heap_frozen
    if not _heap_frozen:
        gc.collect()
        gc.freeze()
        _heap_frozen = True


_heap_frozen = False


@dataclass
class Stats:
    accepted: int = 0
    replayed: int = 0
    rejected: int = 0
    retried: int = 0


class Consumer:
    """Pull transactions from JetStream and apply them; see the module docstring for the rules."""

    def __init__(
        self,
        *,
        engine: Engine,
        clock: Clock,
        js: JetStreamContext,
        names: Names,
        batch: int = 100,
        commit_every: int = 100,
        linger: float = 0.01,
        ack_wait: float = 30.0,
        nak_delay: float = 2.0,
        on_result: OnResult | None = None,
    ) -> None:
        from prevenance import wiring

        wiring.install()
        self.engine, self.clock, self.js, self.names = engine, clock, js, names
        self.batch, self.commit_every = batch, commit_every
        self.linger, self._caught_up = linger, True
        self.ack_wait, self.nak_delay = ack_wait, nak_delay
        self.on_result = on_result
        self.stats = Stats()
        self._sub: JetStreamContext.PullSubscription | None = None

    def consumer_config(self) -> ConsumerConfig:
        """Durable, explicit ack, redelivered forever (a transient failure must not drop money)."""
        return ConsumerConfig(
            durable_name=self.names.consumer,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            max_ack_pending=max(1000, self.batch * 4),
            filter_subject=self.names.transactions_subject,
        )

    async def subscribe(self) -> JetStreamContext.PullSubscription:
        if self._sub is None:
            self._sub = await self.js.pull_subscribe(
                self.names.transactions_subject,
                durable=self.names.consumer,
                stream=self.names.transactions_stream,
                config=self.consumer_config(),
            )
        return self._sub

    async def run(self, stop: asyncio.Event) -> None:
        """Fetch and apply batches until ``stop`` is set; the transaction in hand is finished first."""
        sub = await self.subscribe()
        freeze_startup_heap()
        while not stop.is_set():
            msgs = await self._fetch(sub)
            for start in range(0, len(msgs), self.commit_every):
                if stop.is_set():
                    # Hand the rest back at once rather than after ack_wait.
                    for rest in msgs[start:]:
                        await rest.nak()
                    break
                await self.process(msgs[start : start + self.commit_every])

    async def _fetch(self, sub: JetStreamContext.PullSubscription) -> list[Msg]:
        """The next messages, up to ``batch``, without making any of them wait for the others.

        A ``fetch(batch)`` that finds nothing available long-polls, and after a first message
        arrives it goes on waiting for the rest of the batch until its timeout: a lone message
        would wait that long. So once the backlog is drained (the last fetch came back short) the
        consumer waits for *one* message (up to 1 s, then looks at ``stop`` again), then takes what
        else arrives within ``linger`` seconds; while there is a backlog it fetches full batches,
        which the server answers at once.
        """
        try:
            if self._caught_up:
                msgs = await sub.fetch(1, timeout=1.0)
                with contextlib.suppress(TimeoutError, NatsTimeoutError):
                    msgs += await sub.fetch(self.batch - 1, timeout=self.linger)
            else:
                msgs = await sub.fetch(self.batch, timeout=1.0)
        except (TimeoutError, NatsTimeoutError):
            msgs = []
        self._caught_up = len(msgs) < self.batch
        return msgs

    async def process(self, msgs: Sequence[Msg]) -> list[Result | None]:
        """Apply messages in one transaction, then ack, reject-and-ack or nak each of them.

        When the transaction fails, each message is tried again alone, so that a message failing
        for a reason of its own is nakked without holding back the others.

        The batch is applied on the event loop's own thread, blocking it: the consumer handles one
        batch at a time anyway, and NATS traffic waits in the socket meanwhile. A worker thread
        (``asyncio.to_thread``) only added hand-offs of the interpreter lock between it and the loop:
        with offers live at 500 transactions/s, p50 10–13 → 6 ms and p99 ~82 → ~62 ms in 20-second
        runs of ``benchmarks/stream.py --offers 5``.
        """
        try:
            results = apply_batch(self.engine, self.clock, [m.data for m in msgs])
        except Exception as error:
            if len(msgs) > 1:
                return [result for msg in msgs for result in await self.process([msg])]
            self.stats.retried += 1
            log.warning(
                "stream_transaction_retry",
                subject=msgs[0].subject,
                delay_s=self.nak_delay,
                error=f"{type(error).__name__}: {error}",
            )
            await msgs[0].nak(delay=self.nak_delay)
            return [None]
        return [await self._settle(msg, result) for msg, result in zip(msgs, results, strict=True)]

    async def _settle(self, msg: Msg, result: Result) -> Result | None:
        if result.status == REJECTED:
            try:
                await self._reject(msg, result)
            except Exception as error:
                self.stats.retried += 1
                log.warning("stream_reject_publish_failed", error=str(error))
                await msg.nak(delay=self.nak_delay)
                return None
        if self.on_result is not None:
            self.on_result(msg, result)
        await msg.ack()
        setattr(self.stats, result.status, getattr(self.stats, result.status) + 1)
        return result

    async def _reject(self, msg: Msg, result: Result) -> None:
        sequence = msg.metadata.sequence.stream
        log.warning(
            "stream_transaction_rejected",
            subject=msg.subject,
            stream_sequence=sequence,
            problem=result.body.get("type"),
            field=result.body.get("field"),
            detail=result.body.get("detail"),
        )
        record = reject_record(msg.subject, sequence, result.body, msg.data)
        await self.js.publish(
            self.names.rejects_subject,
            orjson.dumps(record),
            # A redelivered poison message is recorded once (within the duplicate window).
            headers={"Nats-Msg-Id": f"reject:{self.names.transactions_stream}:{sequence}"},
        )
