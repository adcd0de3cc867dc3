"""Offers on the stream path (real JetStream): the consumer installs the offers hook, its answer
carries the offer exactly as the API would, and redelivered qualifying payments reward once."""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine, select

from prevenance.common.clock import FrozenClock
from prevenance.db import read_session
from prevenance.loyalty import ledger
from prevenance.loyalty.tables import Posting
from prevenance.offers.tables import OfferDecision
from prevenance.stream.consumer import ACCEPTED, REPLAYED
from prevenance.stream.names import Names
from tests.conftest import Api, tx_body
from tests.integration.offers.conftest import offer_def, refs_in_arm
from tests.integration.stream.conftest import add_members
from tests.integration.stream.test_consumer import publish_and_consume


def test_the_stream_answer_carries_the_offer_and_duplicates_reward_once(
    api: Api, engine: Engine, clock: FrozenClock, names: Names, nats_url: str
) -> None:
    assert api.put("/v1/offers/books", offer_def(), role="marketing").status_code == 201
    treated, control = refs_in_arm("books", "treatment", 1)[0], refs_in_arm("books", "control", 1)[0]
    add_members(engine, clock, [treated, control])
    first = [tx_body("S1", treated), tx_body("S2", control)]
    _, results = asyncio.run(publish_and_consume(nats_url, engine, clock, names, first))
    by_id = {r.body["id"]: r for _, r in results}
    assert by_id["S1"].status == ACCEPTED and by_id["S1"].body["offer"]["offer_id"] == "books"
    assert "offer" not in by_id["S2"].body
    replay = api.post("/v1/transactions", tx_body("S1", treated), role="integrator")
    assert replay.headers["Idempotent-Replayed"] == "true" and replay.json() == by_id["S1"].body
    assert api.post(f"/v1/members/{treated}/offers/books/activate", role="agent").status_code == 200
    qualifying = [tx_body("S3", treated), tx_body("S4", treated)]
    _, second = asyncio.run(publish_and_consume(nats_url, engine, clock, names, qualifying + qualifying))
    statuses = sorted(r.status for _, r in second)
    assert statuses == [ACCEPTED, ACCEPTED, REPLAYED, REPLAYED]
    rewarded = [r.body for _, r in second if r.status == ACCEPTED and "offer_rewards" in r.body]
    assert len(rewarded) == 1 and rewarded[0]["offer_rewards"][0]["points"] == 100
    with read_session(engine) as session:
        assert session.scalars(select(Posting.amount).where(Posting.reason == "offer_reward")).all() == [100]
        arms = sorted(session.scalars(select(OfferDecision.arm)).all())
        assert arms == ["control", "treatment"]
        assert ledger.audit(session)["ok"]
