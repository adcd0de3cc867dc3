"""Activation and the reward: on the next qualifying payment after activation, exactly once, within
the budget, through the ledger (whose audit still balances)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import Engine, select

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session
from prevenance.loyalty import ledger
from prevenance.loyalty.tables import Posting
from prevenance.offers.tables import Offer, OfferDecision
from tests.conftest import Api, tx_body
from tests.integration.offers.conftest import add_member, member_headers, offer_def, pay


def _offer_postings(engine: Engine) -> list[Posting]:
    with read_session(engine) as session:
        return list(
            session.scalars(select(Posting).where(Posting.reason == "offer_reward").order_by(Posting.id))
        )


def _audit_ok(engine: Engine) -> None:
    with read_session(engine) as session:
        report = ledger.audit(session)
    assert report["ok"], [c for c in report["checks"] if not c["ok"]]


def test_activate_then_the_next_partner_payment_is_rewarded_exactly_once(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    api.put("/v1/offers/books", offer_def(holdout_share="0"), role="marketing")
    add_member(api, "M1")
    add_member(api, "M2")
    made = pay(api, "t1", "M1")["offer"]
    mine = member_headers(engine, clock, "M1")
    others = member_headers(engine, clock, "M2")
    assert api.client.post("/v1/members/M1/offers/books/activate", headers=others).status_code == 403
    activated = api.client.post("/v1/members/M1/offers/books/activate", headers=mine)
    assert activated.status_code == 200, activated.text
    assert (
        activated.json()["status"] == "activated" and activated.json()["decision_id"] == made["decision_id"]
    )
    again = api.client.post("/v1/members/M1/offers/books/activate", headers=mine)
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json() == activated.json()
    # Elsewhere: no reward.
    assert "offer_rewards" not in pay(api, "t2", "M1", merchant="Boulangerie")
    before = pay(api, "t3", "M1", merchant="Autre")["balance"]
    rewarded = api.post("/v1/transactions", tx_body("t4", "M1"), role="integrator")
    body = rewarded.json()
    assert body["offer_rewards"] == [
        {
            "decision_id": made["decision_id"],
            "offer_id": "books",
            "kind": "bonus_points",
            "points": 100,
            "balance_after": before + body["points_earned"] + 100,
        }
    ]
    assert body["balance"] == before + body["points_earned"] + 100
    replay = api.post("/v1/transactions", tx_body("t4", "M1"), role="integrator")
    assert replay.json() == body and replay.headers["Idempotent-Replayed"] == "true"
    assert "offer_rewards" not in pay(api, "t5", "M1")
    postings = _offer_postings(engine)
    assert [(p.amount, p.reference, p.idempotency_key) for p in postings] == [
        (100, made["decision_id"], f"offer:{made['decision_id']}")
    ]
    with read_session(engine) as session:
        decision = session.get(OfferDecision, made["decision_id"])
        assert decision is not None
        assert (decision.status, decision.reward_points, decision.reward_transaction_id) == (
            "rewarded",
            100,
            "t4",
        )
        assert session.get(Offer, "books").spent_points == 100  # type: ignore[union-attr]
        types = [e.type for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))]
        assert "offer.accepted" in types and types.count("offer.rewarded") == 1
    used = api.post("/v1/members/M1/offers/books/activate", role="agent")
    assert used.status_code == 409 and used.json()["decision_status"] == "rewarded"
    _audit_ok(engine)


def test_a_payment_made_before_the_activation_does_not_qualify(api: Api, clock: FrozenClock) -> None:
    api.put("/v1/offers/books", offer_def(holdout_share="0"), role="marketing")
    add_member(api, "M1")
    pay(api, "t1", "M1")
    clock.advance(timedelta(days=2))
    assert api.post("/v1/members/M1/offers/books/activate", role="agent").status_code == 200
    late = pay(api, "t2", "M1", occurred_at="2026-01-02T12:00:00Z")  # arrives late, paid before
    assert "offer_rewards" not in late
    assert pay(api, "t3", "M1", occurred_at="2026-01-03T12:00:00Z")["offer_rewards"][0]["points"] == 100


def test_an_expired_offer_cannot_be_activated_or_rewarded(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    api.put("/v1/offers/books", offer_def(holdout_share="0", decision_days=1), role="marketing")
    add_member(api, "M1")
    pay(api, "t1", "M1")
    clock.advance(timedelta(days=2))
    refused = api.post("/v1/members/M1/offers/books/activate", role="agent")
    assert refused.status_code == 409 and refused.json()["decision_status"] == "expired"
    assert api.get("/v1/members/M1/offers", role="agent").json()["items"] == []
    pay(api, "t2", "M1", occurred_at="2026-01-03T10:00:00Z")  # the next payment records the expiry
    with read_session(engine) as session:
        assert session.scalars(select(OfferDecision.status)).all() == ["expired"]  # cap 1: not offered again
    assert api.post("/v1/members/M1/offers/unknown/activate", role="agent").status_code == 404


def test_category_multiplier_and_ecode_rewards(api: Api, engine: Engine) -> None:
    multiplier = offer_def(
        holdout_share="0",
        partner_merchant="Air Partner",
        reward_kind="category_multiplier",
        reward={"category": "travel", "multiplier": "3", "max_points": 150},
    )
    api.put("/v1/offers/travel-x3", multiplier, role="marketing")
    add_member(api, "M1")
    pay(api, "t1", "M1")
    api.post("/v1/members/M1/offers/travel-x3/activate", role="agent")
    small = pay(api, "t2", "M1", category="travel", amount="20.00")
    (reward,) = small["offer_rewards"]
    assert reward["points"] == min(2 * small["points_earned"], 150)
    ecode = offer_def(holdout_share="0", reward_kind="ecode", reward={"sku": "CINEMA-10", "points": 500})
    api.put("/v1/offers/cinema", ecode, role="marketing")
    add_member(api, "M2")
    assert pay(api, "t3", "M2")["offer"]["offer_id"] == "cinema"
    api.post("/v1/members/M2/offers/cinema/activate", role="agent")
    (code,) = pay(api, "t4", "M2")["offer_rewards"]
    assert code == {
        "decision_id": code["decision_id"],
        "offer_id": "cinema",
        "kind": "ecode",
        "sku": "CINEMA-10",
        "points_value": 500,
    }
    assert [p.amount for p in _offer_postings(engine)] == [reward["points"]]  # the e-code posts nothing
    _audit_ok(engine)


def test_the_budget_is_never_exceeded_and_an_unpaid_activation_stays_open(api: Api, engine: Engine) -> None:
    api.put("/v1/offers/books", offer_def(holdout_share="0", budget_points=150), role="marketing")
    for ref in ("M1", "M2"):
        add_member(api, ref)
        pay(api, f"{ref}-a", ref)
        assert api.post(f"/v1/members/{ref}/offers/books/activate", role="agent").status_code == 200
    assert pay(api, "M1-b", "M1")["offer_rewards"][0]["points"] == 100
    assert "offer_rewards" not in pay(api, "M2-b", "M2")
    with read_session(engine) as session:
        assert session.get(Offer, "books").spent_points == 100  # type: ignore[union-attr]
    assert [i["status"] for i in api.get("/v1/members/M2/offers", role="agent").json()["items"]] == [
        "activated"
    ]
    # Budget left (50) is below the reward: nobody new is offered it.
    add_member(api, "M3")
    assert "offer" not in pay(api, "M3-a", "M3")
    budget = api.put("/v1/offers/books", offer_def(holdout_share="0", budget_points=50), role="marketing")
    assert budget.status_code == 409 and budget.json()["field"] == "budget_points"
    _audit_ok(engine)


def test_a_paused_offer_still_pays_its_activations_an_ended_one_does_not(api: Api, engine: Engine) -> None:
    api.put("/v1/offers/books", offer_def(holdout_share="0"), role="marketing")
    for ref in ("M1", "M2"):
        add_member(api, ref)
        pay(api, f"{ref}-a", ref)
        assert api.post(f"/v1/members/{ref}/offers/books/activate", role="agent").status_code == 200
    api.post("/v1/offers/books/pause", role="marketing")
    assert pay(api, "M1-b", "M1")["offer_rewards"][0]["points"] == 100
    api.post("/v1/offers/books/end", role="marketing")
    assert "offer_rewards" not in pay(api, "M2-b", "M2")
    assert [p.amount for p in _offer_postings(engine)] == [100]
