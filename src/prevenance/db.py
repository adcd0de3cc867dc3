"""Engine, unit of work and the SQLite pragmas that make SQLite a safe embedded store.

Writes on SQLite start with ``BEGIN IMMEDIATE``: the write lock is taken before the first read, so a
check-then-write (balance, stock, e-code pool) can never interleave with another writer. Inside one
process, writers to a SQLite engine also queue on a Python lock before ``BEGIN IMMEDIATE``: SQLite
would serialise them anyway, but its busy handler waits by sleeping (up to 100 ms a nap), so under
concurrent requests the database lock sat idle while waiters slept; the Python lock hands over at
once. Other processes (a CLI load beside the server) still meet SQLite's busy timeout. On
PostgreSQL the same code relies on row locks taken by conditional ``UPDATE … RETURNING`` and
``SELECT … FOR UPDATE``; a unique violation or serialisation failure re-runs the whole use case,
which then finds the committed result (idempotency) instead of writing twice.
"""

from __future__ import annotations

import json
import select
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import orjson
import structlog
from sqlalchemy import Connection, Engine, Insert, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, DisconnectionError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from prevenance.group_commit import GroupCommit, RunAlone

T = TypeVar("T")
_log = structlog.get_logger()

_READ_ONLY = "prevenance_read_only"
_QUERY_ONLY = "prevenance_query_only"  # set on a pooled SQLite connection while it is read-only


class FairWriterLock:
    """A reentrant lock handed to its waiters in the order they arrived.

    Python's own locks let the thread that releases take the lock straight back, ahead of threads
    already waiting: a maintenance pass draining a backlog transaction after transaction then keeps
    the API's writers out for seconds (POST /v1/contacts p99 of 0.7-0.9 s in ``benchmarks/desk.py``).
    Here ``release`` gives the lock to the longest waiter, so a loop of writers takes turns with the
    others. A waiter whose ``timeout`` passes leaves the queue and is told so (False)."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._owner: int | None = None
        self._depth = 0
        self._waiters: deque[tuple[int, threading.Event]] = deque()

    def acquire(self, timeout: float = -1) -> bool:
        me = threading.get_ident()
        with self._mutex:
            if self._owner == me:
                self._depth += 1
                return True
            if self._owner is None and not self._waiters:
                self._owner, self._depth = me, 1
                return True
            entry = (me, threading.Event())
            self._waiters.append(entry)
        entry[1].wait(None if timeout < 0 else timeout)
        with self._mutex:
            if entry[1].is_set():  # ``release`` made this thread the owner
                return True
            self._waiters.remove(entry)
            return False

    @property
    def waiting(self) -> int:
        """How many threads wait for the lock."""
        with self._mutex:
            return len(self._waiters)

    def release(self) -> None:
        with self._mutex:
            if self._owner != threading.get_ident():
                raise RuntimeError("the writer lock is released by a thread that does not hold it")
            self._depth -= 1
            if self._depth:
                return
            if self._waiters:
                owner, granted = self._waiters.popleft()
                self._owner, self._depth = owner, 1
                granted.set()
            else:
                self._owner = None


# One writer lock per SQLite engine (see the module docstring).
_WRITE_LOCKS: weakref.WeakKeyDictionary[Engine, tuple[FairWriterLock, float]] = weakref.WeakKeyDictionary()


def is_sqlite(engine: Engine) -> bool:
    """True when the engine talks to SQLite (the embedded default)."""
    return engine.dialect.name == "sqlite"


def dumps_json(value: Any) -> str:
    """The text a JSON column stores: orjson's (a seventh of the standard library's time, on every
    event payload and stored answer), or the standard library's where orjson refuses the value (an
    integer beyond 64 bits, a lone surrogate in a string): both read back the same. NaN and infinities
    become null (the standard library wrote tokens JSON does not have, which PostgreSQL refuses)."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:  # orjson.JSONEncodeError is a TypeError
        return json.dumps(value)


def make_engine(
    url: str,
    *,
    busy_timeout_ms: int = 30_000,
    pool_size: int = 20,
    group_commit: bool = True,
    background_checkpoints: bool = False,
) -> Engine:
    """Create an engine with the pragmas and transaction mode each backend needs (on SQLite, with
    group commit of concurrent use cases unless ``group_commit`` is false; with
    ``background_checkpoints``, the WAL is checkpointed by a ``WalCheckpointer`` thread the caller
    runs, not by the commits)."""
    if url.startswith("sqlite"):
        on_file = ":memory:" not in url and url != "sqlite://"
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": busy_timeout_ms / 1000},
            pool_size=pool_size,
            max_overflow=pool_size,
            json_serializer=dumps_json,
        )

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy's "begin" event, not the driver, decide how transactions start.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            if on_file:
                cursor.execute("PRAGMA journal_mode=WAL")
                if background_checkpoints:
                    cursor.execute(f"PRAGMA wal_autocheckpoint={BACKSTOP_CHECKPOINT_PAGES}")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            if conn.get_execution_options().get(_READ_ONLY):
                # A read session cannot write: a write slipped into a read path fails at once
                # instead of upgrading to the write lock (and answering "database is locked").
                conn.connection.info[_QUERY_ONLY] = True
                conn.exec_driver_sql("PRAGMA query_only=1")
                conn.exec_driver_sql("BEGIN")
            else:
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        @event.listens_for(engine, "checkin")
        def _sqlite_checkin(dbapi_connection: Any, record: Any) -> None:
            if record.info.pop(_QUERY_ONLY, False) and dbapi_connection is not None:
                dbapi_connection.execute("PRAGMA query_only=0")  # the pool lends it to writers too

        _WRITE_LOCKS[engine] = (FairWriterLock(), busy_timeout_ms / 1000)
        if group_commit:
            _GROUPS[engine] = GroupCommit(unit_of_work)
        if background_checkpoints and on_file:
            _CHECKPOINTED[engine] = True
        return engine
    engine = create_engine(url, pool_size=pool_size, max_overflow=pool_size, json_serializer=dumps_json)
    event.listen(engine, "checkout", refuse_closed_connection)
    return engine


def refuse_closed_connection(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    """Hand out a pooled server connection only if the server has not closed it meanwhile.

    A server that ends a session (a restart, ``pg_terminate_backend``, an idle timeout) sends its
    goodbye and closes the socket, so a closed connection is one with bytes waiting while it sat idle
    in the pool: a ``select`` with no timeout tells, without a round trip. Only then is it pinged (a
    NOTICE could be waiting too); a dead one makes the pool discard it and take another
    (``DisconnectionError``). SQLAlchemy's ``pool_pre_ping`` sent a ``SELECT 1`` before every
    transaction instead: 0.1-0.3 ms of client time and one more round trip per request, which under
    load waits for the CPU like any other. What no byte announces (a cable cut) is found by the first
    statement, as with any pool, and answered 503 (``problems``)."""
    try:
        waiting, _, _ = select.select([dbapi_connection.fileno()], [], [], 0)
    except (OSError, ValueError) as error:  # no socket any more
        raise DisconnectionError("the pooled connection has no socket") from error
    if not waiting:
        return
    try:
        cursor = dbapi_connection.cursor()
        cursor.execute("SELECT 1")
        cursor.fetchall()
        cursor.close()
        dbapi_connection.rollback()
    except Exception as error:  # the server's goodbye: take another connection
        raise DisconnectionError("the server closed the pooled connection") from error


# With background checkpoints, a commit still checkpoints once the WAL holds this many pages
# (SQLite's default is 1,000): a backstop should the checkpointer thread fall behind or stop.
BACKSTOP_CHECKPOINT_PAGES = 10_000
CHECKPOINT_INTERVAL_S = 0.25
_CHECKPOINTED: weakref.WeakKeyDictionary[Engine, bool] = weakref.WeakKeyDictionary()


def checkpoints_in_background(engine: Engine) -> bool:
    """True for a SQLite file engine made with ``background_checkpoints``: run a ``WalCheckpointer``."""
    return _CHECKPOINTED.get(engine, False)


def checkpoint_wal(engine: Engine) -> None:
    """Copy the WAL's committed pages into the database file without waiting for readers or writers
    (``PRAGMA wal_checkpoint(PASSIVE)``), on a connection of the pool outside any transaction."""
    raw = engine.raw_connection()
    try:
        raw.driver_connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()  # type: ignore[union-attr]
    finally:
        raw.close()


class WalCheckpointer(threading.Thread):
    """Checkpoints a SQLite engine's WAL every ``interval`` seconds until ``stop`` is set.

    SQLite checkpoints from the commit that lets the WAL pass 1,000 pages: that commit then writes
    the pages back into the database file and syncs both files before it returns, so every answer
    waiting on it (a whole earn batch) waits for the disk too. Here the checkpoint runs beside the
    writers (a passive checkpoint takes no write lock) and the commits only append to the WAL.
    Durability is the same: a commit is in the WAL when it returns, as before, and the WAL is synced
    before each checkpoint — every ``interval`` seconds here, rather than every 1,000 pages.
    """

    def __init__(
        self, engine: Engine, stop: threading.Event, interval: float = CHECKPOINT_INTERVAL_S
    ) -> None:
        super().__init__(name="prevenance-wal-checkpoint", daemon=True)
        self.engine, self.stop, self.interval = engine, stop, interval

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            try:
                checkpoint_wal(self.engine)
            except Exception:  # the next round tries again; the commits' backstop still holds
                _log.exception("wal_checkpoint_failed")


@contextmanager
def wal_checkpoints_in_background(engine: Engine) -> Iterator[None]:
    """Run a ``WalCheckpointer`` for the block when the engine was made with ``background_checkpoints``
    (a long-running writer: the stream consumer), and stop it at the end; otherwise nothing."""
    if not checkpoints_in_background(engine):
        yield
        return
    stop = threading.Event()
    checkpointer = WalCheckpointer(engine, stop)
    checkpointer.start()
    try:
        yield
    finally:
        stop.set()
        checkpointer.join(timeout=5)


def engine_from_settings(*, background_checkpoints: bool = False) -> Engine:
    """The engine of the configured database (``PREVENANCE_DATABASE_URL``), as every command uses it;
    a long-running writer asks for ``background_checkpoints`` and runs
    ``wal_checkpoints_in_background``."""
    from prevenance.settings import get_settings

    settings = get_settings()
    return make_engine(
        settings.database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        group_commit=settings.sqlite_group_commit,
        background_checkpoints=background_checkpoints,
    )


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that never expire loaded objects on commit (responses are built after it)."""
    return sessionmaker(bind=engine, expire_on_commit=False, autoflush=True)


@contextmanager
def unit_of_work(engine: Engine) -> Iterator[Session]:
    """One database transaction: commit once at the end, roll back on any error."""
    writer = _WRITE_LOCKS.get(engine)
    if writer is None:
        with Session(bind=engine, expire_on_commit=False) as session, session.begin():
            yield session
        return
    lock, timeout = writer
    # On timeout, go on without the lock: SQLite's own busy handling still keeps writes correct.
    locked = lock.acquire(timeout=timeout)
    try:
        with Session(bind=engine, expire_on_commit=False) as session, session.begin():
            yield session
    finally:
        if locked:
            lock.release()


@contextmanager
def read_session(engine: Engine) -> Iterator[Session]:
    """A read-only transaction (plain ``BEGIN`` on SQLite, so readers never block writers).

    Read-only on the database itself (``BEGIN READ ONLY`` on PostgreSQL, ``PRAGMA query_only`` on
    SQLite): a read never writes, so it never waits for the write lock nor fails because writers
    are busy; a write slipped into a read path is refused in the first test that reaches it.
    """
    options: dict[str, Any] = {_READ_ONLY: True}
    if engine.dialect.name == "postgresql":
        options["postgresql_readonly"] = True
    with Session(bind=engine, expire_on_commit=False) as session, session.begin():
        session.connection(execution_options=options)  # before the transaction begins
        yield session


@contextmanager
def read_statements(engine: Engine) -> Iterator[Session]:
    """A session for reads that need no snapshot in common (a balance, a page of movements, the 360).

    On PostgreSQL its connection is in autocommit: every statement is its own snapshot, which is all
    a read transaction gives at READ COMMITTED (PostgreSQL takes a new snapshot per statement there),
    without the ``BEGIN READ ONLY`` … ``COMMIT`` around it that cost two more round trips, each
    waiting for the server and, under load, for a CPU. On SQLite there is no round trip to save, and a
    read transaction is one snapshot: it is ``read_session`` (``query_only``, so a write slipped in
    still fails)."""
    if engine.dialect.name != "postgresql":
        with read_session(engine) as session:
            yield session
        return
    with engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT", **{_READ_ONLY: True})
        with Session(bind=connection, expire_on_commit=False) as session:
            yield session


def in_read_session(connection: Connection) -> bool:
    """True for a connection lent to ``read_session`` (a test counts what such a connection sends)."""
    return bool(connection.get_execution_options().get(_READ_ONLY))


def insert_ignoring_conflicts(table: Table) -> dict[str, Insert]:
    """``INSERT … ON CONFLICT DO NOTHING`` on ``table`` for each backend, built once; callers pick
    theirs with ``ignoring_conflicts``. Concurrent creators of one row race on its unique key and
    the loser's insert is a no-op (on PostgreSQL it waits for the winner to commit first)."""
    return {
        "postgresql": postgresql.insert(table).on_conflict_do_nothing(),
        "sqlite": sqlite.insert(table).on_conflict_do_nothing(),
    }


def ignoring_conflicts(session: Session, statements: dict[str, Insert]) -> Insert:
    """The statement of ``insert_ignoring_conflicts`` for the session's backend."""
    return statements[session.get_bind().dialect.name]


_MEMO = "prevenance_transaction_memo"


def transaction_memo(session: Session, key: str, compute: Callable[[], T]) -> T:
    """``compute()`` once per root transaction of ``session`` (reference data a batch reads again and
    again: the programme in force, the system accounts).

    The memo dies with the transaction, so a later transaction sees what others committed since.
    Inside a savepoint nothing is memoised: a value written there could be rolled back while the memo
    kept it. A writer of such data calls ``forget``.
    """
    root = session.get_transaction()
    if root is None or session.in_nested_transaction():
        return compute()
    owner, values = session.info.get(_MEMO, (None, {}))
    if owner is not root:
        owner, values = root, {}
        session.info[_MEMO] = (owner, values)
    if key not in values:
        values[key] = compute()
    return values[key]


def forget(session: Session, key: str) -> None:
    """Drop one memoised value of the current transaction (its data was just written)."""
    _owner, values = session.info.get(_MEMO, (None, {}))
    values.pop(key, None)


def is_retryable(error: DBAPIError) -> bool:
    """Whether re-running the transaction may succeed: a lost race (unique violation, serialisation
    failure, deadlock) or SQLite's busy lock."""
    if isinstance(error, IntegrityError):
        return True
    code = getattr(getattr(error, "orig", None), "sqlstate", None)
    if code in {"40001", "40P01"}:  # serialization_failure, deadlock_detected
        return True
    return isinstance(error, OperationalError) and "database is locked" in str(error)


def lost_race(error: BaseException) -> bool:
    """A database error that re-running the transaction may cure (see ``is_retryable``)."""
    return isinstance(error, DBAPIError) and is_retryable(error)


def run_in_transaction(
    engine: Engine,
    use_case: Callable[[Session], T],
    *,
    attempts: int = 5,
    retry_when: Callable[[BaseException], bool] = lost_race,
    prepare: Callable[[Session], None] | None = None,
    on_retry: Callable[[BaseException], None] | None = None,
) -> T:
    """Run a use case in one transaction; re-run it when a concurrent writer won a race (or when
    ``retry_when`` says another failure is worth a re-run), at most ``attempts`` times.

    A use case starts by claiming its idempotency key, so the re-run finds the winner's committed
    result and replays it rather than writing a second time. ``prepare`` runs first in each
    transaction (session settings); ``on_retry`` is told of each failure that led to a re-run.

    On SQLite, use cases of concurrent threads commit together (:class:`GroupCommit`): each in its
    own savepoint, the group in one transaction, in the order they arrived.
    """
    group = _GROUPS.get(engine)
    if group is not None and not group.leading_here():
        try:
            return group.run(engine, use_case, prepare=prepare, retry_when=retry_when)
        except RunAlone as signal:  # the group could not keep it: its own transaction below
            if on_retry is not None and signal.error is not None:
                on_retry(signal.error)
    for attempt in range(1, attempts + 1):
        try:
            with unit_of_work(engine) as session:
                if prepare is not None:
                    prepare(session)
                return use_case(session)
        except Exception as error:
            if attempt == attempts or not retry_when(error):
                raise
            if on_retry is not None:
                on_retry(error)
            time.sleep(0.005 * attempt)
    raise AssertionError("unreachable")


# One group per SQLite engine (see ``GroupCommit``); PostgreSQL writers run side by side.
_GROUPS: weakref.WeakKeyDictionary[Engine, GroupCommit] = weakref.WeakKeyDictionary()


def group_commit_of(engine: Engine) -> GroupCommit | None:
    """The engine's group commit (SQLite), or None."""
    return _GROUPS.get(engine)
