"""The voice API over imported answers: scores with intervals, scorecards published as frozen
versions, barometers and the country comparison, suggestions and topics; and the CSV import's
all-or-nothing, idempotent contract."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import DBAPIError

from prevenance.common.clock import FrozenClock
from prevenance.db import read_session, run_in_transaction, unit_of_work
from prevenance.voice import service
from prevenance.voice.errors import InvalidImport
from prevenance.voice.tables import Answer, ScorecardRow, ScorecardVersion
from tests.conftest import Api
from tests.integration.voice.conftest import add_member, log_contact

PROBLEM = "application/problem+json"


def answer_row(
    answer_id: str, member_ref: str, recommend: int | None, interaction: int | None, **extra: Any
) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": answer_id,
        "member_ref": member_ref,
        "answered_at": "2026-01-15T10:00:00Z",
        "agent": "alice",
        "team": "paris-1",
        "channel": "phone",
        "reason": "rewards.balance",
        "recommend": "" if recommend is None else str(recommend),
        "interaction": "" if interaction is None else str(interaction),
        "comment": "",
        "suggestion": "",
    }
    row.update({k: str(v) for k, v in extra.items()})
    return row


def alice_rows() -> list[dict[str, Any]]:
    """Ten answers for alice: 6 promoters, 2 passives, 2 detractors (RTF 40); 4 excellent of 10."""
    scores = [10, 10, 9, 9, 10, 9, 7, 8, 3, 0]
    return [answer_row(f"A{i}", "M1", s, 5 if i < 4 else 3) for i, s in enumerate(scores)]


def load(engine: Engine, clock: FrozenClock, rows: list[dict[str, Any]]) -> dict[str, int]:
    return run_in_transaction(engine, lambda s: service.import_answers(s, rows=rows, now=clock.now()))


def count_answers(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Answer)) or 0)


def test_import_is_all_or_nothing_and_idempotent(api: Api, engine: Engine, clock: FrozenClock) -> None:
    add_member(api, "M1")
    rows = alice_rows()
    faulty = [
        *rows,
        answer_row("B1", "NOPE", 9, 5),
        answer_row("B2", "M1", 11, 5),
        answer_row("B3", "M1", None, None),
    ]
    with pytest.raises(InvalidImport) as raised:
        load(engine, clock, faulty)
    assert [(e["line"], e["field"]) for e in raised.value.extra["errors"]] == [
        (12, "member_ref"),
        (13, "recommend"),
        (14, "recommend"),
    ]
    assert count_answers(engine) == 0
    assert load(engine, clock, rows) == {"imported": 10, "unchanged": 0, "lines": 10}
    assert load(engine, clock, rows) == {"imported": 0, "unchanged": 10, "lines": 10}
    changed = [answer_row("A0", "M1", 2, 1)]
    with pytest.raises(InvalidImport, match="other values"):
        load(engine, clock, changed)
    assert count_answers(engine) == 10


def test_scores_by_agent_and_country_with_intervals(api: Api, engine: Engine, clock: FrozenClock) -> None:
    add_member(api, "M1")
    add_member(api, "M2", language="en", country="GB")
    load(engine, clock, [*alice_rows(), answer_row("G1", "M2", 10, 5, agent="bob", team="london-1")])

    by_agent = api.get("/v1/voice/scores", params={"by": "agent", "month": "2026-01"}, role="supervisor")
    assert by_agent.status_code == 200, by_agent.text
    body = by_agent.json()
    assert (body["month"], body["by"], body["n"]) == ("2026-01", "agent", 11)
    assert body["method"].startswith("docs/methods.md#")
    alice = next(item for item in body["items"] if item["key"] == "alice")
    assert alice["n"] == 10 and alice["team"] == "paris-1"
    assert alice["rtf"]["value"] == pytest.approx(40.0)
    assert alice["rtf"]["ci_low"] < 40.0 < alice["rtf"]["ci_high"]
    assert alice["excellence"]["value"] == pytest.approx(40.0)
    assert "rtf_shrunk" in alice and 0.0 <= alice["p_above_target"] <= 1.0

    by_country = api.get("/v1/voice/scores", params={"by": "country", "month": "2026-01"}, role="marketing")
    assert {item["key"]: item["n"] for item in by_country.json()["items"]} == {"FR": 10, "GB": 1}
    empty = api.get("/v1/voice/scores", params={"by": "team", "month": "2026-02"}, role="admin").json()
    assert (empty["n"], empty["items"]) == (0, [])

    for params in ({"by": "mood", "month": "2026-01"}, {"by": "agent", "month": "2026-13"}, {"by": "agent"}):
        bad = api.get("/v1/voice/scores", params=params, role="supervisor")
        assert bad.status_code == 422 and bad.headers["content-type"].startswith(PROBLEM), params
    assert api.get("/v1/voice/scores", params={"month": "2026-01"}, role="agent").status_code == 403


def test_published_scorecards_are_frozen_versions_with_who_and_why(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    add_member(api, "M1")
    log_contact(api, "C1", "M1", at=datetime(2026, 1, 3, tzinfo=UTC))  # alice, resolved at first contact
    load(engine, clock, alice_rows())
    clock.advance(timedelta(days=60))  # the FCR window of January's cases has closed

    assert api.get("/v1/voice/scorecards", params={"month": "2026-01"}, role="supervisor").status_code == 404
    publish = {"by": "Claire (supervisor)", "reason": "monthly close"}
    first = api.post("/v1/voice/scorecards/2026-01/publish", publish, role="supervisor")
    assert first.status_code == 201, first.text
    assert (first.json()["version"], first.json()["agents"]) == (1, 1)
    again = api.post(
        "/v1/voice/scorecards/2026-01/publish", {**publish, "reason": "again"}, role="supervisor"
    )
    assert (again.status_code, again.json()["version"]) == (200, 1)  # same content: same version
    assert api.post("/v1/voice/scorecards/2026-01/publish", publish, role="marketing").status_code == 403
    assert api.post("/v1/voice/scorecards/2026-02/publish", publish, role="supervisor").status_code == 409

    v1 = api.get("/v1/voice/scorecards", params={"month": "2026-01"}, role="marketing").json()
    row = v1["rows"][0]
    assert (row["agent"], row["n"], row["fcr_n"], row["fcr_rate"]) == ("alice", 10, 1, 1.0)
    assert row["rtf"] == pytest.approx(40.0) and row["payout_band"] == "insufficient-data"
    assert row["target_met"] is False  # 10 answers are below the grid's minimum: nobody is paid on noise
    assert row["evidence"] == "insufficient-data"  # and the scorecard says so in its own column
    assert row["excellence_shrunk_ci_low"] <= row["excellence_shrunk"] <= row["excellence_shrunk_ci_high"]

    # A late answer arrives: the published version does not move; a correction is a new version.
    load(engine, clock, [answer_row("LATE", "M1", 0, 1)])
    correction = {"by": "Claire (supervisor)", "reason": "late phone answers"}
    second = api.post(
        "/v1/voice/scorecards/2026-01/publish",
        correction,
        role="supervisor",
        headers={"Idempotency-Key": "k1"},
    )
    assert (second.status_code, second.json()["version"]) == (201, 2)
    replay = api.post(
        "/v1/voice/scorecards/2026-01/publish",
        correction,
        role="supervisor",
        headers={"Idempotency-Key": "k1"},
    )
    assert replay.json() == second.json() and replay.headers["Idempotent-Replayed"] == "true"
    latest = api.get("/v1/voice/scorecards", params={"month": "2026-01"}, role="supervisor").json()
    assert latest["version"] == 2 and latest["rows"][0]["n"] == 11
    assert [(v["version"], v["reason"]) for v in latest["versions"]] == [
        (1, "monthly close"),
        (2, "late phone answers"),
    ]
    old = api.get("/v1/voice/scorecards", params={"month": "2026-01", "version": 1}, role="supervisor").json()
    assert old["rows"] == v1["rows"]
    assert api.get("/v1/voice/scorecards", params={"month": "2026-01", "version": 3}).status_code == 404
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(ScorecardRow)) == 2
    # The database itself refuses to change a published version.
    for statement in (
        update(ScorecardRow).values(n=99),
        delete(ScorecardRow),
        update(ScorecardVersion).values(reason="x"),
    ):
        with pytest.raises(DBAPIError), unit_of_work(engine) as session:
            session.execute(statement)


@pytest.mark.parametrize("version", ["2147483648", "9223372036854775808", "1" + "0" * 30])
def test_a_scorecard_version_past_its_column_is_a_422_not_a_500(api: Api, version: str) -> None:
    """``version`` is a 32-bit integer column: a larger number made PostgreSQL refuse the query
    (integer out of range) and SQLite's driver overflow past 2**63, both a 500. The query parameter
    says its bounds, so the answer is a 422 naming it, on either database."""
    found = api.get(
        "/v1/voice/scorecards", params={"month": "2026-01", "version": version}, role="supervisor"
    )
    assert found.status_code == 422, found.text
    assert found.headers["content-type"].startswith(PROBLEM)
    largest = api.get(
        "/v1/voice/scorecards", params={"month": "2026-01", "version": "2147483647"}, role="supervisor"
    )
    assert largest.status_code == 404 and largest.headers["content-type"].startswith(PROBLEM)


def test_barometers_beside_raw_and_calibrated_country_scores(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    add_member(api, "M1")
    add_member(api, "M2", language="en", country="GB")
    rows = [answer_row(f"F{i}", "M1", s, 4) for i, s in enumerate([7, 8, 9, 6, 10, 7])]
    rows += [answer_row(f"G{i}", "M2", s, 5, agent="bob") for i, s in enumerate([9, 10, 9, 8, 10])]
    load(engine, clock, rows)
    barometers = [
        {
            "source": "Kantar",
            "country": "FR",
            "quarter": "2026Q1",
            "metric": "rtf",
            "value": "21.5",
            "n": "1000",
        },
        {"source": "Kantar", "country": "GB", "quarter": "2026Q1", "metric": "rtf", "value": "34", "n": ""},
    ]
    stored = run_in_transaction(
        engine, lambda s: service.import_barometers(s, rows=barometers, now=clock.now())
    )
    assert stored == {"inserted": 2, "updated": 0, "unchanged": 0}
    again = run_in_transaction(
        engine, lambda s: service.import_barometers(s, rows=barometers, now=clock.now())
    )
    assert again == {"inserted": 0, "updated": 0, "unchanged": 2}
    with pytest.raises(InvalidImport):
        bad = [{**barometers[0], "quarter": "2026-Q1"}]
        run_in_transaction(engine, lambda s: service.import_barometers(s, rows=bad, now=clock.now()))

    listed = api.get("/v1/voice/barometers", params={"quarter": "2026Q1"}, role="marketing").json()
    assert [(b["country"], b["value"], b["n"]) for b in listed] == [("FR", 21.5, 1000), ("GB", 34.0, None)]
    compared = api.get("/v1/voice/countries", params={"quarter": "2026Q1"}, role="marketing")
    assert compared.status_code == 200, compared.text
    body = compared.json()
    countries = {c["country"]: c for c in body["countries"]}
    assert set(countries) == {"FR", "GB"} and body["reference"] == "FR"
    assert countries["GB"]["n"] == 5 and countries["GB"]["raw"]["value"] == pytest.approx(80.0)
    # Five answers: too few for any calibrated figure (no interval that would claim certainty).
    gb = countries["GB"]
    assert gb["too_few"] is True and gb["method_code"] == "too_few"
    assert gb["calibrated"]["value"] is None and gb["calibrated"]["ci_low"] is None
    assert [b["source"] for b in countries["GB"]["barometers"]] == ["Kantar"]
    assert api.get("/v1/voice/countries", params={"quarter": "2026Q5"}, role="marketing").status_code == 422


BAROMETER = {
    "source": "Kantar",
    "country": "FR",
    "quarter": "2026Q1",
    "metric": "rtf",
    "value": "21.5",
    "n": "",
}


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("source", "K" * 121),  # voice_barometers.source is 120 wide
        ("metric", "m" * 41),  # metric is 40 wide
        ("source", "Kan\x00tar"),  # PostgreSQL cannot store a NUL
        ("metric", "r\x00tf"),
        ("n", "2147483648"),  # n is a 32-bit integer
        ("quarter", "0001Q1"),  # outside the accepted window (2000-2099)
        ("quarter", "9999Q4"),
    ],
)
def test_a_barometer_line_the_table_cannot_hold_is_a_faulty_line(
    engine: Engine, clock: FrozenClock, field: str, value: str
) -> None:
    """``voice barometers import`` reads an outside file: a value wider than its column, a NUL, an n
    past the integer column or a quarter outside the window made PostgreSQL refuse the statement (a
    traceback, the CLI's exit 1) or was stored where no query may ask for it. Each is a faulty line
    naming its field, like any other (InvalidImport, exit 2), on either database; nothing is written."""
    bad = [BAROMETER, {**BAROMETER, "country": "GB", field: value}]
    with pytest.raises(InvalidImport) as refused:
        run_in_transaction(engine, lambda s: service.import_barometers(s, rows=bad, now=clock.now()))
    assert [(e["line"], e["field"]) for e in refused.value.extra["errors"]] == [(3, field)]
    with read_session(engine) as session:
        assert service.list_barometers(session) == []


def test_suggestions_are_tagged_counted_and_followed_up(api: Api, engine: Engine, clock: FrozenClock) -> None:
    add_member(api, "M1")
    add_member(api, "M2", language="en", country="GB")
    load(
        engine,
        clock,
        [
            answer_row(
                "S1", "M1", 6, 3, comment="Trop d'attente au téléphone", suggestion="Un rappel automatique"
            ),
            answer_row("S2", "M2", 9, 5, language="en", suggestion="A better mobile app please"),
            answer_row("S3", "M1", 9, 5, comment="Très aimable"),
        ],
    )
    listed = api.get("/v1/voice/suggestions", params={"status": "new"}, role="marketing").json()
    assert sorted(s["text"] for s in listed) == ["A better mobile app please", "Un rappel automatique"]
    app_topic = next(s for s in listed if s["language"] == "en")["topics"]
    assert "app_website" in app_topic
    only_app = api.get("/v1/voice/suggestions", params={"topic": "app_website"}, role="supervisor").json()
    assert [s["text"] for s in only_app] == ["A better mobile app please"]

    target = only_app[0]["id"]
    patched = api.client.patch(
        f"/v1/voice/suggestions/{target}",
        json={"status": "adopted", "link": "https://prevenance.example/releases/app-4.2"},
        headers=api.headers("marketing"),
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["status"], patched.json()["updated_by"]) == ("adopted", "test-marketing")
    assert [s["id"] for s in api.get("/v1/voice/suggestions", params={"status": "adopted"}).json()] == [
        target
    ]
    bad = api.client.patch(
        f"/v1/voice/suggestions/{target}", json={"status": "done"}, headers=api.headers("admin")
    )
    assert bad.status_code == 422
    missing = api.client.patch(
        "/v1/voice/suggestions/nope", json={"status": "adopted"}, headers=api.headers("admin")
    )
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(PROBLEM)

    topics = api.get("/v1/voice/topics", params={"month": "2026-01"}, role="supervisor").json()
    counts = {item["topic"]: item["answers"] for item in topics["items"]}
    assert counts.get("waiting_time") == 1 and counts.get("app_website") == 1
    assert all(item["month"] == "2026-01" for item in topics["items"])
