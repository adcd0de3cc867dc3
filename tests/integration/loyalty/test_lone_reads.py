"""A balance and a page of movements are one statement each, which finds the member by its reference
itself; on PostgreSQL it is sent without a transaction around it (``db.read_statements``), so such a read is
one round trip to the server instead of five (BEGIN, member, postings, accounts, COMMIT). Checked by
counting what the read's connection sends, not by timing; on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine

from prevenance.customers.errors import UnknownMember
from prevenance.db import read_statements
from prevenance.loyalty import service
from tests.conftest import Api, member_body, statements_sent, tx_body


def _transaction_open(session: Any) -> bool:
    driver = session.connection().connection.driver_connection
    if hasattr(driver, "info"):  # psycopg: the server's own view of the session
        return driver.info.transaction_status.name != "IDLE"
    return bool(driver.in_transaction)


def test_a_balance_and_a_page_of_movements_are_one_statement_each(api: Api, engine: Engine) -> None:
    api.put("/v1/members/M1", member_body())
    for n in range(3):
        assert (
            api.post("/v1/transactions", tx_body(f"T{n}", "M1", "10.00"), role="integrator").status_code
            == 201
        )
    spend = {"id": "R1", "kind": "travel", "booking_ref": "B1", "amount": "150.00", "points": 5}
    assert api.post("/v1/members/M1/redemptions", spend, role="agent").status_code == 201
    before = api.get("/v1/members/M1/movements?limit=2").json()
    with read_statements(engine) as session, statements_sent(engine) as sent:
        balance = service.get_balance(session, member_ref="M1")
        page = service.list_movements(session, member_ref="M1", limit=2, cursor=None)
        if engine.dialect.name == "postgresql":
            assert not _transaction_open(session)  # autocommit: no BEGIN … COMMIT around the reads
    assert len(sent) == 2, sent
    fields = ("id", "reason", "reference", "unit", "amount", "balance_after")
    assert [[item[f] for f in fields] for item in page["items"]] == [
        [item[f] for f in fields] for item in before["items"]
    ]
    assert page["next_cursor"] == before["next_cursor"]
    amounts = [item["amount"] for item in page["items"]]
    assert amounts[0] == -5 and amounts[1] > 0  # the redemption debits the member, the earn credits
    assert balance == api.get("/v1/members/M1/balance").json()
    assert balance["points"] == page["items"][0]["balance_after"]
    rest = service_page(engine, cursor=page["next_cursor"])
    assert [item["amount"] > 0 for item in rest["items"]] == [True, True]
    assert rest["next_cursor"] is None


def service_page(engine: Engine, *, cursor: str | None) -> dict[str, Any]:
    with read_statements(engine) as session:
        return service.list_movements(session, member_ref="M1", limit=2, cursor=cursor)


def test_a_member_without_postings_reads_as_zero_and_an_unknown_one_is_404(api: Api, engine: Engine) -> None:
    """Only an empty answer asks whether the member exists: a member without accounts or postings
    reads as 0 and no movements, a reference that names nobody is the same 404 as before."""
    api.put("/v1/members/M1", member_body())
    with read_statements(engine) as session:
        assert service.get_balance(session, member_ref="M1") == {"member_ref": "M1", "points": 0, "miles": 0}
        assert service.list_movements(session, member_ref="M1", limit=5, cursor=None)["items"] == []
        for read in (service.get_balance, service.list_latest_movements):
            with pytest.raises(UnknownMember):
                read(
                    session,
                    member_ref="M404",
                    **({"limit": 5} if read is service.list_latest_movements else {}),
                )
    for path in ("/v1/members/M404/balance", "/v1/members/M404/movements"):
        answer = api.get(path)
        assert answer.status_code == 404 and answer.json()["type"].endswith("/unknown-member"), answer.text


def test_a_connection_back_from_a_read_is_transactional_again(engine: Engine) -> None:
    """``read_statements`` lends a pooled PostgreSQL connection in autocommit: the pool must hand it
    back to the next writer in a transaction again, or that writer's statements would each commit
    alone (an earn half written). One connection in the pool, so the writer gets the very same one."""
    if engine.dialect.name != "postgresql":
        return  # SQLite's reads keep their read transaction
    from sqlalchemy import create_engine, text

    from prevenance.db import unit_of_work

    single = create_engine(engine.url, pool_size=1, max_overflow=0)
    try:
        with read_statements(single) as session:
            reader = session.connection().connection.driver_connection
            assert reader is not None and reader.autocommit
        with pytest.raises(RuntimeError), unit_of_work(single) as session:
            writer = session.connection().connection.driver_connection
            assert writer is not None and writer is reader and not writer.autocommit
            session.execute(text("CREATE TABLE read_statements_probe (n int)"))
            raise RuntimeError("roll the transaction back")
        with single.connect() as connection:
            found = connection.execute(text("SELECT to_regclass('read_statements_probe')")).scalar()
        assert found is None  # rolled back: the statement was not committed on its own
    finally:
        single.dispose()
