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
from tests.integration.offers.conftest import add_member, offer_def, pay, refs_in_arm


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
