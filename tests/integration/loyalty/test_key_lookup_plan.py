"""PostgreSQL: the earn engine finds a batch's stored answers by probing the idempotency keys'
primary key, whatever the planner's statistics say (``earning.PROGRAMME_AND_KEYS``).

With ``scope = 'transaction' AND key = ANY(…)``, statistics that call the scope rare — a table not
yet analysed after an install or a bulk load, or analysed while other scopes filled it — made the
planner read every key of the scope and filter them: 3 ms a batch at 6,000 keys, growing with the
table (the earn benchmark on a fresh database: 1,200 earns/s, p99 57 ms; 1,590, p99 38 after).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, delete, insert
from sqlalchemy.orm import Session

from prevenance.loyalty import earn_rows, earning


def _scans_of(plan: dict[str, Any], table: str) -> list[dict[str, Any]]:
    found = [plan] if plan.get("Relation Name") == table else []
    for child in plan.get("Plans", []):
        found += _scans_of(child, table)
    return found


def _plan(engine: Engine, statement: Any, keys: list[str]) -> dict[str, Any]:
    compiled = statement.compile(dialect=engine.dialect)
    with engine.connect() as connection:
        connection.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        rows = connection.exec_driver_sql(
            "EXPLAIN (FORMAT JSON) " + compiled.string, {**compiled.params, "p_values": keys}
        ).all()
    document = rows[0][0]
    return dict(document[0]["Plan"])


@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_stored_answers_are_probed_by_key_even_when_statistics_call_the_scope_rare(engine: Engine) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    table = earn_rows.KEYS

    def keys(scope: str, count: int) -> list[dict[str, Any]]:
        return [
            {"scope": scope, "key": f"{scope}-{i}", "fingerprint": "f", "status_code": 201,
             "response": {}, "created_at": now}
            for i in range(count)
        ]  # fmt: skip

    with engine.begin() as connection:
        # Analysed while only another scope was there: the statistics say "transaction" is rare.
        connection.execute(insert(table), keys("other", 3000))
        connection.exec_driver_sql("ANALYZE idempotency_keys")
        connection.execute(delete(table).where(table.c.scope == "other"))
        connection.execute(insert(table), keys(earn_rows.SCOPE, 3000))

    plan = _plan(engine, earning.PROGRAMME_AND_KEYS.postgres, [f"{earn_rows.SCOPE}-{i}" for i in range(9)])
    scans = _scans_of(plan, "idempotency_keys")
    assert scans, plan
    for scan in scans:
        assert scan["Node Type"] in ("Index Scan", "Index Only Scan"), scan
        assert "scope" in scan["Index Cond"] and "key" in scan["Index Cond"], scan
        assert "Filter" not in scan, scan

    # And it answers what is stored, nothing for a key that is not.
    with engine.begin() as connection, Session(bind=connection) as session:
        rows = list(earning.PROGRAMME_AND_KEYS.rows(session, ["transaction-5", "absent"]))
    assert sorted(r[1] for r in rows) == ["transaction-5"]
