"""Postings are append-only below the code: on SQLite and PostgreSQL a trigger refuses every UPDATE
and DELETE on ``postings`` (migration ``2026-11-25-0950_postings_append_only.py``), including the
columns the ledger audit could not catch (``reason``, ``reference``, ``created_at``)."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from tests.conftest import Api, member_body, tx_body


def _posting(engine: Engine) -> tuple[int, str, str, str]:
    with engine.connect() as connection:
        row = connection.execute(
            text("SELECT id, reason, reference, idempotency_key FROM postings ORDER BY id LIMIT 1")
        ).one()
    return int(row[0]), str(row[1]), str(row[2]), str(row[3])


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE postings SET reason = 'refund' WHERE id = :id",
        "UPDATE postings SET reference = 'someone-else' WHERE id = :id",
        "UPDATE postings SET created_at = created_at WHERE id = :id",
        "UPDATE postings SET idempotency_key = idempotency_key || '-x' WHERE id = :id",
        "DELETE FROM postings WHERE id = :id",
    ],
    ids=["reason", "reference", "same-value", "key", "delete-one"],
)
def test_an_update_or_delete_of_any_posting_column_is_refused_by_the_database(
    api: Api, engine: Engine, statement: str
) -> None:
    api.put("/v1/members/M1", member_body())
    api.post("/v1/transactions", tx_body("T1", "M1"), role="integrator")
    before = _posting(engine)
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as connection:
        connection.execute(text(statement), {"id": before[0]})
    assert _posting(engine) == before
    assert api.get("/v1/ledger/audit").json()["ok"] is True


def test_the_append_only_triggers_are_installed_and_enabled(engine: Engine) -> None:
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            rows = connection.execute(
                text(
                    "SELECT t.tgname, t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
                    "WHERE c.relname = 'postings' AND NOT t.tgisinternal"
                )
            ).all()
            assert {(name, str(enabled)) for name, enabled in rows} == {("postings_append_only", "O")}
        else:
            names = connection.execute(
                text("SELECT name FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'postings'")
            ).scalars()
            assert set(names) == {"postings_no_update", "postings_no_delete"}
