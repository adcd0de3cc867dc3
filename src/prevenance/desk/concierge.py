"""The concierge: premium members' requests, their tastes, and word search of solved requests.

Only members whose card product is premium may have requests (else 403 ``concierge-not-entitled``).
A request goes open → in_progress → solved | cancelled (open may also be cancelled); repeating the
current status changes nothing, any other move is a 409. Search reads solved requests only: on
SQLite through the ``desk_concierge_fts`` FTS5 table (written here when a request is solved), on
PostgreSQL through ``to_tsvector('simple', …) @@ plainto_tsquery('simple', …)`` over title, details
and solution (the migration adds the matching GIN expression index).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import String, bindparam, func, literal_column, select, text
from sqlalchemy.orm import Session

from prevenance.common import outbox
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import fingerprint_of, iso_z
from prevenance.common.problems import InvalidInput
from prevenance.common.reads import Read
from prevenance.customers import service as customers
from prevenance.desk.errors import ConciergeNotEntitled, ConciergeStatusConflict, UnknownConciergeRequest
from prevenance.desk.tables import ConciergePartner, ConciergeRequest, MemberTastes

if TYPE_CHECKING:
    from prevenance.customers.tables import Member

CATEGORIES = ("restaurant", "flowers", "tickets", "travel", "gifts", "events", "other")
STATUSES = ("open", "in_progress", "solved", "cancelled")
_MOVES = {"open": {"in_progress", "cancelled"}, "in_progress": {"solved", "cancelled"}}


def _utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _tastes_body(row: MemberTastes | None) -> dict[str, Any]:
    if row is None:
        return {"notes": "", "likes": [], "dislikes": [], "updated_at": None, "updated_by": None}
    return {
        "notes": row.notes,
        "likes": list(row.likes),
        "dislikes": list(row.dislikes),
        "updated_at": iso_z(row.updated_at),
        "updated_by": row.updated_by,
    }


def _request_body(row: ConciergeRequest, tastes: dict[str, Any] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row.id,
        "member_ref": row.member_ref,
        "category": row.category,
        "title": row.title,
        "details": row.details,
        "city": row.city,
        "country": row.country,
        "due_at": iso_z(row.due_at),
        "status": row.status,
        "partner": row.partner,
        "cost": None if row.cost is None else f"{row.cost:.2f}",
        "solution": row.solution,
        "requested_by": row.requested_by,
        "created_at": iso_z(row.created_at),
        "updated_at": iso_z(row.updated_at),
    }
    if tastes is not None:
        body["tastes"] = tastes
    return body


def _entitled_member(session: Session, *, ref: str) -> Member:
    """The premium member a concierge write is about (never an erased one)."""
    member = customers.get_member(session, ref=ref)
    customers.ensure_not_erased(member, field="member_ref")
    product = customers.product_of(session, code=member.product)
    if product is None or not product.premium:
        raise ConciergeNotEntitled(
            f"the concierge is for premium cards; member {ref!r} holds {member.product!r}", field="member_ref"
        )
    return member


# --- tastes -------------------------------------------------------------------------------------


def set_tastes(
    session: Session,
    *,
    member_ref: str,
    notes: str,
    likes: list[str],
    dislikes: list[str],
    by: str,
    now: datetime,
) -> dict[str, Any]:
    """Replace what the concierge remembers of a member's tastes (premium members only)."""
    member = _entitled_member(session, ref=member_ref)
    row = session.get(MemberTastes, member.id, with_for_update=True)
    if row is None:
        row = MemberTastes(member_id=member.id)
        session.add(row)
    row.notes, row.likes, row.dislikes = notes.strip(), list(likes), list(dislikes)
    row.updated_at, row.updated_by = now, by
    session.flush()
    return {"member_ref": member.ref, **_tastes_body(row)}


def get_tastes(session: Session, *, member_ref: str) -> dict[str, Any]:
    member = customers.get_member(session, ref=member_ref)
    return {"member_ref": member.ref, **_tastes_body(session.get(MemberTastes, member.id))}


# --- requests -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConciergeRequestInput:
    id: str
    member_ref: str
    category: str
    title: str
    details: str
    city: str
    country: str
    due_at: datetime


def create_request(session: Session, *, request: ConciergeRequestInput, by: str, now: datetime) -> Outcome:
    """Record a premium member's request, once per id; the answer carries the member's tastes."""
    return run_idempotent(
        session,
        scope="concierge-request",
        key=request.id,
        fingerprint=fingerprint_of(request),
        now=now,
        produce=lambda: _create_request(session, data=request, by=by, now=now),
    )


def _create_request(session: Session, *, data: ConciergeRequestInput, by: str, now: datetime) -> Outcome:
    if data.category not in CATEGORIES:
        raise InvalidInput(f"category must be one of {', '.join(CATEGORIES)}", field="category")
    member = _entitled_member(session, ref=data.member_ref)
    row = ConciergeRequest(
        id=data.id,
        member_id=member.id,
        member_ref=member.ref,
        category=data.category,
        title=data.title.strip(),
        details=data.details.strip(),
        city=data.city.strip(),
        country=data.country.upper(),
        due_at=_utc(data.due_at),
        status="open",
        requested_by=by,
        created_at=now,
        updated_at=now,
    )
    session.add(row)
    session.flush()
    body = _request_body(row)
    outbox.emit(session, type="concierge_request.created", payload=body, now=now)
    return Outcome(201, {**body, "tastes": _tastes_body(session.get(MemberTastes, member.id))})


def get_request(session: Session, *, request_id: str) -> dict[str, Any]:
    row = session.get(ConciergeRequest, request_id)
    if row is None:
        raise UnknownConciergeRequest(f"no concierge request {request_id!r}", field="id")
    return _request_body(row)


def _cost(value: str | None) -> Decimal | None:
    """The cost as an amount in EUR under 10^10 with at most 2 decimals; 422 naming ``cost`` else.
    The bound is checked before the rounding to cents: ``1E+100`` fits the field's length but its
    rounding overflows the decimal context (it answered 500)."""
    if value is None:
        return None
    try:
        cost = Decimal(value)
    except InvalidOperation:
        raise InvalidInput("cost must be a decimal amount in EUR, e.g. '120.00'", field="cost") from None
    if not cost.is_finite() or cost < 0 or cost >= Decimal("1e10") or cost != cost.quantize(Decimal("0.01")):
        raise InvalidInput(
            "cost must be a non-negative amount in EUR under 10,000,000,000 with at most 2 decimals",
            field="cost",
        )
    return cost


def change_status(
    session: Session,
    *,
    request_id: str,
    status: str,
    partner: str | None,
    cost: str | None,
    solution: str | None,
    now: datetime,
) -> dict[str, Any]:
    """Move a request along open → in_progress → solved | cancelled; the current status again
    changes nothing. Solving needs a ``solution`` and makes the request searchable."""
    if status not in STATUSES:
        raise InvalidInput(f"status must be one of {', '.join(STATUSES)}", field="status")
    amount = _cost(cost)
    row = session.get(ConciergeRequest, request_id, with_for_update=True)
    if row is None:
        raise UnknownConciergeRequest(f"no concierge request {request_id!r}", field="id")
    if row.status == status:
        return _request_body(row)
    if status not in _MOVES.get(row.status, set()):
        raise ConciergeStatusConflict(
            f"a {row.status} request cannot become {status}", field="status", request_status=row.status
        )
    if status == "solved" and not (solution or "").strip():
        raise InvalidInput("a solved request needs its solution", field="solution")
    if partner is not None or solution is not None:
        # New text about the member: never about an erased one (the erasure blanked the solution).
        member = customers.find_member_by_id(session, member_id=row.member_id)
        if member is not None:
            customers.ensure_not_erased(member, field="id")
    row.status, row.updated_at = status, now
    if partner is not None:
        row.partner = partner.strip()
    if amount is not None:
        row.cost = amount
    if solution is not None:
        row.solution = solution.strip()
    session.flush()
    if status == "solved" and session.get_bind().dialect.name == "sqlite":
        _index_solved(session, row)
    body = _request_body(row)
    outbox.emit(session, type=f"concierge_request.{status}", payload=body, now=now)
    return body


def _index_solved(session: Session, row: ConciergeRequest) -> None:
    """Write the solved request's words to the FTS5 table (replacing any row for the same id)."""
    session.execute(text("DELETE FROM desk_concierge_fts WHERE request_id = :id"), {"id": row.id})
    session.execute(
        text("INSERT INTO desk_concierge_fts (request_id, body) VALUES (:id, :body)"),
        {"id": row.id, "body": " ".join([row.title, row.details, row.solution or ""])},
    )


def list_requests(
    session: Session, *, status: str | None, due_before: datetime | None, limit: int = 500
) -> list[dict[str, Any]]:
    """Requests by due time (soonest first), optionally in one status and due before a time."""
    statement = select(ConciergeRequest)
    if status is not None:
        statement = statement.where(ConciergeRequest.status == status)
    if due_before is not None:
        statement = statement.where(ConciergeRequest.due_at < _utc(due_before))
    rows = session.scalars(statement.order_by(ConciergeRequest.due_at, ConciergeRequest.id).limit(limit))
    return [_request_body(row) for row in rows]


_MEMBER_REQUESTS = (
    select(ConciergeRequest.__table__)
    .where(ConciergeRequest.member_id == bindparam("p_member"))
    .order_by(ConciergeRequest.created_at.desc(), ConciergeRequest.id.desc())
    .limit(bindparam("p_limit"))
)
"""Built once (the 360 asks it of every premium member it shows)."""


def member_requests(member_id: int, *, limit: int) -> Read[list[dict[str, Any]]]:
    """A member's latest concierge requests, newest first: the 360's part (``common.reads``)."""
    return Read(
        _MEMBER_REQUESTS,
        {"p_member": member_id, "p_limit": limit},
        lambda rows: [_request_body(r) for r in rows],
    )


_TASTES = select(MemberTastes.__table__).where(MemberTastes.member_id == bindparam("p_member"))


def member_tastes(member_id: int) -> Read[dict[str, Any]]:
    """What the concierge remembers of a member (empty when nothing is on file): the 360's part
    (``common.reads``)."""
    return Read(_TASTES, {"p_member": member_id}, lambda rows: _tastes_body(rows[0] if rows else None))


_WORD = re.compile(r"\w+", re.UNICODE)


def search_solved(
    session: Session, *, q: str, category: str | None, city: str | None, limit: int = 50
) -> list[dict[str, Any]]:
    """Solved requests matching every word of ``q`` (and the category and city, when given)."""
    words = _WORD.findall(q)
    if not words:
        raise InvalidInput("q must contain at least one word", field="q")
    statement = select(ConciergeRequest).where(ConciergeRequest.status == "solved")
    if session.get_bind().dialect.name == "sqlite":
        # Each word quoted: FTS5 operators typed by a user are taken as plain words.
        match = " ".join('"' + word.replace('"', '""') + '"' for word in words)
        ids = (
            select(literal_column("request_id", String))
            .select_from(text("desk_concierge_fts"))
            .where(text("desk_concierge_fts MATCH :match").bindparams(match=match))
        )
        statement = statement.where(ConciergeRequest.id.in_(ids))
    else:
        # The very expression of the GIN index desk_concierge_fts_gin (literals, not parameters),
        # so the planner can use it.
        document = func.to_tsvector(
            literal_column("'simple'"),
            literal_column("title || ' ' || details || ' ' || coalesce(solution, '')"),
        )
        statement = statement.where(
            document.op("@@")(func.plainto_tsquery(literal_column("'simple'"), " ".join(words)))
        )
    if category is not None:
        statement = statement.where(ConciergeRequest.category == category)
    if city is not None:
        statement = statement.where(func.lower(ConciergeRequest.city) == city.strip().lower())
    rows = session.scalars(
        statement.order_by(ConciergeRequest.updated_at.desc(), ConciergeRequest.id).limit(limit)
    )
    return [_request_body(row) for row in rows]


# --- partner network ----------------------------------------------------------------------------


def _partner_body(row: ConciergePartner) -> dict[str, Any]:
    return {
        "code": row.code,
        "name": row.name,
        "country": row.country,
        "city": row.city,
        "category": row.category,
        "rating": row.rating,
        "updated_at": iso_z(row.updated_at),
        "updated_by": row.updated_by,
    }


def put_partner(
    session: Session,
    *,
    code: str,
    name: str,
    country: str,
    city: str,
    category: str,
    rating: int,
    by: str,
    now: datetime,
) -> tuple[dict[str, Any], bool]:
    """Create or replace a partner of the network; answers the partner and whether it is new."""
    if category not in CATEGORIES:
        raise InvalidInput(f"category must be one of {', '.join(CATEGORIES)}", field="category")
    if not 1 <= rating <= 5:
        raise InvalidInput("rating must be from 1 to 5", field="rating")
    row = session.get(ConciergePartner, code, with_for_update=True)
    created = row is None
    if row is None:
        row = ConciergePartner(code=code)
        session.add(row)
    row.name, row.country, row.city, row.category, row.rating = (
        name.strip(),
        country.upper(),
        city.strip(),
        category,
        rating,
    )
    row.updated_at, row.updated_by = now, by
    session.flush()
    return _partner_body(row), created


def list_partners(
    session: Session, *, country: str | None, city: str | None, category: str | None
) -> list[dict[str, Any]]:
    """Partners by place and category, best rated first."""
    statement = select(ConciergePartner)
    if country is not None:
        statement = statement.where(ConciergePartner.country == country.upper())
    if city is not None:
        statement = statement.where(func.lower(ConciergePartner.city) == city.strip().lower())
    if category is not None:
        statement = statement.where(ConciergePartner.category == category)
    rows = session.scalars(statement.order_by(ConciergePartner.rating.desc(), ConciergePartner.code))
    return [_partner_body(row) for row in rows]
