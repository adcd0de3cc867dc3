"""Use cases of the customer record. Never commits: the caller's unit of work does."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ScalarSelect, String, Subquery
from sqlalchemy.orm import Session

from prevenance.common.problems import InvalidInput
from prevenance.common.text import HEADER_UNSAFE_MESSAGE, is_header_safe
from prevenance.customers import repository, rules
from prevenance.customers.errors import MemberErased, UnknownMember, UnknownMemberInBody, UnknownProduct
from prevenance.customers.search import search_members as search_members
from prevenance.customers.tables import AccessLogEntry, Member, Product


@dataclass(frozen=True)
class MemberData:
    """The fields a caller sets on a member."""

    name: str
    email: str
    language: str
    country: str
    product: str
    city: str | None = None
    phone: str | None = None


def validate(data: MemberData, *, session: Session) -> MemberData:
    """Check and normalise member data; raise ``InvalidInput`` naming the field at fault."""
    if data.language not in rules.LANGUAGES:
        raise InvalidInput("language must be 'fr' or 'en'", field="language")
    country = rules.normalise_country(data.country)
    if country is None:
        raise InvalidInput(f"{data.country!r} is not an ISO 3166-1 alpha-2 country code", field="country")
    if not rules.is_valid_email(data.email):
        raise InvalidInput("email is not a valid address", field="email")
    if not data.name.strip():
        raise InvalidInput("name must not be blank", field="name")
    if not is_header_safe(data.name):
        raise InvalidInput(f"name {HEADER_UNSAFE_MESSAGE}", field="name")
    if repository.product(session, data.product) is None:
        raise UnknownProduct(f"unknown card product {data.product!r}", field="product")
    city = (data.city or "").strip() or None
    phone = None
    if (data.phone or "").strip():
        phone = rules.normalise_phone(data.phone or "", country=country)
        if phone is None:
            raise InvalidInput(
                "phone is not a valid number: international (+33 6 12 34 56 78) or national in "
                "the member's country",
                field="phone",
            )
    return MemberData(
        data.name.strip(), data.email.strip(), data.language, country, data.product, city, phone
    )


def upsert(session: Session, *, ref: str, data: MemberData, now: datetime) -> tuple[Member, bool]:
    """Create or replace a member; returns it and whether it was created."""
    if not rules.is_valid_ref(ref):
        raise InvalidInput("member ref must be 1-64 characters [A-Za-z0-9._:-]", field="ref")
    clean = validate(data, session=session)
    member = repository.member_by_ref(session, ref, for_update=True)
    if member is not None:
        ensure_not_erased(member)
    elif rules.is_erased_ref(ref):
        # The prefix names erased members only (mail skips them, erasure treats them as done).
        raise InvalidInput(f"member refs starting with {ERASED_PREFIX!r} are reserved", field="ref")
    created = member is None
    if member is None:
        member = Member(ref=ref, created_at=now)
        session.add(member)
    member.name, member.email, member.language = clean.name, clean.email, clean.language
    member.country, member.product, member.updated_at = clean.country, clean.product, now
    member.city, member.phone = clean.city, clean.phone
    session.flush()
    return member, created


def find_member(session: Session, *, ref: str, for_update: bool = False) -> Member | None:
    """The member with this reference, or None; locked ``FOR UPDATE`` with ``for_update`` (an erasure)."""
    return repository.member_by_ref(session, ref, for_update=for_update)


ERASED_PREFIX = rules.ERASED_PREFIX


def is_erased(member: Member | MemberSummary) -> bool:
    """Whether the member was erased (GDPR): kept for the ledger, never written to again."""
    return rules.is_erased_ref(member.ref)


def ensure_not_erased(member: Member | MemberSummary, *, field: str = "ref") -> None:
    """409 ``member-erased`` when the member was erased. Every use case that writes about a member
    (their record, a contact, a call-back, a card order, the concierge's file…) calls it: the
    erasure blanked the member's personal data, and a later write naming the pseudonym would lay
    new personal data on it again. Reads still answer (the ledger and reports keep the row)."""
    if is_erased(member):
        raise MemberErased(f"member {member.ref!r} was erased and is never written to again", field=field)


def get_member(session: Session, *, ref: str, for_update: bool = False) -> Member:
    """The member with this reference; 404 when unknown (the reference was in the path)."""
    member = repository.member_by_ref(session, ref, for_update=for_update)
    if member is None:
        raise unknown_member(ref)
    return member


def get_member_with_product(session: Session, *, ref: str) -> tuple[Member, Product]:
    """The member with this reference and its card product, read together (a view that shows both:
    the 360); 404 when unknown."""
    found = repository.member_with_product_by_ref(session, ref)
    if found is None:
        raise unknown_member(ref)
    return found


def unknown_member(ref: str) -> UnknownMember:
    """The 404 for a reference in the path that names no member."""
    return UnknownMember(f"no member with ref {ref!r}", field="ref")


def member_id_by_ref() -> ScalarSelect[int]:
    """The id of the member whose reference is bound as ``p_ref``, as a sub-query: a read of another
    domain finds its rows by the member's reference in one statement instead of reading the member
    first (one round trip, not two). No row either way for an unknown reference: the caller that
    finds none tells an unknown member from one without rows with ``get_member``."""
    return repository.member_id_by_ref()


def get_member_for_body(session: Session, *, ref: str, field: str) -> Member:
    """The member a request body names; 422 when unknown (the body cannot be accepted)."""
    member = repository.member_by_ref(session, ref)
    if member is None:
        raise UnknownMemberInBody(f"no member with ref {ref!r}", field=field)
    return member


@dataclass(frozen=True)
class MemberSummary:
    """What the earn hot path (and the offer decision it runs) needs of a member."""

    id: int
    ref: str
    product: str
    country: str
    language: str


def find_member_summary(session: Session, *, ref: str) -> MemberSummary | None:
    """Id, ref, product, country and language of the member with this reference, or None (one
    narrow row where ``find_member`` loads the whole record)."""
    row = repository.member_summary_by_ref(session, ref)
    return None if row is None else MemberSummary(*row)


def get_member_summary_for_body(session: Session, *, ref: str, field: str) -> MemberSummary:
    """Id, ref, product, country and language of the member a body names; 422 when unknown."""
    member = find_member_summary(session, ref=ref)
    if member is None:
        raise UnknownMemberInBody(f"no member with ref {ref!r}", field=field)
    return member


def list_summaries_by_refs(session: Session, *, refs: list[str]) -> dict[str, MemberSummary]:
    """``get_member_summary_for_body`` for a batch of refs in one query: ref → summary, unknown
    refs absent (the caller refuses them as that function would)."""
    return {row[1]: MemberSummary(*row) for row in repository.member_summaries_by_refs(session, refs)}


def find_by_email(session: Session, *, email: str, limit: int = 2) -> list[Member]:
    """The members (erased ones left out) whose e-mail address is ``email``, case-insensitive;
    more than one means the address alone does not say who wrote."""
    return [m for m in repository.members_by_email(session, email, limit=limit + 5) if not is_erased(m)][
        :limit
    ]


def find_member_by_id(session: Session, *, member_id: int) -> Member | None:
    """The member with this internal id, or None."""
    return repository.member_by_id(session, member_id)


def list_member_ids(
    session: Session, *, products: list[str], countries: list[str], cities: list[str] | None = None
) -> list[int]:
    """Ids of the members with one of these products in one of these countries and cities
    (an empty list: any; cities compare case-insensitively)."""
    return repository.member_ids_matching(
        session, products=products, countries=countries, cities=cities or []
    )


def refs_of(session: Session, *, member_ids: list[int]) -> dict[int, str]:
    """id → ref of these members (an erased member's ref is its ``erased-…`` placeholder)."""
    return repository.refs_of(session, sorted(set(member_ids)))


def languages_of(session: Session, *, member_ids: list[int]) -> list[tuple[int, str]]:
    """(id, language) of each of these members not erased, by id (an erased member is told nothing)."""
    return repository.languages_of(session, sorted(member_ids), erased_like=rules.ERASED_PREFIX + "%")


def lock_shared(session: Session, *, member_id: int) -> None:
    """Serialise one member's decisions taken above the ledger (offer caps) on PostgreSQL, without
    blocking a concurrent earn. On SQLite every write transaction already holds the database's one
    write lock: nothing to send."""
    if session.get_bind().dialect.name != "sqlite":
        repository.lock_shared(session, member_id)


def lock_shared_members(session: Session, *, member_ids: list[int]) -> None:
    """``lock_shared`` for several members at once, in id order (every locker takes them in that
    order, so two batches never wait on each other in a circle)."""
    if member_ids and session.get_bind().dialect.name != "sqlite":
        repository.lock_shared_many(session, sorted(set(member_ids)))


def member_segments() -> Subquery:
    """A selectable of every member's ``id``, ``product``, ``country`` and ``created_at``, for reports
    above the customer record that count members by segment in SQL."""
    return repository.segments()


def product_of(session: Session, *, code: str) -> Product | None:
    """The card product with this code, or None."""
    return repository.product(session, code)


def list_products(session: Session) -> list[Product]:
    """Every card product."""
    return repository.products(session)


PRODUCT_TEXT_LENGTHS: dict[str, int] = {
    name: int(Product.__table__.c[name].type.length)  # type: ignore[attr-defined]
    for name in ("code", "name", "tier")
}
"""The longest code, name and tier a card product stores (its columns): ``sync_products``'s callers
refuse a longer one before writing (a 422 naming it, not PostgreSQL's 500)."""


def sync_products(session: Session, *, products: list[tuple[str, str, str, bool]]) -> None:
    """Create or update card products (code, name, tier, premium) from the programme file."""
    for code, name, tier, premium in products:
        row = repository.product(session, code)
        if row is None:
            session.add(Product(code=code, name=name, tier=tier, premium=premium))
        else:
            row.name, row.tier, row.premium = name, tier, premium
    session.flush()


@dataclass(frozen=True)
class Access:
    """Who read or changed a member's record, through which route, with what answer."""

    member_ref: str
    actor: str
    actor_role: str
    action: str  # read | change
    channel: str  # api | console
    method: str
    route: str
    status: int
    request_id: str | None
    at: datetime

    def values(self) -> dict[str, object]:
        """The access-log columns, texts cut to their columns' lengths (an entry never fails for
        a long key name or route)."""
        values: dict[str, object] = {"at": self.at, "status": self.status}
        for name, length in _ACCESS_TEXT_LENGTHS.items():
            text = getattr(self, name)
            values[name] = text[:length] if text is not None else None
        return values


_ACCESS_TEXT_LENGTHS: dict[str, int] = {
    column.name: column.type.length
    for column in AccessLogEntry.__table__.columns
    if isinstance(column.type, String) and column.type.length
}
"""The access log's text columns and their lengths, read from the table."""


def record_accesses(session: Session, accesses: Sequence[Access]) -> int:
    """Append accesses to the access log in order; an access to a ref naming no member is not
    written (nothing to attach it to). Returns the count written."""
    return repository.append_accesses(session, [(access.member_ref, access.values()) for access in accesses])


def list_access(
    session: Session, *, member_ref: str, limit: int, before_id: int | None
) -> list[dict[str, object]]:
    """The member's access log, newest first (``before_id`` pages back)."""
    member = get_member(session, ref=member_ref)
    return [
        {
            "id": row.id,
            "at": row.at,
            "actor": row.actor,
            "actor_role": row.actor_role,
            "action": row.action,
            "channel": row.channel,
            "method": row.method,
            "route": row.route,
            "status": row.status,
            "request_id": row.request_id,
        }
        for row in repository.access_entries(session, member_id=member.id, limit=limit, before_id=before_id)
    ]
