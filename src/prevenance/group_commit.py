"""Group commit for SQLite: one writer at a time, many use cases per commit (``db.run_in_transaction``
hands them here when the engine has a group: ``db.group_commit_of``)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, TypeVar

from sqlalchemy import Engine
from sqlalchemy.orm import Session

T = TypeVar("T")
Transaction = Callable[[Engine], AbstractContextManager[Session]]


class RunAlone(Exception):
    """A grouped use case that must be run again in its own transaction (its failure was worth a
    re-run, or the group's commit failed): nothing of it was committed."""

    def __init__(self, error: BaseException | None) -> None:
        super().__init__(str(error))
        self.error = error


class _Ticket:
    __slots__ = ("done", "error", "prepare", "result", "retry_when", "use_case")

    def __init__(
        self,
        use_case: Callable[[Session], Any],
        prepare: Callable[[Session], None] | None,
        retry_when: Callable[[BaseException], bool],
    ) -> None:
        self.use_case, self.prepare, self.retry_when = use_case, prepare, retry_when
        self.done = False
        self.result: Any = None
        self.error: BaseException | None = None

    def outcome(self) -> Any:
        if self.error is None:
            return self.result
        if isinstance(self.error, RunAlone):
            raise self.error
        if self.retry_when(self.error):
            raise RunAlone(self.error)
        raise self.error


class GroupCommit:
    """Group commit for a SQLite engine: one writer at a time, many use cases per commit.

    SQLite has one writer. Threads that each wait for the write lock in turn are served in no
    particular order (a thread can lose the lock again and again: the tail latency of a busy
    server), and each pays for its own transaction. Here the first thread to arrive leads: it takes
    every use case queued so far, runs them in one transaction, commits once, and wakes the others
    with their results; those that arrived meanwhile form the next group. A lone use case runs
    exactly as without grouping. Nothing is answered before the commit, and a failed commit sends
    every use case of the group back to its own transaction (:class:`RunAlone`), where nothing of it
    was committed.

    A use case that fails must cost only itself. The group is first run without savepoints (each
    costs two statements and the ORM's bookkeeping, a tenth of a small write); if one of its use
    cases fails, the whole transaction is rolled back — nothing of it was committed — and the group
    runs again with each use case in its own savepoint, so the failing one is rolled back alone and
    its caller gets its error. After such a failure the next ``CAREFUL_GROUPS`` groups go straight to
    savepoints, so a stream of refused requests does not make every group run twice.
    """

    CAREFUL_GROUPS = 16

    def __init__(self, transaction: Transaction) -> None:
        self._transaction = transaction
        """``db.unit_of_work``: one transaction, committed on leaving, rolled back on an error."""
        self._changed = threading.Condition()
        self._queue: list[_Ticket] = []
        self._leading = False
        self._leader = threading.local()
        self._careful = 0
        """Groups still to run with savepoints since a use case last failed."""
        self.reruns = 0
        """Groups run a second time, with savepoints, because one of their use cases failed."""

    def wait_queued(self, count: int, timeout: float) -> bool:
        """Wait until ``count`` use cases wait for the group in progress (tests and benchmarks)."""
        with self._changed:
            return self._changed.wait_for(lambda: len(self._queue) >= count, timeout)

    def leading_here(self) -> bool:
        """True inside a group this thread is applying (a nested call runs on its own)."""
        return bool(getattr(self._leader, "active", False))

    def run(
        self,
        engine: Engine,
        use_case: Callable[[Session], T],
        *,
        prepare: Callable[[Session], None] | None,
        retry_when: Callable[[BaseException], bool],
    ) -> T:
        """The use case's result once its group has committed (or its own error)."""
        ticket = _Ticket(use_case, prepare, retry_when)
        with self._changed:
            self._queue.append(ticket)
            self._changed.notify_all()
            while self._leading and not ticket.done:
                self._changed.wait()
            if ticket.done:
                return ticket.outcome()
            self._leading = True
            group, self._queue = self._queue, []
        try:
            self._apply(engine, group)
        finally:
            with self._changed:
                for member in group:
                    member.done = True
                self._leading = False
                self._changed.notify_all()
        return ticket.outcome()

    def _apply(self, engine: Engine, group: list[_Ticket]) -> None:
        self._leader.active = True
        try:
            if len(group) == 1 or self._careful == 0:
                if self._apply_together(engine, group):
                    return
                self.reruns += 1
                self._careful = self.CAREFUL_GROUPS
            else:
                self._careful -= 1
            self._apply_in_savepoints(engine, group)
        finally:
            self._leader.active = False

    def _apply_together(self, engine: Engine, group: list[_Ticket]) -> bool:
        """The group in one transaction without savepoints. False, with nothing committed and every
        ticket cleared, when one of its use cases failed (a lone use case keeps its own error)."""
        try:
            with self._transaction(engine) as session:
                for ticket in group:
                    _run_ticket(session, ticket)
        except Exception as error:
            if len(group) > 1 and any(ticket.error is not None for ticket in group):
                for ticket in group:
                    ticket.result, ticket.error = None, None
                return False  # rolled back whole: the group runs again, each in its savepoint
            _send_back_alone(group, error)
        return True

    def _apply_in_savepoints(self, engine: Engine, group: list[_Ticket]) -> None:
        try:
            with self._transaction(engine) as session:
                for ticket in group:
                    try:
                        with session.begin_nested():
                            _run_ticket(session, ticket)
                    except Exception:  # rolled back to its savepoint; its caller gets the error
                        continue
        except Exception as error:
            _send_back_alone(group, error)


def _send_back_alone(group: list[_Ticket], error: BaseException) -> None:
    """The group's transaction failed as a whole (nothing of it was committed): each use case that
    did not fail by itself runs again in its own transaction (:class:`RunAlone`)."""
    for ticket in group:
        if ticket.error is None:
            ticket.result, ticket.error = None, RunAlone(error)


def _run_ticket(session: Session, ticket: _Ticket) -> None:
    try:
        if ticket.prepare is not None:
            ticket.prepare(session)
        ticket.result = ticket.use_case(session)
    except Exception as error:
        ticket.error = error
        raise
