"""Group commit on SQLite: concurrent use cases commit together, and a failure stays with its own
use case — the others' writes land, its own does not, and nothing is answered before the commit. A
group runs without savepoints until one of its use cases fails; then it runs again, each use case
in its savepoint, and so do the next groups for a while."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text
from sqlalchemy.orm import Session

from prevenance.db import group_commit_of, make_engine, run_in_transaction
from prevenance.group_commit import GroupCommit


@pytest.fixture
def probe_engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'group.db'}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE probe (id TEXT PRIMARY KEY, note TEXT NOT NULL)")
        connection.exec_driver_sql(
            "CREATE TABLE child (id TEXT PRIMARY KEY, probe_id TEXT NOT NULL REFERENCES probe(id))"
        )
    yield engine
    engine.dispose()


def _statements(engine: Engine) -> list[str]:
    seen: list[str] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(statement.split()[0].upper())

    return seen


def _insert(row_id: str) -> Callable[[Session], str]:
    def use_case(session: Session) -> str:
        session.execute(text("INSERT INTO probe (id, note) VALUES (:id, 'ok')"), {"id": row_id})
        return row_id

    return use_case


def _ids(engine: Engine) -> set[str]:
    with engine.connect() as connection:
        return {row[0] for row in connection.exec_driver_sql("SELECT id FROM probe")}


def _run_while_held(
    engine: Engine, use_cases: dict[str, Callable[[Session], str]], holder_id: str = "first"
) -> dict[str, Any]:
    """Hold the writer with a first use case until every other one is queued behind it, then let
    them all go: they make one group."""
    group = group_commit_of(engine)
    assert isinstance(group, GroupCommit)
    started, release, answers = threading.Event(), threading.Event(), {}

    def first(session: Session) -> str:
        started.set()
        release.wait(60)
        return _insert(holder_id)(session)

    def call(name: str, use_case: Callable[[Session], str]) -> None:
        try:
            answers[name] = run_in_transaction(engine, use_case)
        except Exception as error:  # the caller's own error, as it would see it
            answers[name] = error

    holder = threading.Thread(target=call, args=(holder_id, first))
    holder.start()
    assert started.wait(60), "the first use case never started"
    others = [threading.Thread(target=call, args=item) for item in use_cases.items()]
    for thread in others:
        thread.start()
    assert group.wait_queued(len(use_cases), 60), "the other use cases never queued"
    release.set()
    for thread in [holder, *others]:
        thread.join(60)
    return answers


def test_queued_use_cases_commit_together_without_savepoints(probe_engine: Engine) -> None:
    seen = _statements(probe_engine)
    answers = _run_while_held(probe_engine, {f"u{i}": _insert(f"u{i}") for i in range(6)})
    sent = list(seen)
    assert answers == {"first": "first", **{f"u{i}": f"u{i}" for i in range(6)}}
    assert _ids(probe_engine) == {"first", *(f"u{i}" for i in range(6))}
    assert sent.count("BEGIN") == 2  # the holder alone, then the six in one transaction
    assert sent.count("SAVEPOINT") == 0  # nothing failed: no savepoint was needed


def test_a_failing_use_case_is_rolled_back_alone_and_its_caller_gets_its_error(probe_engine: Engine) -> None:
    def refused(session: Session) -> str:
        _insert("refused")(session)
        raise ValueError("refused by its rules")

    group = group_commit_of(probe_engine)
    assert isinstance(group, GroupCommit)
    seen = _statements(probe_engine)
    answers = _run_while_held(probe_engine, {"a": _insert("a"), "bad": refused, "b": _insert("b")})
    sent = list(seen)
    assert isinstance(answers["bad"], ValueError) and str(answers["bad"]) == "refused by its rules"
    assert answers["a"] == "a" and answers["b"] == "b"
    assert _ids(probe_engine) == {"first", "a", "b"}  # nothing of the refused one
    # The group ran once without savepoints (rolled back whole), then each use case in its own.
    assert group.reruns == 1
    assert sent.count("BEGIN") == 3  # the holder; the group, rolled back whole; the group again
    assert sent.count("SAVEPOINT") == 3 and sent.count("ROLLBACK") == 1  # to the refused one's savepoint
    # The next group goes straight to savepoints: it does not run twice for another refusal.
    seen.clear()
    again = _run_while_held(probe_engine, {"c": _insert("c"), "bad": refused, "d": _insert("d")}, "second")
    sent = list(seen)
    assert again["c"] == "c" and again["d"] == "d" and isinstance(again["bad"], ValueError)
    assert group.reruns == 1 and sent.count("BEGIN") == 2 and sent.count("SAVEPOINT") == 3
    assert _ids(probe_engine) == {"first", "a", "b", "second", "c", "d"}


def test_when_the_groups_commit_fails_each_use_case_runs_again_alone(probe_engine: Engine) -> None:
    """A use case whose write only fails at commit (a deferred foreign key) sinks its group's
    commit: the others are run again on their own and land once; it fails alone."""

    def dangling(session: Session) -> str:
        session.execute(text("PRAGMA defer_foreign_keys = ON"))
        session.execute(text("INSERT INTO child (id, probe_id) VALUES ('c1', 'nowhere')"))
        return "dangling"

    answers = _run_while_held(probe_engine, {"a": _insert("a"), "dangling": dangling, "b": _insert("b")})
    assert answers["a"] == "a" and answers["b"] == "b"
    assert isinstance(answers["dangling"], Exception)
    assert _ids(probe_engine) == {"first", "a", "b"}
    with probe_engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM child").scalar() == 0


def test_postgresql_engines_have_no_group(tmp_path: Path) -> None:
    assert group_commit_of(make_engine("postgresql+psycopg://nobody@127.0.0.1:1/none")) is None
    assert group_commit_of(make_engine(f"sqlite:///{tmp_path / 'x.db'}", group_commit=False)) is None


def test_many_callers_each_get_their_own_answer_and_the_lead_passes_on(probe_engine: Engine) -> None:
    """16 threads each run 25 use cases (one in five refused by its rules): every caller is answered
    with its own result or error, every accepted row lands once, none of the refused, and use cases
    were grouped (fewer transactions than use cases) — the lead passed from caller to caller."""
    seen = _statements(probe_engine)
    answers: dict[str, Any] = {}
    lock = threading.Lock()

    def use_case_for(name: str) -> Callable[[Session], str]:
        insert = _insert(name)

        def use_case(session: Session) -> str:
            insert(session)
            if name.endswith("4"):
                raise ValueError(f"{name} refused")
            return name

        return use_case

    def caller(thread: int) -> None:
        for i in range(25):
            name = f"t{thread}-{i}"
            try:
                answer: Any = run_in_transaction(probe_engine, use_case_for(name))
            except ValueError as error:
                answer = error
            with lock:
                answers[name] = answer

    threads = [threading.Thread(target=caller, args=(t,)) for t in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not any(thread.is_alive() for thread in threads), "a caller was never answered"
    names = {f"t{t}-{i}" for t in range(16) for i in range(25)}
    refused = {name for name in names if name.endswith("4")}
    assert set(answers) == names
    assert all(answers[name] == name for name in names - refused)
    assert all(isinstance(answers[name], ValueError) and name in str(answers[name]) for name in refused)
    assert _ids(probe_engine) == names - refused
    assert seen.count("BEGIN") < len(names)
