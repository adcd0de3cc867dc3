"""The programme-wide holdout: a salted few percent of members get no marketing offer at all, the
period cannot be reshuffled before its 150 days, and the ROI report sets the programme against it."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.db import read_session
from prevenance.offers import rules
from prevenance.offers.tables import OfferDecision
from tests.conftest import Api
from tests.integration.offers.conftest import add_member, member_headers, offer_def, pay, refs_in_arm


def test_holdout_members_get_no_offer_and_a_period_runs_its_minimum(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    assert api.get("/v1/programme-holdout", role="marketing").json() == {"periods": [], "report": None}
    started = api.post("/v1/programme-holdout", {"share": "0.2"}, role="marketing")
    assert started.status_code == 201, started.text
    period = started.json()
    assert period["share"] == "0.2" and period["min_days"] == 150 and "salt" not in period
    again = api.post("/v1/programme-holdout", {"share": "0.05"}, role="marketing")
    assert again.status_code == 409 and again.json()["type"].endswith("/holdout-still-running")
    assert api.post("/v1/programme-holdout", {"share": "0.5"}, role="marketing").status_code == 422

    api.put("/v1/offers/books", offer_def(), role="marketing")
    from prevenance.offers import service

    with read_session(engine) as session:
        holdout = service.programme_holdout_in_force(session)
    assert holdout is not None and holdout.share == Decimal("0.2")
    treated = refs_in_arm("books", "treatment", 40)
    held = [r for r in treated if rules.in_programme_holdout(r, holdout.salt, holdout.share)]
    exposed = [r for r in treated if r not in held]
    assert held and exposed
    for i, ref in enumerate([held[0], exposed[0]]):
        add_member(api, ref)
        body = pay(api, f"t{i}", ref)
        assert ("offer" in body) == (ref == exposed[0])
    with read_session(engine) as session:
        # Held out of the whole programme: not even a control record of the campaign.
        assert session.scalar(select(func.count()).select_from(OfferDecision)) == 1

    clock.advance(timedelta(days=151))
    renewed = api.post("/v1/programme-holdout", {"share": "0.05"}, role="marketing")
    assert renewed.status_code == 201, renewed.text
    periods = api.get("/v1/programme-holdout", role="supervisor").json()["periods"]
    assert [p["share"] for p in periods] == ["0.05", "0.2"] and periods[1]["ended_at"] is not None


def test_an_offer_made_before_the_period_is_neither_shown_nor_activated_by_a_held_out_member(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """Held out of every marketing offer from the period's start: an offer made to the member before
    it (and not yet activated) is no longer listed and its activation is refused (409), so the
    member neither sees it nor is paid for it during the period. An offer activated before the
    period still pays (``docs/offers-methods.md#programme-holdout``); members outside the holdout
    keep theirs."""
    api.put("/v1/offers/books", offer_def(holdout_share="0"), role="marketing")
    api.put("/v1/offers/wine", offer_def(partner_merchant="Cave", holdout_share="0"), role="marketing")
    refs = [f"H{i}" for i in range(40)]
    for i, ref in enumerate(refs):
        add_member(api, ref)
        assert pay(api, f"t{i}", ref)["offer"]["offer_id"] == "books"
        assert pay(api, f"w{i}", ref, merchant="Cave")["offer"]["offer_id"] == "wine"
    from prevenance.offers import service

    for ref in refs:  # every member activates the wine offer before the period
        assert api.post(f"/v1/members/{ref}/offers/wine/activate", role="agent").status_code == 200
    clock.advance(timedelta(minutes=1))
    assert api.post("/v1/programme-holdout", {"share": "0.2"}, role="marketing").status_code == 201
    with read_session(engine) as session:
        holdout = service.programme_holdout_in_force(session)
    assert holdout is not None
    held = [r for r in refs if rules.in_programme_holdout(r, holdout.salt, holdout.share)]
    exposed = [r for r in refs if r not in held]
    assert held and exposed
    ref, other = held[0], exposed[0]
    headers = member_headers(engine, clock, ref)

    listed = api.client.get(f"/v1/members/{ref}/offers", headers=headers).json()["items"]
    assert [o["offer_id"] for o in listed] == ["wine"]  # activated before the period: still its own
    refused = api.client.post(f"/v1/members/{ref}/offers/books/activate", headers=headers)
    assert refused.status_code == 409, refused.text
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("/offer-not-available") and refused.json()["field"] == "offer_id"
    assert api.post(f"/v1/members/{ref}/offers/books/activate", role="agent").status_code == 409
    paid = pay(api, "t-held", ref)
    assert "offer_rewards" not in paid and "offer" not in paid
    wine = pay(api, "w-held", ref, merchant="Cave")
    assert [r["offer_id"] for r in wine["offer_rewards"]] == ["wine"]  # activated before: still pays

    assert {o["offer_id"] for o in api.get(f"/v1/members/{other}/offers", role="agent").json()["items"]} == {
        "books",
        "wine",
    }
    assert api.post(f"/v1/members/{other}/offers/books/activate", role="agent").status_code == 200
    assert [r["offer_id"] for r in pay(api, "t-exposed", other)["offer_rewards"]] == ["books"]


def test_a_read_between_the_start_and_its_commit_does_not_hide_the_period(
    engine: Engine, clock: FrozenClock
) -> None:
    """The writer clears this process's cache at once, but its transaction commits later: a payment
    decided in between read no open period and kept that answer for the cache's whole lifetime, so a
    held-out member could be made an offer in the first seconds of the period. The cache is cleared
    again when the start commits."""
    from prevenance.db import unit_of_work
    from prevenance.offers import service

    with unit_of_work(engine) as writer:
        service.start_programme_holdout(writer, share="0.2", now=clock.now(), by="test")
        with read_session(engine) as reader:
            assert service.programme_holdout_in_force(reader) is None  # not committed yet
    with read_session(engine) as reader:
        period = service.programme_holdout_in_force(reader)
    assert period is not None and period.share == Decimal("0.2")
