"""API keys with roles. Keys are 256-bit random secrets, so a SHA-256 of the key is a safe and fast
lookup value (a slow password hash is for the low-entropy passwords of console users).

A key is revoked by stamping ``revoked_at`` (``revoke_key``, ``revoke_member_keys``, ``erase_member_keys``); every request
reads the key's row (``authenticate``), so a revoked key is refused at once by every process.
"""

from __future__ import annotations

import hashlib
import sqlite3
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Engine, String, Table, select, update
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Mapped, Session, mapped_column

from prevenance.common.base import Base, UtcDateTime
from prevenance.common.bulk import rows_changed
from prevenance.common.ids import new_id, new_secret
from prevenance.common.problems import InvalidInput, NotFound
from prevenance.common.text import is_header_safe


class UnknownApiKey(NotFound):
    type_slug = "unknown-api-key"
    title = "Unknown API key"


class Role(StrEnum):
    """Who a key acts for; each route lists the roles it admits (admin is always admitted)."""

    ADMIN = "admin"
    MARKETING = "marketing"
    SUPERVISOR = "supervisor"
    AGENT = "agent"
    CONCIERGE = "concierge"
    MEMBER = "member"
    INTEGRATOR = "integrator"


class ApiKey(Base):
    """A stored key: only its hash and a short prefix to recognise it in a list."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    role: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(12))
    member_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request."""

    key_id: str
    name: str
    role: Role
    member_ref: str | None = None


def hash_key(secret: str) -> str:
    """The stored form of a key."""
    return hashlib.sha256(secret.encode()).hexdigest()


NAME_MAX = 120  # api_keys.name; also the actor of the access log (access_audit)
KEY_ID_MAX = 40  # api_keys.id


def _name_error(name: str) -> str | None:
    """Why ``name`` cannot name a key (None when it can).

    The name is shown by ``keys list`` and recorded as the actor of every request the key makes, so
    it is one line of printable text (a line break or an escape sequence would forge lines of the
    list or of a log), not blank, of at most ``NAME_MAX`` characters (PostgreSQL refuses a longer
    one with an error, SQLite would keep it), and UTF-8 (bytes the shell could not decode reach
    Python as lone surrogates, which no database can store)."""
    if not name.strip():
        return "must not be blank"
    if len(name) > NAME_MAX:
        return f"must be at most {NAME_MAX} characters"
    if not is_header_safe(name):
        return "must be one line without control characters"
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "must be UTF-8 text"
    return None


def create_key(
    session: Session, *, role: str, name: str, now: datetime, member_ref: str | None = None
) -> tuple[ApiKey, str]:
    """Create a key and return it with its secret (shown once, never stored). ``InvalidInput``
    naming the field for an unknown role, a name that cannot be stored or shown (``_name_error``),
    or a member ref given to a key that is not a member's (or missing from one that is)."""
    problem = _name_error(name)
    if problem:
        raise InvalidInput(f"key name {problem}", field="name")
    try:
        parsed = Role(role)
    except ValueError:
        raise InvalidInput(f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}", field="role")
    if parsed is Role.MEMBER and not member_ref:
        raise InvalidInput("a member key needs the member it acts for", field="member_ref")
    if parsed is not Role.MEMBER and member_ref:
        raise InvalidInput("only a member key acts for a member", field="member_ref")
    secret = new_secret()
    row = ApiKey(
        id=new_id("key"),
        name=name,
        role=parsed.value,
        key_hash=hash_key(secret),
        prefix=secret[:10],
        member_ref=member_ref,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row, secret


def revoke_key(session: Session, *, key_id: str, now: datetime) -> ApiKey:
    """Revoke a key by its id (``key_…``) so it answers 401 from now on; revoking it again keeps the
    first revocation time. 404 when there is no such key, without asking the database when the id
    cannot be one (longer than the column, or not UTF-8: the driver would fail to encode it)."""
    try:
        storable = len(key_id) <= KEY_ID_MAX and bool(key_id.encode("utf-8"))
    except UnicodeEncodeError:
        storable = False
    row = session.get(ApiKey, key_id) if storable else None
    if row is None:
        raise UnknownApiKey(f"no API key {key_id!r}", field="key_id")
    session.execute(
        update(ApiKey).where(ApiKey.id == key_id, ApiKey.revoked_at.is_(None)).values(revoked_at=now)
    )
    session.refresh(row)
    return row


def revoke_member_keys(session: Session, *, member_ref: str, now: datetime) -> int:
    """Revoke every live key bound to ``member_ref`` (for erasure); the count revoked."""
    result = session.execute(
        update(ApiKey)
        .where(ApiKey.member_ref == member_ref, ApiKey.revoked_at.is_(None))
        .values(revoked_at=now)
        .execution_options(synchronize_session=False)
    )
    return rows_changed(result)


def list_keys(session: Session) -> list[ApiKey]:
    """Every key, oldest first (for ``prevenance keys list``; the secrets are not stored)."""
    return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)))


_KEY_BY_HASH = "SELECT id, name, role, member_ref, revoked_at FROM api_keys WHERE key_hash = {marker}"
# The statement in each driver's parameter style, built once.
_KEY_BY_HASH_FOR = {"sqlite": _KEY_BY_HASH.format(marker="?"), "postgresql": _KEY_BY_HASH.format(marker="%s")}


def lookup_principal(engine: Engine, secret: str) -> Principal | None:
    """What :func:`authenticate` answers, read the way every request can afford: one statement on
    a driver connection, without an ORM session or a transaction of ours (a lone SELECT is its own
    snapshot and never writes). A SQLite file is read through a query-only connection kept by the
    calling thread (no pool checkout at all); a server database through a pooled connection (the
    API's requests on PostgreSQL read keys in the event loop instead, coalesced:
    ``common.key_lookup``). Read from the database each time, so a revoked key is refused at once by
    every worker process."""
    statement = _KEY_BY_HASH_FOR.get(engine.dialect.name, _KEY_BY_HASH_FOR["postgresql"])
    driver_error = engine.dialect.loaded_dbapi.Error
    try:
        reader = sqlite_key_reader(engine)
        if reader is not None:
            row = reader.execute(statement, (hash_key(secret),)).fetchone()
        else:
            row = _pooled_key_row(engine, statement, hash_key(secret))
    except driver_error as error:
        raise as_sqlalchemy_error(engine, statement, error) from error
    return principal_from_row(row)


def _pooled_key_row(engine: Engine, statement: str, key_hash: str) -> tuple[Any, ...] | None:
    """The key's row read on a pooled server connection, once more on a fresh one if the first
    was found dead by the statement itself. A session the server ends while its connection sits
    in the pool usually announces itself (``db.refuse_closed_connection``), but one ended at the
    very moment of checkout does not; the read is a lone SELECT, so repeating it is harmless, and
    SQLAlchemy has discarded the pool's older connections on the disconnect by then."""

    def read() -> tuple[Any, ...] | None:
        with engine.connect() as connection:
            found = connection.exec_driver_sql(statement, (key_hash,)).first()
            return None if found is None else tuple(found)

    try:
        return read()
    except DBAPIError as error:
        if not error.connection_invalidated:
            raise
    return read()


def as_sqlalchemy_error(engine: Engine, statement: str, error: Exception) -> StatementError:
    """The driver's own error as SQLAlchemy would have raised it (so the API answers 503 …)."""
    driver_error = engine.dialect.loaded_dbapi.Error
    return DBAPIError.instance(statement, None, error, driver_error, dialect=engine.dialect)


def principal_from_row(row: tuple[Any, ...] | None) -> Principal | None:
    """The principal of a key row (id, name, role, member_ref, revoked_at); None when absent or revoked."""
    if row is None or row[4] is not None:
        return None
    return Principal(key_id=row[0], name=row[1], role=Role(row[2]), member_ref=row[3])


_READERS = threading.local()


def sqlite_key_reader(engine: Engine) -> sqlite3.Connection | None:
    """This thread's query-only connection to the engine's SQLite file (None for other databases
    and for in-memory ones, which another connection cannot see)."""
    database = engine.url.database if engine.dialect.name == "sqlite" else None
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    readers: weakref.WeakKeyDictionary[Engine, sqlite3.Connection] | None = getattr(
        _READERS, "by_engine", None
    )
    if readers is None:
        readers = _READERS.by_engine = weakref.WeakKeyDictionary()
    reader = readers.get(engine)
    if reader is None:
        reader = sqlite3.connect(database, isolation_level=None)
        reader.execute("PRAGMA query_only=1")  # it can never write, whatever it is asked
        readers[engine] = reader
    return reader


def erase_member_keys(session: Session, *, member_ref: str, pseudonym: str, now: datetime) -> int:
    """Revoke every key bound to an erased member and re-bind it to the member's pseudonym (its name
    too, which may name the person), so a member later created with the same ref is never reachable
    by them; returns how many keys were bound. Repeating it changes nothing."""
    keys: Table = ApiKey.__table__  # type: ignore[assignment]
    bound = session.execute(
        update(keys)
        .where(keys.c.member_ref.in_({member_ref, pseudonym}))
        .values(member_ref=pseudonym, name=pseudonym)
    )
    session.execute(
        update(keys).where(keys.c.member_ref == pseudonym, keys.c.revoked_at.is_(None)).values(revoked_at=now)
    )
    return rows_changed(bound)
