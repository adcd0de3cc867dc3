"""With no active offer the hook costs no query; with one, the decision reads what it needs."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.db import run_in_transaction
from prevenance.loyalty import service
from prevenance.offers import service as offers
from prevenance.wiring import install_offer_hook
from tests.conftest import Api, statements_sent
from tests.integration.offers.conftest import add_member, offer_def


def _earn(engine: Engine, clock: FrozenClock, tx_id: str) -> dict[str, Any]:
    tx = service.TransactionInput(
        id=tx_id,
        member_ref="M1",
        amount="10.00",
        currency="EUR",
        merchant="Librairie",
        category="books",
        occurred_at=clock.now(),
    )
    return run_in_transaction(engine, lambda s: service.record_transaction(s, tx=tx, now=clock.now())).body


def test_no_active_offer_no_extra_query(api: Api, engine: Engine, clock: FrozenClock) -> None:
    add_member(api, "M1")
    service.unregister_transaction_hook(offers.HOOK_NAME)
    try:
        _earn(engine, clock, "warm")
        with statements_sent(engine) as without:
            _earn(engine, clock, "a")
        install_offer_hook()
        _earn(engine, clock, "fill-the-cache")
        with statements_sent(engine) as with_hook:
            body = _earn(engine, clock, "b")
    finally:
        install_offer_hook()
    assert "offer" not in body
    assert len(with_hook) == len(without)
    assert not any("offer" in s for s in with_hook)


def test_an_active_offer_is_seen_at_once_by_this_process(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    add_member(api, "M1")
    install_offer_hook()
    _earn(engine, clock, "before")  # caches "no offer"
    api.put("/v1/offers/books", offer_def(holdout_share="0"), role="marketing")  # invalidates
    with statements_sent(engine) as seen:
        body = _earn(engine, clock, "after")
    assert body["offer"]["offer_id"] == "books"
    assert any("offer_decisions" in s for s in seen)
