"""Caller keys that make every write safe to retry.

A use case first *claims* its key inside its own transaction. If the key is already there with the
same body fingerprint, the stored response is replayed; with another body, 409. Two concurrent
requests with one key both try to insert the claim (``INSERT … ON CONFLICT DO NOTHING``): on
PostgreSQL the second waits on the primary key until the first commits, then inserts nothing and
reads the stored response; on SQLite writers are serialised by ``BEGIN IMMEDIATE``, so the second
simply finds the claim. Should the first roll back instead, the second's insert takes the key.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String, Table, bindparam, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from prevenance.common.base import Base, UtcDateTime
from prevenance.common.problems import IdempotencyConflict
from prevenance.db import insert_ignoring_conflicts

KEY_MAX = 200
"""Length of the key columns (``idempotency_keys.key``, ``postings.idempotency_key``)."""


def fit_key(key: str) -> str:
    """``key`` when it fits the key columns, else its head and a digest of the whole (still unique).

    Callers' ids and keys may be ``KEY_MAX`` long, and the keys derived from them are longer
    (``earn:<id>``, ``<month>/<key>``): PostgreSQL refuses a text longer than its column, so such an
    earn or publish failed with a 500. A key that fits is kept as is, so keys stored before stay valid.
    """
    if len(key) <= KEY_MAX:
        return key
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()
    return key[: KEY_MAX - len(digest) - 1] + "~" + digest


class IdempotencyKey(Base):
    """One row per (scope, caller key): the body fingerprint and the response first given."""

    __tablename__ = "idempotency_keys"

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(KEY_MAX), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())


_KEYS: Table = IdempotencyKey.__table__  # type: ignore[assignment]
# Built once and run as Core statements: every write of the API passes here.
_FIND = select(_KEYS.c.fingerprint, _KEYS.c.status_code, _KEYS.c.response).where(
    _KEYS.c.scope == bindparam("p_scope"), _KEYS.c.key == bindparam("p_key")
)
_CLAIM = insert(_KEYS)
_ANSWER = (
    update(_KEYS)
    .where(_KEYS.c.scope == bindparam("p_scope"), _KEYS.c.key == bindparam("p_key"))
    .values(status_code=bindparam("p_status"), response=bindparam("p_response", type_=JSON))
)


@dataclass(frozen=True)
class Outcome:
    """What a write answered: replayed byte for byte when its key comes again."""

    status_code: int
    body: dict[str, Any]
    replayed: bool = False


_CLAIM_IF_NEW = {
    backend: statement.returning(_KEYS.c.scope)
    for backend, statement in insert_ignoring_conflicts(_KEYS).items()
}


def run_idempotent(
    session: Session,
    *,
    scope: str,
    key: str,
    fingerprint: str,
    now: datetime,
    produce: Callable[[], Outcome],
) -> Outcome:
    """Replay the stored outcome of ``key``, or claim it, produce the outcome and store it.

    The claim is one ``INSERT … ON CONFLICT DO NOTHING RETURNING``: a new key (the common case)
    costs one statement, a round trip on PostgreSQL, instead of a look-up and then an insert. On
    PostgreSQL an insert meeting a concurrent, uncommitted claim of the same key waits for it; once
    that commits the insert does nothing and the look-up that follows (a new snapshot in READ
    COMMITTED) finds the stored answer.
    """
    stored = fit_key(key)
    values = {"scope": scope, "key": stored, "fingerprint": fingerprint, "status_code": 0, "created_at": now}
    claim = _CLAIM_IF_NEW.get(session.get_bind().dialect.name)
    if claim is None or session.execute(claim, values).first() is None:
        existing = session.execute(_FIND, {"p_scope": scope, "p_key": stored}).first()
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise IdempotencyConflict(
                    f"{scope} key {key!r} was already used with a different body", field="id"
                )
            return Outcome(existing.status_code, existing.response or {}, replayed=True)
        # Another dialect, or a claim that vanished (its writer rolled back after we looked): claim
        # plainly; a unique violation re-runs the use case through ``run_in_transaction``.
        session.execute(_CLAIM, values)
    outcome = produce()
    session.execute(
        _ANSWER,
        {"p_scope": scope, "p_key": stored, "p_status": outcome.status_code, "p_response": outcome.body},
    )
    return outcome
