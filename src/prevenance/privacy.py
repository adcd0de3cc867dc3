"""GDPR: export everything held about a customer, and erase a customer.

A composition above the domains (like the 360): it reads every table through the one metadata.

**Export** (`GET /v1/members/{ref}/export`): the member record and every row of every table that
names the member (a ``member_id`` column, or a referral on either side), as JSON, plus the access
log. Generic over the metadata, so a table added by a later loop is exported without a change here.

**Erase** (`POST /v1/members/{ref}/erase`): personal data is removed or pseudonymised in place,
while the ledger (accounts, postings, card transactions) and the published scorecards stay exactly
as they were — they hold amounts and internal ids, never names. The member's ``ref`` becomes
``erased-<digest>`` (a keyed hash: the same ref always gives the same pseudonym, which makes a
repeated erase idempotent and lets the issuer match its own erasure request). ``PERSONAL`` lists,
per table, the columns blanked or pseudonymised; a test checks every text column of every table
with a ``member_id`` is either listed or declared not personal in ``NOT_PERSONAL``.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from sqlalchemy import Table, delete, or_, select, text, update
from sqlalchemy.orm import Session

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, ensure_member_scope, require
from prevenance.common.problems import PROBLEM_JSON
from prevenance.customers import service as customers
from prevenance.customers.tables import Member
from prevenance.db import read_session, run_in_transaction
from prevenance.settings import get_settings
from prevenance.tables import metadata

ERASED_NAME = "Erased customer"
PSEUDONYM = "{pseudonym}"  # replaced by the member's pseudonymous ref
# table -> column -> what it becomes ("" blank, None null, PSEUDONYM the pseudonymous ref).
PERSONAL: dict[str, dict[str, str | None]] = {
    "desk_contacts": {"notes": ""},
    "desk_card_replacements": {"address": "", "member_ref": PSEUDONYM},
    "desk_communications": {"subject": "", "summary": ""},
    "desk_concierge_requests": {"title": "[erased]", "details": "", "solution": "", "member_ref": PSEUDONYM},
    "desk_callbacks": {"phone": "", "member_ref": PSEUDONYM},
    "desk_incident_notices": {"subject": "", "body": "", "last_error": None},
    "miles_export_lines": {"member_ref": PSEUDONYM},
    "api_keys": {"member_ref": PSEUDONYM},
    "voice_invitations": {"last_error": None},  # the relay's answer can quote the address
}
# Tables whose rows about the member are deleted outright (preferences of a person, nothing counted).
DELETED = ("desk_member_tastes",)
# Text columns of member tables that hold no personal data (codes, statuses, agents' ids, amounts).
NOT_PERSONAL: dict[str, set[str]] = {}

router = APIRouter(prefix="/v1", tags=["privacy"])
Ref = Annotated[str, Path(min_length=1, max_length=64)]
Exporter = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.MEMBER))]
Eraser = Annotated[Principal, Depends(require())]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown member", "content": {PROBLEM_JSON: {}}}
}


def pseudonym(ref: str) -> str:
    """The erased ref: a keyed hash of the original (stable, not reversible without the key)."""
    digest = hmac.new(get_settings().secret_key.encode(), ref.encode(), hashlib.sha256).hexdigest()
    return f"erased-{digest[:24]}"


def _member_tables() -> list[Table]:
    return [table for table in metadata.sorted_tables if "member_id" in table.c and table.name != "members"]


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _count(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def export_member(session: Session, *, ref: str) -> dict[str, Any]:
    """Everything held about the member, table by table."""
    member = customers.get_or_raise(session, ref=ref)
    members: Table = Member.__table__  # type: ignore[assignment]
    profile = session.execute(select(members).where(members.c.id == member.id)).mappings().one()
    tables: dict[str, list[dict[str, Any]]] = {}
    for table in _member_tables():
        rows = session.execute(select(table).where(table.c.member_id == member.id)).mappings().all()
        if rows:
            tables[table.name] = [{k: _jsonable(v) for k, v in row.items()} for row in rows]
    referrals: Table = metadata.tables["referrals"]
    rows = (
        session.execute(
            select(referrals).where(
                or_(referrals.c.referrer_id == member.id, referrals.c.referee_id == member.id)
            )
        )
        .mappings()
        .all()
    )
    if rows:
        tables["referrals"] = [{k: _jsonable(v) for k, v in row.items()} for row in rows]
    return {"member": {k: _jsonable(v) for k, v in profile.items()}, "tables": tables}


def erase_member(session: Session, *, ref: str, now: datetime) -> dict[str, Any]:
    """Remove or pseudonymise the member's personal data; the ledger's sums are untouched. An
    already erased member (its ref is a pseudonym) answers the same result again."""
    member = customers.get(session, ref=ref) or customers.get(session, ref=pseudonym(ref))
    if member is None:
        customers.get_or_raise(session, ref=ref)  # raises the 404
        raise AssertionError("unreachable")
    alias = member.ref if member.ref.startswith("erased-") else pseudonym(ref)
    changed: dict[str, int] = {}
    for table_name, columns in PERSONAL.items():
        table = metadata.tables.get(table_name)
        if table is None:
            continue
        values = {column: alias if value == PSEUDONYM else value for column, value in columns.items()}
        where = table.c.member_id == member.id if "member_id" in table.c else table.c.member_ref == member.ref
        changed[table_name] = _count(session.execute(update(table).where(where).values(**values)))
    for table_name in DELETED:
        table = metadata.tables[table_name]
        changed[table_name] = _count(session.execute(delete(table).where(table.c.member_id == member.id)))
    keys: Table = metadata.tables["api_keys"]
    if "revoked_at" in keys.c:
        session.execute(
            update(keys).where(keys.c.member_ref == alias, keys.c.revoked_at.is_(None)).values(revoked_at=now)
        )
    if session.get_bind().dialect.name == "sqlite":  # the word index of solved concierge requests
        requests = metadata.tables["desk_concierge_requests"]
        ids = session.scalars(select(requests.c.id).where(requests.c.member_id == member.id)).all()
        for request_id in ids:
            session.execute(text("DELETE FROM desk_concierge_fts WHERE request_id = :id"), {"id": request_id})
    member.ref, member.name, member.city, member.phone = alias, ERASED_NAME, None, None
    member.email = f"{alias}@erased.invalid"
    member.updated_at = now
    session.flush()
    return {"member_ref": alias, "erased_at": now.isoformat(), "changed": changed}


@router.get("/members/{ref}/export", responses=NOT_FOUND)
def get_member_export(ref: Ref, engine: DbEngine, principal: Exporter) -> dict[str, Any]:
    """Everything held about the customer (GDPR access and portability), as JSON. Supervisor and
    admin keys, or the member's own key."""
    ensure_member_scope(principal, ref)
    with read_session(engine) as session:
        return export_member(session, ref=ref)


@router.post("/members/{ref}/erase", responses=NOT_FOUND)
def post_member_erase(ref: Ref, engine: DbEngine, clock: AppClock, _: Eraser) -> dict[str, Any]:
    """Erase the customer's personal data (GDPR erasure), keeping the ledger's sums and published
    scorecards exactly as they were; the ref becomes a pseudonym. Admin only. Repeating it with the
    original ref answers the same pseudonym."""
    return run_in_transaction(engine, lambda session: erase_member(session, ref=ref, now=clock.now()))
