"""Loading a member file: each row upserted as ``PUT /v1/members/{ref}`` would."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import Engine, Table, select
from sqlalchemy.orm import Session

from prevenance.common import lookups
from prevenance.common.clock import Clock, SystemClock
from prevenance.common.problems import PrevenanceError
from prevenance.customers import rules as member_rules
from prevenance.customers import service as customers
from prevenance.customers.schemas import MemberPut
from prevenance.customers.tables import Member
from prevenance.loyalty import earn_rows
from prevenance.loyalty.ingest.constants import DEFAULT_CHUNK_SIZE, MEMBER_COLUMNS, MEMBER_OPTIONAL_COLUMNS
from prevenance.loyalty.ingest.files import (
    ChunkStats,
    Record,
    Reject,
    Report,
    nul_reject,
    problem_reject,
    text_of,
    validation_reject,
)
from prevenance.loyalty.ingest.runner import run_file, with_retries

MEMBERS = cast(Table, Member.__table__)


@dataclass(slots=True)
class _MemberRow:
    line: int
    ref: str
    data: customers.MemberData | None
    reject: Reject | None
    optional: tuple[str, ...] = ()  # the optional columns the file has


def _parse_member(record: Record) -> _MemberRow:
    line, values, problem = record
    if values is None:
        return _MemberRow(line, "", None, Reject(line, "", 422, "invalid-input", None, problem or ""))
    ref = text_of(values.get("ref"))
    nul = nul_reject(values, line, ref)
    if nul is not None:
        return _MemberRow(line, ref, None, nul)
    if not (isinstance(values.get("ref"), str) and member_rules.is_valid_ref(ref)):
        reject = Reject(
            line, ref, 422, "invalid-input", "ref", "member ref must be 1-64 characters [A-Za-z0-9._:-]"
        )
        return _MemberRow(line, ref, None, reject)
    if member_rules.is_erased_ref(ref):
        # Erased members' pseudonyms (and the prefix reserved for them): never written to again, as
        # ``PUT /v1/members/{ref}`` answers (409 for an erased member, 422 for an unused pseudonym).
        reject = Reject(
            line,
            ref,
            409,
            "member-erased",
            "ref",
            f"refs starting with {member_rules.ERASED_PREFIX!r} name erased members, never written to again",
        )
        return _MemberRow(line, ref, None, reject)
    optional = tuple(c for c in MEMBER_OPTIONAL_COLUMNS if c in values)
    fields = (*MEMBER_COLUMNS[1:], *optional)
    try:
        body = MemberPut.model_validate({c: values.get(c) for c in fields})
    except ValidationError as error:
        return _MemberRow(line, ref, None, validation_reject(error, line, ref))
    data = customers.MemberData(
        body.name, body.email, body.language, body.country, body.product, body.city, body.phone
    )
    return _MemberRow(line, ref, data, None, optional)


_MEMBER_FIELDS = ("name", "email", "language", "country", "product")


def _apply_members(
    session: Session, rows: list[_MemberRow], now: datetime
) -> tuple[dict[str, int], list[Reject]]:
    """Create or replace the chunk's members as ``PUT /v1/members/{ref}`` would, in bulk."""
    # ``customers.validate`` looks each product up by primary key; holding them here keeps them in
    # the session's identity map, so those lookups cost no query.
    products = customers.list_products(session)
    optional = next((row.optional for row in rows if row.reject is None), ())
    fields = (*_MEMBER_FIELDS, *optional)
    rejects: list[Reject] = []
    latest: dict[str, customers.MemberData] = {}
    for row in rows:
        if row.reject is not None:
            rejects.append(row.reject)
            continue
        assert row.data is not None
        try:
            latest[row.ref] = customers.validate(row.data, session=session)
        except PrevenanceError as error:
            rejects.append(problem_reject(error, row.line, row.ref))
    refs = list(latest)
    existing: dict[str, tuple[Any, ...]] = {}
    for condition in lookups.matching(session, Member.ref, refs):
        statement = select(Member.id, Member.ref, *(getattr(Member, f) for f in fields)).where(condition)
        for found in session.execute(statement.with_for_update()):
            existing[found[1]] = tuple(found)
    del products
    writer = earn_rows.Writer(session)
    at = writer.time(now)
    fresh: list[tuple[Any, ...]] = []
    changed: list[tuple[Any, ...]] = []
    unchanged = 0
    for ref, data in latest.items():
        values = tuple(getattr(data, f) for f in fields)
        stored = existing.get(ref)
        if stored is None:
            fresh.append((ref, *values, at, at))
        elif tuple(stored[2:]) == values:
            unchanged += 1  # the stored record already says this: nothing to write
        else:
            changed.append((*values, at, stored[0]))
    writer.insert(MEMBERS, ("ref", *fields, "created_at", "updated_at"), fresh)
    writer.update(MEMBERS, (*fields, "updated_at"), ("id",), changed)
    return {"created": len(fresh), "updated": len(changed), "unchanged": unchanged}, rejects


def ingest_members(
    engine: Engine,
    path: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rejects_path: Path | None = None,
    clock: Clock | None = None,
    on_chunk: Callable[[ChunkStats], None] | None = None,
) -> Report:
    """Create or update members from a CSV or Parquet file, one transaction per chunk."""
    clock = clock or SystemClock()

    def apply(records: list[Record]) -> ChunkStats:
        started = time.perf_counter()
        parsed = [_parse_member(r) for r in records]
        (counts, rejects), retries = with_retries(engine, lambda s: _apply_members(s, parsed, clock.now()))
        rejects.sort(key=lambda r: r.line)
        return ChunkStats(len(records), time.perf_counter() - started, counts, rejects, retries)

    return run_file(
        "members",
        path,
        columns=MEMBER_COLUMNS,
        chunk_size=chunk_size,
        rejects_path=rejects_path,
        apply=apply,
        on_chunk=on_chunk,
        engine=engine,
        tables=(MEMBERS,),
        optional=MEMBER_OPTIONAL_COLUMNS,
    )
