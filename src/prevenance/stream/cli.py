"""``prevenance stream``: run the consumer and the outbox relay; publish a file of transactions."""

from __future__ import annotations

import asyncio
import csv
import hashlib
import multiprocessing
import re
import signal
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from pathlib import Path

import nats
import orjson
import structlog
import typer

from prevenance.common.clock import SystemClock
from prevenance.db import engine_from_settings, wal_checkpoints_in_background
from prevenance.settings import get_settings
from prevenance.stream.consumer import Consumer
from prevenance.stream.names import Names, ensure_streams
from prevenance.stream.relay import Relay

app = typer.Typer(help="NATS JetStream: transaction consumer, outbox relay.", no_args_is_help=True)
log = structlog.get_logger()

_TOKEN = re.compile(r"[A-Za-z0-9_-]+")
TOKEN_TEXT = "letters, digits, '_' and '-' only"


def _token(value: str) -> str:
    """A subject token of our own choosing: a space, a dot or a wildcard would make an invalid
    subject or stream name (a traceback from the client) or a wildcard subject (``a.*``)."""
    if value and not _TOKEN.fullmatch(value):
        raise typer.BadParameter(f"{value!r}: {TOKEN_TEXT}")
    return value


def _source(value: str) -> str:
    if not value:
        raise typer.BadParameter(f"must not be empty: {TOKEN_TEXT}")
    return _token(value)


NAMESPACE = typer.Option(
    "",
    envvar="PREVENANCE_STREAM_NAMESPACE",
    callback=_token,
    help=f"prefix of every subject and suffix of every stream name (to share one server): {TOKEN_TEXT}",
)


def _nats_url() -> str:
    url = get_settings().nats_url
    if not url:
        typer.echo("error: PREVENANCE_NATS_URL is not set", err=True)
        raise typer.Exit(2)
    return url


async def _run(
    *,
    url: str,
    names: Names,
    batch: int,
    ack_wait: float,
    consume: bool,
    relay: bool,
    stop_on: Sequence[int] = (),
) -> bool:
    """Run the roles until SIGINT or SIGTERM, or until one of the ``stop_on`` file descriptors
    becomes readable (a relay child's exit, a parent's end of the lifeline closing). True when it
    stopped for such a descriptor, False for a signal."""
    # SQLite: the WAL is checkpointed beside the consumer's commits, not by the commit that fills it.
    engine = engine_from_settings(background_checkpoints=True)
    clock = SystemClock()
    stop = asyncio.Event()
    watched = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def stop_watched() -> None:
        watched.set()
        stop.set()

    for fd in stop_on:
        loop.add_reader(fd, stop_watched)
    nc = await nats.connect(url, max_reconnect_attempts=-1, name="prevenance-stream")
    js = nc.jetstream()
    await ensure_streams(js, names)
    tasks = []
    consumer = Consumer(engine=engine, clock=clock, js=js, names=names, batch=batch, ack_wait=ack_wait)
    relay_ = Relay(engine=engine, clock=clock, js=js, names=names)
    if consume:
        await consumer.subscribe()
        tasks.append(asyncio.create_task(consumer.run(stop), name="consumer"))
    if relay:
        tasks.append(asyncio.create_task(relay_.run(stop), name="relay"))
    log.info("stream_started", consumer=consume, relay=relay, stream=names.transactions_stream)
    try:
        with wal_checkpoints_in_background(engine):
            await asyncio.gather(*tasks)
    finally:
        stop.set()
        for fd in stop_on:
            loop.remove_reader(fd)
        # Every ack is already written; close (a drain would wait on the pull request in flight).
        await nc.flush()
        await nc.close()
        engine.dispose()
        log.info("stream_stopped", **vars(consumer.stats), events_delivered=relay_.delivered)
    return watched.is_set()


def _relay_child(url: str, namespace: str, lifeline: Connection) -> None:
    """The relay in a process of its own (``run``'s default): it stops when its parent's end of
    ``lifeline`` closes, whether the parent stopped or was killed, so no relay outlives its worker."""
    from prevenance.logging import configure

    configure(json=get_settings().log_json)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal's Ctrl-C reaches the parent, which stops us
    asyncio.run(
        _run(
            url=url,
            names=Names(namespace),
            batch=1,
            ack_wait=30.0,
            consume=False,
            relay=True,
            stop_on=(lifeline.fileno(),),
        )
    )


def _run_with_relay_apart(*, url: str, names: Names, batch: int, ack_wait: float) -> None:
    """The consumer here, the relay in a child process: the relay's bursts of publishing and its
    delivery marks no longer share the consumer's interpreter and event loop, which was most of the
    consumer's publish → commit tail (docs/stream.md). If the child dies, the consumer stops too and
    the command exits 1, so the service manager restarts the pair."""
    context = multiprocessing.get_context("spawn")  # a fresh interpreter: no copied loop, engine or lock
    lifeline, kept = context.Pipe(duplex=False)
    child = context.Process(
        target=_relay_child, args=(url, names.namespace, lifeline), name="prevenance-relay", daemon=False
    )
    child.start()
    lifeline.close()  # the child holds the reading end; ours closing (even at a SIGKILL) stops it
    log.info("stream_relay_started", pid=child.pid)
    try:
        child_died = asyncio.run(
            _run(
                url=url,
                names=names,
                batch=batch,
                ack_wait=ack_wait,
                consume=True,
                relay=False,
                stop_on=(child.sentinel,),
            )
        )
    finally:
        kept.close()
        child.join(timeout=30)
        if child.is_alive():
            child.terminate()
            child.join()
    if child_died:
        log.error("stream_relay_died", exitcode=child.exitcode)
        raise typer.Exit(1)


@app.command("run")
def run(
    namespace: str = NAMESPACE,
    batch: int = typer.Option(100, min=1, max=1000, help="messages fetched per pull request"),
    ack_wait: float = typer.Option(30.0, min=0.5, help="seconds before an unacked message is redelivered"),
    consume: bool = typer.Option(True, "--consumer/--no-consumer", help="consume card transactions"),
    relay: bool = typer.Option(True, "--relay/--no-relay", help="publish the outbox to JetStream"),
    relay_apart: bool = typer.Option(
        True,
        "--relay-apart/--relay-in-process",
        help="with both roles, the relay in a child process of its own (the consumer's latency does not "
        "wait for the relay's bursts)",
    ),
) -> None:
    """Consume card transactions and relay the outbox until SIGINT or SIGTERM. Refuses (exit 2) a
    weak PREVENANCE_SECRET_KEY unless its NATS server and database are both on this machine."""
    from prevenance.logging import configure
    from prevenance.secret_key import judge_stream

    settings = get_settings()
    url = _nats_url()
    verdict = judge_stream(settings.secret_key, nats_url=url, database_url=settings.database_url)
    if verdict.line:
        typer.echo(verdict.line, err=True)
    if verdict.refuse:
        raise typer.Exit(2)
    configure(json=settings.log_json)
    if consume and relay and relay_apart:
        _run_with_relay_apart(url=url, names=Names(namespace), batch=batch, ack_wait=ack_wait)
        return
    asyncio.run(
        _run(
            url=url,
            names=Names(namespace),
            batch=batch,
            ack_wait=ack_wait,
            consume=consume,
            relay=relay,
        )
    )


FIELDS = ("id", "member_ref", "amount", "currency", "merchant", "category", "occurred_at")
_PLAIN_ID = re.compile(r"[!-~]+")  # printable ASCII, no space: what a header carries unchanged


def message_id(tx_id: object, data: bytes) -> str:
    """The ``Nats-Msg-Id`` of a message: the server keeps one message per value within its
    duplicate window, so two distinct transactions must never share one.

    ``tx:<id>`` for an id of printable ASCII without spaces (nearly all of them), else
    ``tx-sha256:<digest of the id>``: the NATS client trims a header value and turns CR and LF into
    spaces, so ``"T1"``, ``"T1 "`` and ``"T1\\n"`` would all have been ``tx:T1`` and all but the
    first dropped without a trace. A message without a text id (not JSON, no id, a number) is named
    by the digest of its bytes (``msg-sha256:``): the consumer rejects it, republished it is still
    stored once, and ``{"id": 7}`` no longer hides a later ``{"id": "7"}``."""
    if not isinstance(tx_id, str) or not tx_id:
        return "msg-sha256:" + hashlib.sha256(data).hexdigest()
    if _PLAIN_ID.fullmatch(tx_id):
        return f"tx:{tx_id}"
    return "tx-sha256:" + hashlib.sha256(tx_id.encode("utf-8", "surrogatepass")).hexdigest()


def read_transactions(path: Path) -> Iterator[tuple[int, str, bytes]]:
    """(line, Nats-Msg-Id, message) triples from a CSV file with a header row, or from JSON lines
    (one object a line). A CSV is checked whole first and read as ``prevenance ingest`` reads it
    (``FileError``: not UTF-8, a column missing or twice; a byte-order mark is skipped). A JSON line
    is forwarded as written, even when it does not parse: the consumer is the one that judges a
    message (and records the refusal in the rejects stream)."""
    if path.suffix.lower() == ".csv":
        from prevenance.loyalty.ingest import TRANSACTION_COLUMNS, verify_file

        verify_file(path, TRANSACTION_COLUMNS)
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle)
            names = [name.strip() for name in next(reader)]
            where = [names.index(name) for name in FIELDS]
            start = reader.line_num + 1
            for row in reader:
                line, start = start, reader.line_num + 1
                if not row:
                    continue  # a blank line
                body = {
                    name: (row[i] if i < len(row) else None) for name, i in zip(FIELDS, where, strict=True)
                }
                data = orjson.dumps(body)
                yield line, message_id(body["id"], data), data
        return
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, 1):
            if raw.strip():
                try:
                    parsed = orjson.loads(raw)
                except orjson.JSONDecodeError:
                    parsed = None
                tx_id = parsed.get("id") if isinstance(parsed, dict) else None
                yield number, message_id(tx_id, raw.strip()), raw.strip()


def check_sizes(path: Path, max_payload: int) -> None:
    """Refuse (``FileError``) a file holding a message larger than the server accepts, naming its
    line, before anything is published: the publish of that message would fail part-way through
    the file (a traceback, the lines before it published, the lines after it not)."""
    from prevenance.loyalty.ingest import FileError

    for line, _, data in read_transactions(path):
        if len(data) > max_payload:
            raise FileError(
                f"{path.name}: line {line}: a message of {len(data)} bytes is larger than the "
                f"server's max_payload ({max_payload}); nothing was published"
            )


async def _publish(*, url: str, names: Names, path: Path, source: str) -> int:
    nc = await nats.connect(url, name="prevenance-publish")
    try:
        check_sizes(path, nc.max_payload)  # and, for a CSV, the whole file's reading
        js = nc.jetstream()
        await ensure_streams(js, names)
        subject = names.transaction_subject(source)
        count = 0
        pending = []
        for _, msg_id, data in read_transactions(path):
            # Within the stream's duplicate window a file published twice is stored once.
            pending.append(js.publish(subject, data, headers={"Nats-Msg-Id": msg_id}))
            if len(pending) >= 256:
                await asyncio.gather(*pending)
                count, pending = count + len(pending), []
        await asyncio.gather(*pending)
        count += len(pending)
    finally:
        await nc.close()
    return count


@app.command("publish")
def publish(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="a .csv or JSON-lines file"),
    namespace: str = NAMESPACE,
    source: str = typer.Option(
        "file",
        callback=_source,
        help=f"last token of the subject (prevenance.transactions.<source>): {TOKEN_TEXT}",
    ),
) -> None:
    """Publish a file of transactions to the transactions stream (each acked by JetStream). A CSV
    that cannot be read as a settlement file, or a file holding a message larger than the server
    accepts, is refused (exit 2) before anything is published."""
    from prevenance.loyalty.ingest import FileError

    try:
        count = asyncio.run(_publish(url=_nats_url(), names=Names(namespace), path=file, source=source))
    except FileError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"published {count} transactions to {Names(namespace).transaction_subject(source)}")
