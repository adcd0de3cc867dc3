"""The decision on every transaction: the offer in the response (and its replay), the holdout,
leave_me_alone, caps, the communications log and the outbox."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session
from prevenance.desk.tables import Communication
from prevenance.offers import rules
from prevenance.offers.tables import OfferDecision
from tests.conftest import Api, tx_body
from tests.integration.offers.conftest import add_member, member_headers, offer_def, pay, refs_in_arm


def _decisions(engine: Engine) -> list[OfferDecision]:
    with read_session(engine) as session:
        return list(
            session.scalars(select(OfferDecision).order_by(OfferDecision.decided_at, OfferDecision.id))
        )


def test_treated_member_gets_the_offer_in_the_response_and_a_replay_returns_it_again(
    api: Api, engine: Engine
) -> None:
    api.put("/v1/offers/books", offer_def(), role="marketing")
    (ref,) = refs_in_arm("books", "treatment", 1)
    add_member(api, ref, language="en")
    first = api.post("/v1/transactions", tx_body("t1", ref), role="integrator")
    assert first.status_code == 201, first.text
    offer = first.json()["offer"]
    assert offer["offer_id"] == "books" and offer["language"] == "en"
    assert offer["title"] == "100 points at Librairie" and offer["status"] == "made"
    replay = api.post("/v1/transactions", tx_body("t1", ref), role="integrator")
    assert replay.headers.get("Idempotent-Replayed") == "true"
    assert replay.json() == first.json()
    (decision,) = _decisions(engine)
    assert (decision.arm, decision.status, decision.transaction_id) == ("treatment", "made", "t1")
    assert decision.model_version is None and 0 < decision.propensity < 1
    with read_session(engine) as session:
        notes = session.scalars(select(Communication).where(Communication.template == "offer-made")).all()
        assert [(n.channel, n.language, n.subject) for n in notes] == [
            ("web", "en", "100 points at Librairie")
        ]
        made = session.scalars(select(OutboxEvent).where(OutboxEvent.type == "offer.made")).all()
        assert [e.payload["decision_id"] for e in made] == [decision.id]
    # Cap of one per member: the next payment decides nothing new.
    second = pay(api, "t2", ref)
    assert "offer" not in second
    assert len(_decisions(engine)) == 1
    shown = api.client.get(
        f"/v1/members/{ref}/offers", headers={**api.headers("agent"), "Accept-Language": "fr-FR,fr;q=0.9"}
    )
    assert shown.status_code == 200
    assert [(i["offer_id"], i["title"], i["status"]) for i in shown.json()["items"]] == [
        ("books", "100 points chez Librairie", "made")
    ]


def test_control_member_is_recorded_as_would_have_received_and_shown_nothing(
    api: Api, engine: Engine
) -> None:
    api.put("/v1/offers/books", offer_def(), role="marketing")
    (ref,) = refs_in_arm("books", "control", 1)
    add_member(api, ref)
    body = pay(api, "t1", ref)
    assert "offer" not in body
    (decision,) = _decisions(engine)
    assert (decision.arm, decision.status) == ("control", "would_have_received")
    assert api.get(f"/v1/members/{ref}/offers", role="agent").json()["items"] == []
    refused = api.post(f"/v1/members/{ref}/offers/books/activate", role="agent")
    assert refused.status_code == 409 and refused.json()["type"].endswith("/offer-not-available")
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Communication)) == 0


def test_holdout_assignment_follows_the_hash_for_every_member(api: Api, engine: Engine) -> None:
    api.put("/v1/offers/books", offer_def(holdout_share="0.30"), role="marketing")
    refs = [f"H{i}" for i in range(40)]
    for i, ref in enumerate(refs):
        add_member(api, ref)
        pay(api, f"h{i}", ref)
    arms = {d.transaction_id: d.arm for d in _decisions(engine)}
    expected = {f"h{i}": rules.arm_of(ref, "books", Decimal("0.30")) for i, ref in enumerate(refs)}
    assert arms == expected
    assert 0 < list(arms.values()).count("control") < 40


def test_a_member_who_asked_to_be_left_alone_gets_no_offer_and_no_record(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    api.put("/v1/offers/books", offer_def(holdout_share="0"), role="marketing")
    add_member(api, "QUIET")
    headers = member_headers(engine, clock, "QUIET")
    assert (
        api.client.put(
            "/v1/members/QUIET/contact-preference", json={"mode": "leave_me_alone"}, headers=headers
        ).status_code
        == 200
    )
    assert "offer" not in pay(api, "t1", "QUIET")
    assert _decisions(engine) == []
    add_member(api, "CHATTY")
    assert pay(api, "t2", "CHATTY")["offer"]["offer_id"] == "books"


def test_eligibility_product_country_category_spend_and_dates(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    eligibility = {"products": ["gold"], "countries": ["FR"], "categories": ["books"], "min_spend_eur": "20"}
    api.put("/v1/offers/books", offer_def(holdout_share="0", eligibility=eligibility), role="marketing")
    add_member(api, "GB1", country="GB")
    add_member(api, "FR1")
    assert "offer" not in pay(api, "a", "GB1")  # country
    assert "offer" not in pay(api, "b", "FR1", category="travel")  # category
    assert "offer" not in pay(api, "c", "FR1", amount="19.99")  # spend
    assert pay(api, "d", "FR1")["offer"]["offer_id"] == "books"
    api.put(
        "/v1/offers/later", offer_def(holdout_share="0", valid_from="2026-02-01T00:00:00Z"), role="marketing"
    )
    add_member(api, "FR2")
    assert pay(api, "e", "FR2")["offer"]["offer_id"] == "books"  # "later" is not valid yet
    assert {d.offer_id for d in _decisions(engine)} == {"books"}


def test_the_best_expected_value_wins(api: Api) -> None:
    api.put("/v1/offers/a-small", offer_def(holdout_share="0", margin_rate="0.02"), role="marketing")
    api.put("/v1/offers/b-large", offer_def(holdout_share="0", margin_rate="0.20"), role="marketing")
    add_member(api, "M1")
    assert pay(api, "t1", "M1")["offer"]["offer_id"] == "b-large"
    # b-large is now open for M1; a-small is the best of the rest for the next payment? No: one open
    # offer does not block another campaign.
    assert pay(api, "t2", "M1")["offer"]["offer_id"] == "a-small"
    assert "offer" not in pay(api, "t3", "M1")


def test_paused_offers_decide_nothing(api: Api) -> None:
    api.put("/v1/offers/books", offer_def(holdout_share="0"), role="marketing")
    api.post("/v1/offers/books/pause", role="marketing")
    add_member(api, "M1")
    assert "offer" not in pay(api, "t1", "M1")
    api.post("/v1/offers/books/resume", role="marketing")
    assert pay(api, "t2", "M1")["offer"]["offer_id"] == "books"
