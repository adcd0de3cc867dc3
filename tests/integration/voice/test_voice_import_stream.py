"""The CSV import streamed in chunks keeps its contract across chunk boundaries: all lines or none,
a repeated id found whatever chunk holds its first line, a re-run adds nothing, every answer recorded
as the survey page records one (topics, suggestion, ``survey.answered``); the rows are read once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.customers.tables import Member
from prevenance.db import make_engine, read_session, run_in_transaction
from prevenance.voice import importing
from prevenance.voice.errors import InvalidImport
from prevenance.voice.tables import Answer, AnswerTopic, Suggestion
from tests.conftest import Api
from tests.integration.voice.conftest import add_member


def row(i: int, **extra: Any) -> dict[str, str]:
    base = {
        "id": f"S{i:04d}",
        "member_ref": "M1" if i % 2 else "M2",
        "answered_at": "2026-01-15T10:00:00Z",
        "agent": f"agent-{i % 3}",
        "team": "paris-1",
        "channel": "phone",
        "reason": "rewards.balance",
        "recommend": str(i % 11),
        "interaction": str(1 + i % 5),
        "comment": "",
        "suggestion": "",
    }
    base.update({k: str(v) for k, v in extra.items()})
    return base


def once(rows: list[dict[str, str]]) -> Iterator[dict[str, str]]:
    """The rows as a stream that refuses a second reading (a file is read once)."""
    yield from rows


def run(engine: Engine, clock: FrozenClock, rows: list[dict[str, str]], chunk: int = 7) -> dict[str, int]:
    return run_in_transaction(
        engine, lambda s: importing.import_answers(s, rows=once(rows), now=clock.now(), chunk=chunk)
    )


def counts(engine: Engine) -> tuple[int, int, int, int]:
    with read_session(engine) as session:
        return (
            int(session.scalar(select(func.count()).select_from(Answer)) or 0),
            int(session.scalar(select(func.count()).select_from(AnswerTopic)) or 0),
            int(session.scalar(select(func.count()).select_from(Suggestion)) or 0),
            int(
                session.scalar(
                    select(func.count()).select_from(OutboxEvent).where(OutboxEvent.type == "survey.answered")
                )
                or 0
            ),
        )


@pytest.fixture
def members(api: Api) -> None:
    add_member(api, "M1")
    add_member(api, "M2", language="en")


@pytest.mark.usefixtures("members")
def test_a_file_over_many_chunks_is_recorded_like_survey_answers(engine: Engine, clock: FrozenClock) -> None:
    rows = [row(i) for i in range(40)]
    rows[3] |= {"comment": "Attente trop longue au téléphone", "suggestion": "Un rappel automatique"}
    result = run(engine, clock, rows)
    assert result == {"imported": 40, "unchanged": 0, "lines": 40}
    answers, topics, suggestions, events = counts(engine)
    assert (answers, suggestions, events) == (40, 1, 40)
    assert topics >= 1
    with read_session(engine) as session:
        event = session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "survey.answered").order_by(OutboxEvent.id)
        ).first()
        stored = session.get(Answer, "csv:S0000")
    assert event is not None and stored is not None
    assert event.payload["id"] == "csv:S0000" and event.payload["source"] == "import"
    assert event.payload["answered_at"] == "2026-01-15T10:00:00Z"
    assert stored.language == "en"  # M2's language, the line said none
    again = run(engine, clock, rows, chunk=11)
    assert again == {"imported": 0, "unchanged": 40, "lines": 40}
    assert counts(engine)[0] == 40 and counts(engine)[3] == 40


@pytest.mark.usefixtures("members")
def test_a_fault_in_a_late_chunk_leaves_nothing_of_the_early_chunks(
    engine: Engine, clock: FrozenClock
) -> None:
    rows = [row(i) for i in range(30)]
    rows[25]["recommend"] = "11"
    rows[27]["member_ref"] = "NOBODY"
    with pytest.raises(InvalidImport) as caught:
        run(engine, clock, rows)
    errors = caught.value.extra["errors"]
    assert [(e["line"], e["field"]) for e in errors] == [(27, "recommend"), (29, "member_ref")]
    assert "2 faulty line(s), first on line 27" in caught.value.detail
    assert counts(engine) == (0, 0, 0, 0)


@pytest.mark.usefixtures("members")
def test_an_id_repeated_in_another_chunk_is_found_with_its_first_line(
    engine: Engine, clock: FrozenClock
) -> None:
    rows = [row(i) for i in range(20)]
    rows.append(row(2, recommend=9))  # line 22 repeats line 4, three chunks later
    rows.append(row(20))
    rows.append(row(20))  # line 24 repeats line 23, same chunk
    with pytest.raises(InvalidImport) as caught:
        run(engine, clock, rows, chunk=5)
    reasons = [(e["line"], e["reason"]) for e in caught.value.extra["errors"]]
    assert reasons == [(22, "id repeated (first on line 4)"), (24, "id repeated (first on line 23)")]
    assert counts(engine)[0] == 0


@pytest.mark.usefixtures("members")
def test_an_id_imported_before_with_other_values_is_refused_in_any_chunk(
    engine: Engine, clock: FrozenClock
) -> None:
    run(engine, clock, [row(i) for i in range(10)])
    changed = [row(i) for i in range(10, 20)] + [row(8, recommend=0)]
    with pytest.raises(InvalidImport, match="was imported with other values"):
        run(engine, clock, changed, chunk=3)
    assert counts(engine)[0] == 10


def test_the_errors_listed_are_capped_but_all_are_counted(engine: Engine, clock: FrozenClock) -> None:
    rows = [row(i, channel="pigeon") for i in range(importing.MAX_ERRORS + 5)]
    with pytest.raises(InvalidImport) as caught:
        run(engine, clock, rows, chunk=100)
    assert len(caught.value.extra["errors"]) == importing.MAX_ERRORS
    assert caught.value.detail.startswith(f"{importing.MAX_ERRORS + 5} faulty line(s), first on line 2")


def test_seen_ids_find_each_first_line_and_nothing_else() -> None:
    seen = importing.SeenIds()
    first = [f"csv:{i}" for i in range(1000)]
    digests = [importing.SeenIds.digest(i) for i in first]
    seen.add(np.array(digests, dtype=np.uint64), np.arange(2, 1002))
    probe = [importing.SeenIds.digest(i) for i in ("csv:0", "csv:999", "csv:1000", "csv:x")]
    assert seen.first_line(np.array(probe, dtype=np.uint64)).tolist() == [2, 1001, 0, 0]
    assert seen.digests.nbytes + seen.lines.nbytes == 16 * 1000


@pytest.mark.usefixtures("members")
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("comment", "bien\x00reçu"),
        ("agent", "ali\x00ce"),
        ("id", "S\x00"),
        ("comment", "x" * 100_000),
        ("id", "I" * 300),
        ("agent", "a" * 121),
        ("reason", "r" * 81),
    ],
)
def test_a_hostile_line_is_a_faulty_line_not_a_crash(
    engine: Engine, clock: FrozenClock, field: str, value: str
) -> None:
    rows = [row(i) for i in range(12)]
    rows[9][field] = value
    with pytest.raises(InvalidImport) as caught:
        run(engine, clock, rows)
    assert [(e["line"], e["field"]) for e in caught.value.extra["errors"]] == [(11, field)]
    assert counts(engine) == (0, 0, 0, 0)


@pytest.mark.usefixtures("members")
def test_texts_the_bulk_writer_must_escape_are_stored_as_written(engine: Engine, clock: FrozenClock) -> None:
    """On PostgreSQL the rows go by ``COPY`` in its text format, where a tab ends a value, a newline a
    row, a backslash starts an escape and ``\\N`` means NULL: each must come back as the line wrote it,
    in the answer, its suggestion and its event."""
    texts = [
        "tab\there",
        "line one\nline two\r\nthree",
        "back\\slash \\N \\. \\t",
        "\\N",
        "guillemets « ça » \u2028 😀",
        "quote \" and ' and ,",
    ]
    rows = [row(i, comment=text, suggestion=text) for i, text in enumerate(texts)]
    assert run(engine, clock, rows)["imported"] == len(texts)
    with read_session(engine) as session:
        for i, text in enumerate(texts):
            stored = session.get(Answer, f"csv:S{i:04d}")
            assert stored is not None and stored.comment == text and stored.suggestion == text
            suggestion = session.scalars(select(Suggestion).where(Suggestion.answer_id == stored.id)).one()
            assert suggestion.text == text
        payloads = [
            event.payload
            for event in session.scalars(select(OutboxEvent).where(OutboxEvent.type == "survey.answered"))
        ]
    assert sorted(p["comment"] for p in payloads) == sorted(texts)
    assert run(engine, clock, rows)["unchanged"] == len(texts)  # the stored fingerprints match


def test_the_import_gives_sqlite_a_bounded_bulk_page_cache(tmp_path: Path, clock: FrozenClock) -> None:
    """The answers' random-key indexes outgrow SQLite's default 2 MiB cache within a few hundred
    thousand answers; the import's connection holds ``BULK_CACHE_MIB`` of them, no more."""
    sqlite = make_engine(f"sqlite:///{tmp_path / 'cache.db'}")

    def import_and_read_cache(session: Any) -> int:
        importing.import_answers(session, rows=once([]), now=clock.now())
        return int(session.connection().exec_driver_sql("PRAGMA cache_size").scalar() or 0)

    try:
        assert run_in_transaction(sqlite, import_and_read_cache) == -importing.BULK_CACHE_MIB * 1024
    finally:
        sqlite.dispose()


@pytest.mark.usefixtures("members")
@pytest.mark.parametrize("backend", ["postgresql"], indirect=True)
def test_on_postgresql_each_chunks_look_up_is_planned_for_the_table_as_it_has_grown(
    engine: Engine, clock: FrozenClock
) -> None:
    """psycopg prepares a statement run five times on a connection, and the server then keeps a
    generic plan once it looks no dearer than the custom ones: a plan made while the answers table was
    nearly empty, scanning it whole as the import grows it (measured: 80% of a 100,000-answer import
    in that look-up). The import's transaction asks for custom plans; the server's own count of the
    prepared look-up's plans says none was generic."""
    rows = [row(i) for i in range(64)]  # prepared statements and generic plans are PostgreSQL's

    def import_and_count_plans(session: Any) -> tuple[int, int]:
        importing.import_answers(session, rows=once(rows), now=clock.now(), chunk=4)
        plans = session.connection().exec_driver_sql(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
            "WHERE strpos(statement, 'voice_answers.fingerprint') > 0"
        )
        return tuple(map(sum, zip(*plans, strict=True))) or (0, 0)

    generic, custom = run_in_transaction(engine, import_and_count_plans)
    assert custom >= 8  # 16 chunks: prepared from the sixth look-up on, each planned anew
    assert generic == 0
    assert counts(engine)[0] == 64


@pytest.mark.usefixtures("members")
def test_members_are_read_once_per_import_and_the_bound_keeps_every_chunk_whole(
    engine: Engine, clock: FrozenClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The members a file names are read once for the import, not once per chunk; past the cache's
    bound it starts again from the chunk's own members, which are all read again."""
    asked: list[list[str]] = []
    real = importing.customers.list_summaries_by_refs

    def counted(session: Any, *, refs: list[str]) -> Any:
        asked.append(refs)
        return real(session, refs=refs)

    monkeypatch.setattr(importing.customers, "list_summaries_by_refs", counted)
    rows = [row(i) for i in range(40)]
    assert run(engine, clock, rows, chunk=5)["imported"] == 40
    assert asked == [["M1", "M2"]]  # eight chunks, one read
    asked.clear()
    monkeypatch.setattr(importing, "MEMBER_CACHE", 1)
    fresh = [row(100 + i) for i in range(20)]
    assert run(engine, clock, fresh, chunk=5)["imported"] == 20  # no line refused as "unknown member"
    assert asked == [["M1", "M2"]] * 4  # the bound (1) is below a chunk's two members: read each time


@pytest.mark.usefixtures("members")
def test_an_erased_members_pseudonym_is_a_faulty_line_and_nothing_is_written(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    """An erased member is never written to again: an answer naming the pseudonym the erasure left
    (which exports and reports show) would lay free text back on them."""
    erased = api.post("/v1/members/M2/erase", None)
    assert erased.status_code == 200, erased.text
    with read_session(engine) as session:
        pseudonym = session.scalars(select(Member.ref).where(Member.ref != "M1")).one()
    rows = [row(i) for i in range(1, 10, 2)] + [row(11, member_ref=pseudonym, comment="Toujours client")]
    with pytest.raises(InvalidImport) as refused:
        run(engine, clock, rows)
    assert [(e["line"], e["field"]) for e in refused.value.extra["errors"]] == [(7, "member_ref")]
    assert "erased" in refused.value.extra["errors"][0]["reason"]
    assert counts(engine) == (0, 0, 0, 0)
