"""Training the propensity model on the history: stored, versioned, used by the decision."""

from __future__ import annotations

import math
import random
from datetime import timedelta

from sqlalchemy import Engine, select

from prevenance.common.clock import FrozenClock
from prevenance.customers import service as customers
from prevenance.db import read_session, unit_of_work
from prevenance.loyalty import service as loyalty
from prevenance.offers import service
from prevenance.offers.tables import OfferDecision, OfferModel
from tests.conftest import Api
from tests.integration.offers.conftest import add_member, offer_def, pay


def _history(engine: Engine, clock: FrozenClock, members: int = 60) -> None:
    """Half the members read (they pay at the bookshop every week or so), half never do."""
    rng = random.Random(3)
    start = clock.now() - timedelta(days=240)
    with unit_of_work(engine) as session:
        for m in range(members):
            ref = f"H{m}"
            customers.upsert(
                session,
                ref=ref,
                data=customers.MemberData("A B", "a@b.fr", "fr", "FR", "gold"),
                now=clock.now(),
            )
            reader = m % 2 == 0
            day = rng.uniform(0, 5)
            n = 0
            while day < 235:
                merchant, category = (
                    ("Librairie", "books") if reader and rng.random() < 0.8 else ("Autre", "food")
                )
                tx = loyalty.TransactionInput(
                    id=f"h{m}-{n}",
                    member_ref=ref,
                    amount=f"{rng.uniform(10, 80):.2f}",
                    currency="EUR",
                    merchant=merchant,
                    category=category,
                    occurred_at=start + timedelta(days=day),
                )
                loyalty.record_transaction(session, tx=tx, now=clock.now())
                day += rng.uniform(3, 10)
                n += 1


def test_training_stores_a_new_version_with_its_held_out_auc_and_the_decision_uses_it(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    _history(engine, clock)
    with unit_of_work(engine) as session:
        first = service.train_model(session, now=clock.now())
    metrics = first["metrics"]
    assert first["version"] == 1 and first["features"][0] == "log_recency_days"
    assert metrics["n"] > 100 and 0 < metrics["positives"] < metrics["n"]
    auc = metrics["auc_holdout"]
    assert auc["n"] == metrics["n_holdout"] and auc["ci_low"] <= auc["value"] <= auc["ci_high"]
    assert auc["ci_low"] > 0.7  # the planted habit is easy to see
    with unit_of_work(engine) as session:
        second = service.train_model(session, now=clock.now(), l2=5.0)
    assert second["version"] == 2
    listed = api.get("/v1/offers/models", role="marketing").json()
    assert [m["version"] for m in listed] == [2, 1]
    with read_session(engine) as session:
        assert len(session.scalars(select(OfferModel)).all()) == 2
    api.put("/v1/offers/books", offer_def(holdout_share="0"), role="marketing")
    pay(api, "reader", "H0")
    pay(api, "other", "H1")
    with read_session(engine) as session:
        decisions = {d.member_id: d for d in session.scalars(select(OfferDecision))}
        assert {d.model_version for d in decisions.values()} == {2}
        reader = customers.find_member(session, ref="H0")
        other = customers.find_member(session, ref="H1")
        assert reader is not None and other is not None
        assert decisions[reader.id].propensity > decisions[other.id].propensity


def test_training_without_history_is_refused(api: Api, engine: Engine, clock: FrozenClock) -> None:
    add_member(api, "M1")
    with unit_of_work(engine) as session:
        try:
            service.train_model(session, now=clock.now())
        except Exception as error:
            assert type(error).__name__ == "NoTrainingData"
        else:
            raise AssertionError("training on nothing must be refused")


def test_the_training_set_counts_each_members_benefit_usages_in_the_window(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """Training and decision see the same feature: usages in the 90 days before each reference date."""
    from prevenance.offers import propensity as model
    from prevenance.offers.features import FEATURES

    _history(engine, clock, members=4)
    with read_session(engine) as session:
        ids = {ref: customers.get_member(session, ref=ref).id for ref in ("H0", "H1")}
    seen: list[tuple[object, object]] = []

    def events(session: object, since: object, until: object) -> list[tuple[int, object]]:
        seen.append((since, until))
        # H0 used benefits three times shortly before now; H1 never.
        return [(ids["H0"], moment) for moment in used_at]

    used_at = [clock.now() - timedelta(days=d) for d in (45, 60, 70, 200)]

    with read_session(engine) as session:
        plain = model.build_training_set(session, targets=[], now=clock.now())
        counted = model.build_training_set(session, targets=[], now=clock.now(), benefit_events=events)
    column = FEATURES.index("log_benefits_used_90d")
    assert seen, "the provider was asked for the training period"
    assert set(plain.x[:, column]) == {0.0}
    rows_h0 = counted.x[counted.member == ids["H0"], column]
    rows_h1 = counted.x[counted.member == ids["H1"], column]
    # Rows come per reference date and target: H0's values are the counts at those dates.
    expected = {
        round(math.log1p(sum(ref - timedelta(days=90) <= at < ref for at in used_at)), 9)
        for ref in counted.reference_dates
    }
    assert {round(float(v), 9) for v in rows_h0} == expected and max(expected) > 0
    assert set(rows_h1) == {0.0}
