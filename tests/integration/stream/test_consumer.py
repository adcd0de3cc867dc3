"""The transaction consumer against a real JetStream: same answers as the API, duplicates and
redeliveries counted once, poison messages set aside without blocking the rest."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import nats
import orjson
from nats.aio.msg import Msg
from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.db import read_session
from prevenance.loyalty import ledger
from prevenance.loyalty.tables import CardTransaction
from prevenance.stream.consumer import ACCEPTED, REJECTED, REPLAYED, Consumer, Result
from prevenance.stream.names import Names
from tests.conftest import Api, tx_body
from tests.integration.stream.conftest import add_members, async_wait_until

Message = dict[str, Any] | bytes


async def publish_and_consume(
    url: str,
    engine: Engine,
    clock: FrozenClock,
    names: Names,
    messages: Sequence[Message],
    *,
    batch: int = 100,
) -> tuple[Consumer, list[tuple[bytes, Result]]]:
    """Publish ``messages`` (no Nats-Msg-Id: the server keeps duplicates), consume until every one
    has been acked, and return the consumer and what it answered for each message."""
    nc = await nats.connect(url)
    js = nc.jetstream()
    for message in messages:
        data = message if isinstance(message, bytes) else orjson.dumps(message)
        await js.publish(names.transaction_subject(), data)
    results: list[tuple[bytes, Result]] = []

    def record(msg: Msg, result: Result) -> None:
        results.append((msg.data, result))

    consumer = Consumer(engine=engine, clock=clock, js=js, names=names, batch=batch, on_result=record)
    stop = asyncio.Event()
    task = asyncio.create_task(consumer.run(stop))
    try:
        await async_wait_until(
            lambda: len(results) >= len(messages) or task.done(),
            timeout=60,
            what=f"{len(messages)} messages to be applied (got {len(results)})",
        )
    finally:
        stop.set()
        await task
    info = await js.consumer_info(names.transactions_stream, names.consumer)
    await nc.close()
    assert info.num_pending == 0 and info.num_ack_pending == 0, info
    return consumer, results


def count_transactions(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(CardTransaction)) or 0)


def test_messages_earn_exactly_what_the_api_answers(
    api: Api, engine: Engine, clock: FrozenClock, names: Names, nats_url: str
) -> None:
    add_members(engine, clock, ["M1"])
    add_members(engine, clock, ["P1"], product="platinum")
    add_members(engine, clock, ["C1"], product="cobrand-airline")
    bodies = [
        tx_body("T1", "M1", "42.99"),
        tx_body("T2", "M1", "0.40"),
        tx_body("T3", "P1", "100.00", category="travel"),
        tx_body("T4", "C1", "100.00"),
        tx_body("T5", "M1", "100", currency="GBP"),
    ]
    _, results = asyncio.run(publish_and_consume(nats_url, engine, clock, names, bodies))
    assert [r.status for _, r in results] == [ACCEPTED] * len(bodies)
    assert [r.body["points_earned"] for _, r in results] == [42, 1, 200, 100, 117]
    for body, (_, result) in zip(bodies, results, strict=True):
        # The API recognises the stream's write as its own: same key, same body, same answer.
        answer = api.post("/v1/transactions", body, role="integrator")
        assert answer.status_code == 201, answer.text
        assert answer.headers.get("Idempotent-Replayed") == "true"
        assert answer.json() == result.body
    assert api.get("/v1/members/M1/balance").json()["points"] == 42 + 1 + 117
    with read_session(engine) as session:
        assert ledger.audit(session)["ok"]


def test_duplicates_are_counted_once(engine: Engine, clock: FrozenClock, names: Names, nats_url: str) -> None:
    add_members(engine, clock, ["M1", "M2"])
    bodies = [tx_body(f"T{i}", f"M{1 + i % 2}", "10.00") for i in range(30)]
    consumer, results = asyncio.run(
        publish_and_consume(nats_url, engine, clock, names, bodies + bodies, batch=7)
    )
    assert (consumer.stats.accepted, consumer.stats.replayed, consumer.stats.rejected) == (30, 30, 0)
    first = {orjson.loads(data)["id"]: r.body for data, r in results if r.status == ACCEPTED}
    for data, result in results:
        if result.status == REPLAYED:
            assert result.body == first[orjson.loads(data)["id"]]
    assert count_transactions(engine) == 30
    with read_session(engine) as session:
        assert ledger.audit(session)["ok"]
        m1 = ledger.balance_of(session, member_id=_member_id(session, "M1"), unit="points")
    assert m1 == 150


def _member_id(session: Any, ref: str) -> int:
    from prevenance.customers.tables import Member

    return int(session.scalar(select(Member.id).where(Member.ref == ref)))


async def _rejects(url: str, names: Names) -> list[dict[str, Any]]:
    nc = await nats.connect(url)
    js = nc.jetstream()
    sub = await js.pull_subscribe(names.rejects_subject, stream=names.rejects_stream)
    out: list[dict[str, Any]] = []
    try:
        while True:
            for msg in await sub.fetch(10, timeout=1):
                out.append(orjson.loads(msg.data))
                await msg.ack()
    except (TimeoutError, nats.errors.TimeoutError):
        pass
    await nc.close()
    return out


def test_poison_messages_go_to_rejects_and_do_not_block_the_rest(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str
) -> None:
    add_members(engine, clock, ["M1"])
    messages: list[Message] = [
        tx_body("T1", "M1", "10.00"),
        b"this is not json",
        tx_body("T2", "NOBODY", "10.00"),
        {**tx_body("T3", "M1"), "amount": 12.5},
        tx_body("T4", "M1", "20.00"),
        tx_body("T1", "M1", "99.00"),  # the id of T1 reused with another body
        tx_body("T5", "M1", "30.00"),
    ]
    consumer, results = asyncio.run(publish_and_consume(nats_url, engine, clock, names, messages))
    assert [r.status for _, r in results] == [
        ACCEPTED,
        REJECTED,
        REJECTED,
        REJECTED,
        ACCEPTED,
        REJECTED,
        ACCEPTED,
    ]
    assert consumer.stats.retried == 0
    assert count_transactions(engine) == 3
    rejects = asyncio.run(_rejects(nats_url, names))
    assert len(rejects) == 4
    assert rejects[0]["data"] == "this is not json"
    assert [r["problem"].get("field") for r in rejects[1:]] == ["member_ref", "amount", "id"]
    assert [r["problem"]["status"] for r in rejects] == [422, 422, 422, 409]
    assert all(r["stream_sequence"] > 0 and r["subject"] == names.transaction_subject() for r in rejects)


def test_a_transient_failure_is_retried_not_lost(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str, monkeypatch: Any
) -> None:
    """The database fails the first time a message is applied: it is nakked, redelivered and then
    counted once."""
    from sqlalchemy.exc import OperationalError

    from prevenance.stream import consumer as consumer_module

    add_members(engine, clock, ["M1"])
    real = consumer_module.apply_batch
    failures = {"left": 1}

    def flaky(engine_: Engine, clock_: Any, data: Sequence[bytes]) -> list[Result]:
        if failures["left"]:
            failures["left"] -= 1
            raise OperationalError("SELECT 1", {}, Exception("database is down"))
        return real(engine_, clock_, data)

    monkeypatch.setattr(consumer_module, "apply_batch", flaky)

    async def scenario() -> Consumer:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        await js.publish(names.transaction_subject(), orjson.dumps(tx_body("T1", "M1", "10.00")))
        consumer = Consumer(engine=engine, clock=clock, js=js, names=names, nak_delay=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        try:
            await async_wait_until(
                lambda: consumer.stats.accepted == 1, timeout=30, what="the retried message"
            )
        finally:
            stop.set()
            await task
        await nc.close()
        return consumer

    consumer = asyncio.run(scenario())
    assert (consumer.stats.retried, consumer.stats.accepted) == (1, 1)
    assert count_transactions(engine) == 1


def test_a_message_that_keeps_failing_is_retried_alone_without_holding_back_the_batch(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str, monkeypatch: Any
) -> None:
    from prevenance.loyalty import hooks as loyalty_hooks

    add_members(engine, clock, ["M1"])

    def broken_for_t2(session: Any, *, member_id: int, transaction: Any, now: Any) -> Any:
        if transaction.id == "T2":
            raise RuntimeError("a bug that only this message meets")
        return None

    # A transaction hook (run inside the earn's transaction) that fails for T2 alone.
    monkeypatch.setattr(loyalty_hooks, "_TRANSACTION_HOOKS", {"broken": broken_for_t2})

    async def scenario() -> Consumer:
        nc = await nats.connect(nats_url)
        js = nc.jetstream()
        for i in range(1, 6):
            await js.publish(names.transaction_subject(), orjson.dumps(tx_body(f"T{i}", "M1", "10.00")))
        consumer = Consumer(engine=engine, clock=clock, js=js, names=names, nak_delay=0.2)
        stop = asyncio.Event()
        task = asyncio.create_task(consumer.run(stop))
        try:
            await async_wait_until(
                lambda: consumer.stats.accepted == 4 and consumer.stats.retried >= 2,
                timeout=30,
                what="the four good messages and two attempts at the broken one",
            )
        finally:
            stop.set()
            await task
        await nc.close()
        return consumer

    consumer = asyncio.run(scenario())
    assert consumer.stats.rejected == 0
    assert count_transactions(engine) == 4


def test_a_message_whose_reject_record_would_exceed_the_server_limit_is_still_set_aside(
    engine: Engine, clock: FrozenClock, names: Names, nats_url: str
) -> None:
    """A message is bounded by the server's ``max_payload`` (1 MiB), but its reject record (the
    message as JSON text, plus the problem) can be six times larger: a control byte is written
    ``\\u0001``. Such a record used to be refused by the server, so the message was nakked and
    redelivered every two seconds for ever. The record now carries the head of the message and its
    size and digest; the whole message stays in the transactions stream at ``stream_sequence``."""
    import hashlib

    add_members(engine, clock, ["M1"])
    control_bytes = b"\x01" * 1_000_000
    long_merchant = orjson.dumps({**tx_body("T-LONG", "M1", "10.00"), "merchant": "\x01" * 150_000})
    # A NUL in a field's name: the problem names the field, so it must be bounded too.
    long_name = orjson.dumps({**tx_body("T-NAME", "M1", "10.00"), "k" * 600_000 + "\x00": 1})
    messages: list[Message] = [control_bytes, long_merchant, long_name, tx_body("T1", "M1", "10.00")]
    consumer, results = asyncio.run(publish_and_consume(nats_url, engine, clock, names, messages))
    assert [r.status for _, r in results] == [REJECTED, REJECTED, REJECTED, ACCEPTED]
    assert consumer.stats.retried == 0
    assert count_transactions(engine) == 1
    rejects = asyncio.run(_rejects(nats_url, names))
    assert len(rejects) == 3
    for record, original in zip(rejects, [control_bytes, long_merchant, long_name], strict=True):
        assert record["data_bytes"] == len(original)
        assert record["data_sha256"] == hashlib.sha256(original).hexdigest()
        assert record["data_truncated"] is True
        assert original.decode().startswith(record["data"]) and record["data"]
        assert record["stream_sequence"] > 0
    assert rejects[1]["problem"]["field"] == "merchant"
    assert rejects[2]["problem"]["field"].startswith("kkk") and len(rejects[2]["problem"]["field"]) <= 210
