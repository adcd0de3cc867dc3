"""Every query of the customer record."""

from __future__ import annotations

import json
from collections.abc import Sequence

from sqlalchemy import ScalarSelect, String, Subquery, any_, bindparam, column, func, insert, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from prevenance.customers.tables import AccessLogEntry, Member, Product
from prevenance.db import in_read_session

# Built once: every earn looks its member up by reference.
_BY_REF = select(Member).where(Member.ref == bindparam("p_ref"))
_BY_REF_FOR_UPDATE = _BY_REF.with_for_update()
# FOR NO KEY UPDATE: it serialises the decisions of one member, yet does not conflict with the FOR KEY
# SHARE lock every insert referencing the member takes (the earn inserts its card transaction before
# its hooks run); a plain FOR UPDATE deadlocks against a concurrent earn.
_LOCK_SHARED = select(Member.id).where(Member.id == bindparam("p_member")).with_for_update(key_share=True)
_LOCK_SHARED_MANY = (
    select(Member.id)
    .where(Member.id.in_(bindparam("p_members", expanding=True)))
    .order_by(Member.id)
    .with_for_update(key_share=True)
)
_SUMMARY_BY_REF = select(Member.id, Member.ref, Member.product, Member.country, Member.language).where(
    Member.ref == bindparam("p_ref")
)
# A write transaction on PostgreSQL reads its member FOR KEY SHARE (``_holds_members``).
_BY_REF_HELD = _BY_REF.with_for_update(key_share=True)
_SUMMARY_BY_REF_HELD = _SUMMARY_BY_REF.with_for_update(key_share=True)


def _holds_members(session: Session) -> bool:
    """Whether this session's member look-ups take ``FOR KEY SHARE``: in a write transaction on
    PostgreSQL, so that an erasure and a write about the same member never interleave.

    The erasure locks its member ``FOR UPDATE`` before anything else, which waits for every write
    transaction holding the member (its look-up, or the foreign-key check of a row it inserted,
    takes that lock), then scrubs what they committed. A write that starts during the erasure waits
    at its look-up, and once the erasure has committed, PostgreSQL re-reads the row for the lock:
    the reference the request named no longer matches (it is a pseudonym now), so the request finds
    no member instead of laying new personal data on an erased one. The lock is the one the
    foreign-key check of the write's own insert takes anyway; it never blocks another write (only
    ``FOR UPDATE`` and deletes conflict with it). SQLite runs one write transaction at a time, and a
    read transaction cannot lock."""
    connection = session.connection()
    return connection.dialect.name == "postgresql" and not in_read_session(connection)


_IDS_BY_REF = "prevenance.member_ids_by_ref"


def member_by_ref(session: Session, ref: str, *, for_update: bool = False) -> Member | None:
    """The member with this reference, queried once per session: a view that asks ten services about
    one member (the 360) finds it again in the session's identity map, not in ten queries. A lock
    (``for_update``) always goes to the database; a cached reference is checked, since erasure
    rewrites it."""
    known: dict[str, int] = session.info.setdefault(_IDS_BY_REF, {})
    if not for_update and (member_id := known.get(ref)) is not None:
        member = session.get(Member, member_id)
        if member is not None and member.ref == ref:
            return member  # read (and in a write transaction held) earlier in this transaction
    held = _BY_REF_HELD if _holds_members(session) else _BY_REF
    statement = _BY_REF_FOR_UPDATE if for_update else held
    member = session.scalars(statement, {"p_ref": ref}).first()
    if member is not None:
        known[ref] = member.id
    return member


_WITH_PRODUCT_BY_REF = (
    select(Member, Product)
    .join(Product, Product.code == Member.product)
    .where(Member.ref == bindparam("p_ref"))
)


def member_with_product_by_ref(session: Session, ref: str) -> tuple[Member, Product] | None:
    """The member and its card product in one statement; both stay in the session's identity map, so
    the services asked about them afterwards (``member_by_ref``, ``product``) read neither again."""
    found = session.execute(_WITH_PRODUCT_BY_REF, {"p_ref": ref}).first()
    if found is None:
        return None
    member, product = found
    session.info.setdefault(_IDS_BY_REF, {})[ref] = member.id
    return member, product


_SUMMARY_COLUMNS = (Member.id, Member.ref, Member.product, Member.country, Member.language)
_SUMMARIES_IN = select(*_SUMMARY_COLUMNS).where(Member.ref.in_(bindparam("p_refs", expanding=True)))
_SUMMARIES_ANY = select(*_SUMMARY_COLUMNS).where(
    Member.ref == any_(bindparam("p_refs", type_=ARRAY(Member.ref.type)))
)
_SUMMARIES_ANY_HELD = _SUMMARIES_ANY.with_for_update(key_share=True)
# SQLite: the refs as one JSON array (``json_each``), one statement whatever their number.
_SUMMARIES_JSON = select(*_SUMMARY_COLUMNS).where(
    Member.ref.in_(select(column("value")).select_from(func.json_each(bindparam("p_refs", type_=String()))))
)


def member_summaries_by_refs(session: Session, refs: list[str]) -> list[tuple[int, str, str, str, str]]:
    """``member_summary_by_ref`` for many refs in one query (an array on PostgreSQL, a JSON array on
    SQLite; ``IN`` lists of at most 900 for refs outside ASCII); unknown refs are simply absent."""
    if not refs:
        return []
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        statement = _SUMMARIES_ANY_HELD if _holds_members(session) else _SUMMARIES_ANY
        return [tuple(row) for row in connection.execute(statement, {"p_refs": refs})]  # type: ignore[misc]
    if all(isinstance(ref, str) and ref.isascii() for ref in refs):  # no lone surrogate to encode
        rows = connection.execute(_SUMMARIES_JSON, {"p_refs": json.dumps(refs)})
        return [tuple(row) for row in rows]  # type: ignore[misc]
    found: list[tuple[int, str, str, str, str]] = []
    for start in range(0, len(refs), 900):
        rows = connection.execute(_SUMMARIES_IN, {"p_refs": refs[start : start + 900]})
        found.extend(tuple(row) for row in rows)  # type: ignore[misc]
    return found


def member_by_id(session: Session, member_id: int) -> Member | None:
    if _holds_members(session):
        return session.get(Member, member_id, with_for_update={"key_share": True})
    return session.get(Member, member_id)


def refs_of(session: Session, member_ids: list[int]) -> dict[int, str]:
    found: dict[int, str] = {}
    for start in range(0, len(member_ids), 1000):  # bounded IN lists
        chunk = member_ids[start : start + 1000]
        for row in session.execute(select(Member.id, Member.ref).where(Member.id.in_(chunk))):
            found[row.id] = row.ref
    return found


def languages_of(session: Session, member_ids: list[int], *, erased_like: str) -> list[tuple[int, str]]:
    rows: list[tuple[int, str]] = []
    for start in range(0, len(member_ids), 1000):  # bounded IN lists
        chunk = member_ids[start : start + 1000]
        statement = select(Member.id, Member.language).where(
            Member.id.in_(chunk), Member.ref.not_like(erased_like)
        )
        rows += [(row.id, row.language) for row in session.execute(statement.order_by(Member.id))]
    return rows


def lock_shared(session: Session, member_id: int) -> None:
    session.execute(_LOCK_SHARED, {"p_member": member_id}).first()


def lock_shared_many(session: Session, member_ids: list[int]) -> None:
    session.execute(_LOCK_SHARED_MANY, {"p_members": member_ids}).all()


def member_id_by_ref() -> ScalarSelect[int]:
    return select(Member.id).where(Member.ref == bindparam("p_ref")).scalar_subquery()


def segments() -> Subquery:
    return select(Member.id, Member.product, Member.country, Member.created_at).subquery("member_segments")


def product(session: Session, code: str) -> Product | None:
    return session.get(Product, code)


def products(session: Session) -> list[Product]:
    return list(session.scalars(select(Product).order_by(Product.code)))


def member_summary_by_ref(session: Session, ref: str) -> tuple[int, str, str, str, str] | None:
    """Id, ref, product, country and language of a member: a plain row, cheaper than the ORM entity."""
    statement = _SUMMARY_BY_REF_HELD if _holds_members(session) else _SUMMARY_BY_REF
    row = session.execute(statement, {"p_ref": ref}).first()
    return (row[0], row[1], row[2], row[3], row[4]) if row else None


def member_ids_matching(
    session: Session, *, products: list[str], countries: list[str], cities: list[str]
) -> list[int]:
    """Ids of the members holding one of ``products`` and living in one of ``countries`` and
    ``cities`` (an empty list does not restrict; cities compare case-insensitively)."""
    statement = select(Member.id)
    if products:
        statement = statement.where(Member.product.in_(products))
    if countries:
        statement = statement.where(Member.country.in_(countries))
    if cities:
        statement = statement.where(func.lower(Member.city).in_([city.strip().lower() for city in cities]))
    return list(session.scalars(statement.order_by(Member.id)))


_INSERT_ACCESS = insert(AccessLogEntry.__table__)  # type: ignore[arg-type]


def append_accesses(session: Session, entries: Sequence[tuple[str, dict[str, object]]]) -> int:
    """Insert one access-log row per ``(member ref, values)`` in order: one read of the members'
    ids for all the refs, one insert for all the rows. A ref naming no member gets no row; the
    count written is returned."""
    refs = list({ref for ref, _ in entries})
    ids: dict[str, int] = {}
    for start in range(0, len(refs), 500):
        chunk = refs[start : start + 500]
        ids.update(
            (ref, id_)
            for ref, id_ in session.execute(select(Member.ref, Member.id).where(Member.ref.in_(chunk)))
        )
    rows = [{"member_id": ids[ref], **values} for ref, values in entries if ref in ids]
    if rows:
        session.execute(_INSERT_ACCESS, rows)
    return len(rows)


def access_entries(
    session: Session, *, member_id: int, limit: int, before_id: int | None
) -> list[AccessLogEntry]:
    """A member's access-log rows, newest first."""
    statement = select(AccessLogEntry).where(AccessLogEntry.member_id == member_id)
    if before_id is not None:
        statement = statement.where(AccessLogEntry.id < before_id)
    return list(session.scalars(statement.order_by(AccessLogEntry.id.desc()).limit(limit)))


def members_by_email(session: Session, email: str, *, limit: int) -> list[Member]:
    """Members whose e-mail is ``email`` (case-insensitive; served by the lower(email) index)."""
    return list(
        session.scalars(
            select(Member)
            .where(func.lower(Member.email) == email.strip().lower())
            .order_by(Member.id)
            .limit(limit)
        )
    )
