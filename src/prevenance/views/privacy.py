"""GDPR: export everything held about a customer, and erase a customer.

A composition above the domains (like the 360): it reads every table through the one metadata.

**Export** (`GET /v1/members/{ref}/export`): the member record and the rows of every table that
names the member (a ``member_id`` column, a referral on either side, the suggestions drawn from
their survey answers), as JSON, column by column through an explicit allow-list, ``EXPORT``: each
column is either exported or withheld with its reason. An export carries the member's personal
data, never credentials, hashes or digests, nor what only staff see (their notes, costs, partners,
staff identities): the same line as the member's own view of the 360 (``docs/authorization.md``).
A column nobody has classified is never exported, and a test fails until someone classifies it.

**Erase** (`POST /v1/members/{ref}/erase`): personal data is removed or pseudonymised in place,
while the ledger (accounts, postings, card transactions) and the published scorecards stay exactly
as they were — they hold amounts and internal ids, never names. The member's ``ref`` becomes
``erased-<digest>`` (a keyed hash: the same ref always gives the same pseudonym, which makes a
repeated erase idempotent and lets the issuer match its own erasure request; a member later given
the same ref and erased in turn gets the next generation of it, ``pseudonym(ref, 1)`` and so on). Every text column of
every table is classified once, here: ``PERSONAL`` (blanked or pseudonymised on the member's rows),
``DELETED`` (the member's rows go) or ``KEPT`` (with the reason); a test walks the metadata and fails
on a text column in none of them. Erasure also revokes the member's API keys and disables their
portal sign-ins (both re-bound to the pseudonym, so a member later given the same ref is reachable
by none of them), cancels the mail still owed to them (pending survey invitations become
``skipped``/``erased``, pending incident notices are deleted), and scrubs the copies of their data
kept by the idempotency store and the outbox.

The console's sign-ins live in a layer above this one: the console's eraser is registered here by
``prevenance.wiring`` (``register_eraser``), and an erasure refuses to run while a table written apart
has no eraser, so no entry point can forget it silently.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from sqlalchemy import (
    JSON,
    ColumnElement,
    MetaData,
    String,
    Table,
    delete,
    false,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.orm import Session

from prevenance.common.auth import Principal, Role, erase_member_keys
from prevenance.common.bulk import rows_changed
from prevenance.common.deps import AppClock, DbEngine, ensure_member_scope, require
from prevenance.common.problems import PROBLEM_JSON
from prevenance.customers import service as customers
from prevenance.customers.rules import ERASED_PREFIX
from prevenance.db import read_session, run_in_transaction
from prevenance.metadata import metadata
from prevenance.settings import get_settings
from prevenance.views.privacy_columns import (  # noqa: F401 - the classification, re-exported
    DELETED,
    ERASED_NAME,
    FREE_TEXT_KEYS,
    IDEMPOTENT_SCOPES,
    KEPT,
    PERSONAL,
    PSEUDONYM,
    REF_KEYS,
    SCRUBBED,
    WRITTEN_APART,
)
from prevenance.views.privacy_export_columns import (  # noqa: F401 - the classification, re-exported
    CREDENTIAL,
    DIGEST,
    EXPORT,
    EXPORT_ROWS_WITHHELD,
    EXPORTED,
    STAFF_ID,
    STAFF_NOTE,
)


def _export_filter(table: Table) -> ColumnElement[bool]:
    if table.name == "offer_decisions":
        return table.c.arm == "treatment"
    return true()


router = APIRouter(prefix="/v1", tags=["privacy"])
Ref = Annotated[str, Path(min_length=1, max_length=64)]
Exporter = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.MEMBER))]
Eraser = Annotated[Principal, Depends(require())]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown member", "content": {PROBLEM_JSON: {}}}
}


MemberEraser = Callable[[Session, int, str], int]
"""Erases one member's rows of a table kept by a layer above (session, member id, pseudonym) and
answers how many rows changed."""
_ERASERS: dict[str, MemberEraser] = {}
ERASED_ABOVE = ("console_users",)


def register_eraser(table_name: str, eraser: MemberEraser) -> None:
    """Let a layer above the views erase its own rows of a member (installed by the wiring)."""
    _ERASERS[table_name] = eraser


def _eraser(table_name: str) -> MemberEraser:
    eraser = _ERASERS.get(table_name)
    if eraser is None:
        raise RuntimeError(f"no eraser registered for {table_name}: call prevenance.wiring.install_erasers()")
    return eraser


def pseudonym(ref: str, generation: int = 0) -> str:
    """The erased ref: a keyed hash of the original (stable, not reversible without the key).

    An issuer may give an erased customer's ref to a new member, who may be erased in turn: the
    ``generation``-th member erased under one ref gets the hash of the ref and that number, so each
    erased row keeps a pseudonym of its own (a ref never holds a line break, so no other ref hashes
    the same text)."""
    text = ref if generation == 0 else f"{ref}\n{generation}"
    digest = hmac.new(get_settings().secret_key.encode(), text.encode(), hashlib.sha256).hexdigest()
    return f"{ERASED_PREFIX}{digest[:24]}"


def _pseudonyms_taken(session: Session, ref: str) -> list[str]:
    """The pseudonyms of the members already erased under ``ref``, oldest first."""
    taken: list[str] = []
    while customers.find_member(session, ref=pseudonym(ref, len(taken))) is not None:
        taken.append(pseudonym(ref, len(taken)))
    return taken


def exported_tables(md: MetaData = metadata) -> list[str]:
    """The tables an export reads: the member, every table with a ``member_id``, the referrals on
    either side and the suggestions drawn from the member's answers."""
    named = {table.name for table in md.sorted_tables if "member_id" in table.c and table.name != "members"}
    return ["members", *sorted(named | {"referrals", "voice_suggestions"})]


def unclassified_export_columns(md: MetaData = metadata) -> list[str]:
    """``table.column`` of every exported column not in ``EXPORT`` (or classified with neither
    ``EXPORTED`` nor a ``withheld:`` reason), and of every ``EXPORT`` entry naming no column."""
    found = []
    for name in exported_tables(md):
        columns, classified = set(md.tables[name].c.keys()), EXPORT.get(name, {})
        found += [f"{name}.{column}" for column in sorted(columns - set(classified))]
        found += [f"{name}.{column} (no such column)" for column in sorted(set(classified) - columns)]
        found += [
            f"{name}.{column} ({verdict!r})"
            for column, verdict in sorted(classified.items())
            if verdict != EXPORTED and not verdict.startswith("withheld: ")
        ]
    return found


def text_columns(md: MetaData = metadata) -> list[tuple[str, str]]:
    """Every (table, column) of the metadata holding text: strings, long text and JSON."""
    return [
        (table.name, column.name)
        for table in md.sorted_tables
        for column in table.c
        if isinstance(column.type, String | JSON)
    ]


def unclassified_text_columns(md: MetaData = metadata) -> list[str]:
    """``table.column`` of every text column in none of ``PERSONAL``, ``DELETED`` and ``KEPT`` (or in
    two of them), and of every classification naming no column."""
    found = []
    for table, column in text_columns(md):
        verdicts = (column in PERSONAL.get(table, {})) + (column in KEPT.get(table, {})) + (table in DELETED)
        if verdicts != 1:
            found.append(f"{table}.{column}" + (" (classified twice)" if verdicts else ""))
    for kind in (PERSONAL, KEPT):
        for table, columns in kind.items():
            known = md.tables[table].c.keys() if table in md.tables else []
            found += [f"{table}.{column} (no such column)" for column in columns if column not in known]
    return found


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _count(result: object) -> int:
    return rows_changed(result)


def _of_member(table: Table, member_id: int, member_ref: str) -> ColumnElement[bool]:
    """The rows of ``table`` about the member."""
    if table.name == "referrals":
        return or_(table.c.referrer_id == member_id, table.c.referee_id == member_id)
    if table.name == "refunds":
        transactions = metadata.tables["card_transactions"]
        return table.c.transaction_id.in_(
            select(transactions.c.id).where(transactions.c.member_id == member_id)
        )
    if table.name == "voice_suggestions":
        answers = metadata.tables["voice_answers"]
        return table.c.answer_id.in_(select(answers.c.id).where(answers.c.member_id == member_id))
    if "member_id" in table.c:
        return table.c.member_id == member_id
    if "member_ref" in table.c:
        return table.c.member_ref == member_ref
    return false()


def _export_rows(session: Session, table: Table, where: ColumnElement[bool]) -> list[dict[str, Any]]:
    allowed = EXPORT.get(table.name, {})
    columns = [column for column in table.c if allowed.get(column.name) == EXPORTED]
    if not columns:
        return []
    rows = session.execute(select(*columns).where(where, _export_filter(table))).mappings().all()
    return [{key: _jsonable(value) for key, value in row.items()} for row in rows]


def export_member(session: Session, *, ref: str) -> dict[str, Any]:
    """Everything held about the member that is theirs to have, table by table (``EXPORT``)."""
    member = customers.get_member(session, ref=ref)
    members = metadata.tables["members"]
    profile = _export_rows(session, members, members.c.id == member.id)[0]
    tables: dict[str, list[dict[str, Any]]] = {}
    for name in exported_tables()[1:]:
        table = metadata.tables[name]
        rows = _export_rows(session, table, _of_member(table, member.id, member.ref))
        if rows:
            tables[name] = rows
    return {"member": profile, "tables": tables}


def scrub(value: Any, *, ref: str, alias: str) -> Any:
    """A JSON copy of the member's data with their ref pseudonymised and their free text blanked."""
    if isinstance(value, dict):
        return {
            key: "" if key in FREE_TEXT_KEYS and isinstance(item, str) else scrub(item, ref=ref, alias=alias)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [scrub(item, ref=ref, alias=alias) for item in value]
    if isinstance(value, str) and value == ref:
        return alias
    return value


def _scrub_idempotent_responses(session: Session, *, member_id: int, ref: str, alias: str) -> int:
    keys = metadata.tables["idempotency_keys"]
    changed = 0
    for scope, table_name in IDEMPOTENT_SCOPES.items():
        table = metadata.tables[table_name]
        ids = select(table.c.id).where(_of_member(table, member_id, ref))
        rows = session.execute(
            select(keys.c.key, keys.c.response).where(keys.c.scope == scope, keys.c.key.in_(ids))
        ).all()
        for key, response in rows:
            cleaned = scrub(response, ref=ref, alias=alias)
            if cleaned != response:
                session.execute(
                    update(keys).where(keys.c.scope == scope, keys.c.key == key).values(response=cleaned)
                )
                changed += 1
    return changed


def _scrub_events(session: Session, *, member_id: int, ref: str, alias: str) -> int:
    """The outbox's copies of the member's data (delivered or not), and the error a handler gave for
    one of them (its message may quote the payload). One pass over the outbox, which has no index by
    member: erasure is a rare, deliberate act."""
    events = metadata.tables["outbox_events"]
    payload = events.c.payload
    rows = session.execute(
        select(events.c.id, payload, events.c.last_error).where(
            or_(
                *(payload[key].as_string().in_({ref, alias}) for key in REF_KEYS),
                payload["member_id"].as_integer() == member_id,
            )
        )
    ).all()
    changed = 0
    for event_id, body, last_error in rows:
        cleaned = scrub(body, ref=ref, alias=alias)
        if cleaned != body or last_error is not None:
            session.execute(
                update(events).where(events.c.id == event_id).values(payload=cleaned, last_error=None)
            )
            changed += 1
    return changed


def _cancel_pending_mail(session: Session, *, member_id: int) -> dict[str, int]:
    """No mail is ever sent to an erased member: pending survey invitations become ``skipped`` with
    the reason ``erased``; pending incident notices (which hold no reason) are deleted."""
    invitations = metadata.tables["voice_invitations"]
    notices = metadata.tables["desk_incident_notices"]
    skipped = session.execute(
        update(invitations)
        .where(invitations.c.member_id == member_id, invitations.c.status == "pending")
        .values(status="skipped", skip_reason="erased")
    )
    deleted = session.execute(
        delete(notices).where(notices.c.member_id == member_id, notices.c.status == "pending")
    )
    return {"invitations_cancelled": _count(skipped), "notices_cancelled": _count(deleted)}


def _personal_values(columns: dict[str, str | None], alias: str) -> dict[str, str | None]:
    return {column: value.replace(PSEUDONYM, alias) if value else value for column, value in columns.items()}


def erase_member(session: Session, *, ref: str, now: datetime) -> dict[str, Any]:
    """Remove or pseudonymise the member's personal data; the ledger's sums are untouched. An
    already erased member (its ref is a pseudonym) answers the same result again.

    The member is locked ``FOR UPDATE`` before anything is read or changed: on PostgreSQL this waits
    for every write transaction that holds the member (its look-up or the foreign-key check of its
    insert took ``FOR KEY SHARE``), so what they wrote is committed and scrubbed here, and a write
    that starts meanwhile waits, then finds no member by the erased reference (see
    ``customers.repository._holds_members``). SQLite runs one write transaction at a time."""
    member = customers.find_member(session, ref=ref, for_update=True)
    if member is None or customers.is_erased(member):
        # Erased already: the original ref answers its latest erasure again.
        taken = [member.ref] if member is not None else _pseudonyms_taken(session, ref)
        member = customers.find_member(session, ref=taken[-1]) if taken else None
    if member is None:
        customers.get_member(session, ref=ref)  # raises the 404
        raise AssertionError("unreachable")
    alias = (
        member.ref if customers.is_erased(member) else pseudonym(ref, len(_pseudonyms_taken(session, ref)))
    )
    original = ref if member.ref == alias else member.ref
    changed: dict[str, int] = {}
    for table_name, columns in PERSONAL.items():
        if table_name in WRITTEN_APART:
            continue
        table = metadata.tables[table_name]
        where = _of_member(table, member.id, member.ref)
        changed[table_name] = _count(
            session.execute(update(table).where(where).values(**_personal_values(columns, alias)))
        )
    for table_name in DELETED:
        table = metadata.tables[table_name]
        changed[table_name] = _count(session.execute(delete(table).where(table.c.member_id == member.id)))
    changed["api_keys"] = erase_member_keys(session, member_ref=original, pseudonym=alias, now=now)
    for table_name in ERASED_ABOVE:
        changed[table_name] = _eraser(table_name)(session, member.id, alias)
    changed["idempotency_keys"] = _scrub_idempotent_responses(
        session, member_id=member.id, ref=original, alias=alias
    )
    changed["outbox_events"] = _scrub_events(session, member_id=member.id, ref=original, alias=alias)
    changed.update(_cancel_pending_mail(session, member_id=member.id))
    if session.get_bind().dialect.name == "sqlite":  # the word index of solved concierge requests
        requests = metadata.tables["desk_concierge_requests"]
        ids = session.scalars(select(requests.c.id).where(requests.c.member_id == member.id)).all()
        for request_id in ids:
            session.execute(text("DELETE FROM desk_concierge_fts WHERE request_id = :id"), {"id": request_id})
    erased = _personal_values(PERSONAL["members"], alias)
    member.ref, member.name, member.city, member.phone = alias, ERASED_NAME, None, None
    member.email = str(erased["email"])
    member.updated_at = now
    session.flush()
    return {"member_ref": alias, "erased_at": now.isoformat(), "changed": changed}


@router.get("/members/{ref}/export", responses=NOT_FOUND)
def get_member_export(ref: Ref, engine: DbEngine, principal: Exporter) -> dict[str, Any]:
    """Everything held about the customer that is theirs to have (GDPR access and portability), as
    JSON: never credentials, hashes or what only staff see. Supervisor and admin keys, or the
    member's own key."""
    ensure_member_scope(principal, ref)
    with read_session(engine) as session:
        return export_member(session, ref=ref)


@router.post("/members/{ref}/erase", responses=NOT_FOUND)
def post_member_erase(ref: Ref, engine: DbEngine, clock: AppClock, _: Eraser) -> dict[str, Any]:
    """Erase the customer's personal data (GDPR erasure), keeping the ledger's sums and published
    scorecards exactly as they were; the ref becomes a pseudonym, every key and portal sign-in of
    the member is revoked, the mail still owed to them is cancelled. Admin only. Repeating it with
    the original ref answers the same pseudonym."""
    return run_in_transaction(engine, lambda session: erase_member(session, ref=ref, now=clock.now()))
