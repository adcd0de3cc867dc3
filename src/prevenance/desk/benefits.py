"""Card benefits: the catalogue by product, usages, explanations given on a contact, and what
the offers and reports read of them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Subquery, bindparam, func, literal, select, union_all
from sqlalchemy.orm import Session

from prevenance.common import outbox, reads
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import as_utc, fingerprint_of, iso_z
from prevenance.common.problems import InvalidInput
from prevenance.common.reads import Read
from prevenance.customers import service as customers
from prevenance.desk import config, rules
from prevenance.desk.errors import (
    BenefitNotEntitled,
    UnknownBenefit,
    UnknownContact,
)
from prevenance.desk.tables import (
    BenefitExplanation,
    BenefitUsage,
    Contact,
)

if TYPE_CHECKING:
    from prevenance.customers.tables import Member


def benefit_labels(code: str) -> tuple[str, str]:
    """A benefit's French and English labels (its code when the catalogue does not know it)."""
    benefit = config.current().benefits.catalogue.get(code)
    return (benefit.label_fr, benefit.label_en) if benefit else (code, code)


def _entitled_or_raise(product: str, benefit: str, *, field: str) -> rules.Benefit:
    try:
        return rules.check_entitled(config.current().benefits, product=product, benefit=benefit, field=field)
    except rules.RuleViolation as error:
        known = benefit in config.current().benefits.catalogue
        raise (BenefitNotEntitled if known else UnknownBenefit)(str(error), field=error.field)


def list_benefit_catalogue() -> list[dict[str, Any]]:
    """The configured benefits with French and English labels and the products entitled to each."""
    return [
        {"code": b.code, "label_fr": b.label_fr, "label_en": b.label_en, "products": sorted(b.products)}
        for b in config.current().benefits.catalogue.values()
    ]


@dataclass(frozen=True)
class BenefitUsageInput:
    """A member used a benefit, as the system that served it reports it."""

    id: str
    member_ref: str
    benefit: str
    used_at: datetime
    source: str | None = None

    def fingerprint(self) -> str:
        return fingerprint_of(self)


def _usage_body(row: BenefitUsage, member_ref: str) -> dict[str, Any]:
    label_fr, label_en = benefit_labels(row.benefit)
    return {
        "id": row.id,
        "member_ref": member_ref,
        "benefit": row.benefit,
        "label_fr": label_fr,
        "label_en": label_en,
        "used_at": iso_z(row.used_at),
        "source": row.source,
    }


def record_benefit_usage(session: Session, *, usage: BenefitUsageInput, by: str, now: datetime) -> Outcome:
    """Record that a member used a benefit their card is entitled to, once per usage id.

    ``source`` defaults to the caller's key name. Which explanation the usage is credited to is
    not stored: the attribution report computes it, so an explanation logged late still counts.
    """
    return run_idempotent(
        session,
        scope="benefit_usage",
        key=usage.id,
        fingerprint=usage.fingerprint(),
        now=now,
        produce=lambda: _record_benefit_usage(session, data=usage, by=by, now=now),
    )


def _record_benefit_usage(session: Session, *, data: BenefitUsageInput, by: str, now: datetime) -> Outcome:
    member = customers.get_member(session, ref=data.member_ref)
    customers.ensure_not_erased(member)
    _entitled_or_raise(member.product, data.benefit, field="benefit")
    used_at = as_utc(data.used_at)
    if used_at > now:
        raise InvalidInput("used_at must not be in the future", field="used_at")
    row = BenefitUsage(
        id=data.id,
        member_id=member.id,
        benefit=data.benefit,
        used_at=used_at,
        source=data.source or by,
        created_at=now,
    )
    session.add(row)
    session.flush()
    body = _usage_body(row, member.ref)
    outbox.emit(session, type="benefit.used", payload=body, now=now)
    return Outcome(201, body)


def explain_benefits(
    session: Session, *, contact_id: str, benefits: Sequence[str], now: datetime
) -> dict[str, Any]:
    """Record that the contact's agent explained these benefits; explaining one again changes nothing.

    Every benefit must be one the member's card is entitled to (else 422 on ``benefits``). The
    contact row is locked so two concurrent calls for one contact do not both insert a benefit.
    """
    contact = session.get(Contact, contact_id, with_for_update=True)
    if contact is None:
        raise UnknownContact(f"no contact {contact_id!r}", field="id")
    member = customers.find_member_by_id(session, member_id=contact.member_id)
    assert member is not None
    customers.ensure_not_erased(member, field="id")
    wanted = list(dict.fromkeys(benefits))
    for code in wanted:
        _entitled_or_raise(member.product, code, field="benefits")
    existing = set(
        session.scalars(select(BenefitExplanation.benefit).where(BenefitExplanation.contact_id == contact.id))
    )
    added = [code for code in wanted if code not in existing]
    for code in added:
        session.add(
            BenefitExplanation(
                contact_id=contact.id,
                benefit=code,
                member_id=member.id,
                agent=contact.agent,
                explained_at=contact.started_at,
                created_at=now,
            )
        )
    body = {
        "contact_id": contact.id,
        "member_ref": member.ref,
        "agent": contact.agent,
        "explained_at": iso_z(contact.started_at),
        "benefits": sorted(existing | set(added)),
    }
    if added:
        session.flush()
        outbox.emit(session, type="benefit.explained", payload={**body, "added": added}, now=now)
    return body


_LAST_USED_AND_EXPLAINED = union_all(
    select(
        literal("used").label("kind"),
        BenefitUsage.benefit.label("benefit"),
        func.max(BenefitUsage.used_at).label("at"),
    )
    .where(BenefitUsage.member_id == bindparam("p_member"))
    .group_by(BenefitUsage.benefit),
    select(literal("explained"), BenefitExplanation.benefit, func.max(BenefitExplanation.explained_at))
    .where(BenefitExplanation.member_id == bindparam("p_member"))
    .group_by(BenefitExplanation.benefit),
)
"""When the member last used and was last told of each benefit, in one statement (the 360 asks)."""


def list_member_benefits(session: Session, *, member_ref: str, now: datetime) -> dict[str, Any]:
    """The benefits the member's card is entitled to, when each was last used and last explained,
    and whether it went unused for the last twelve months (so the agent can tell the customer)."""
    member = customers.get_member(session, ref=member_ref)
    return {
        "member_ref": member.ref,
        "product": member.product,
        "items": reads.run(session, member_benefits(member, now=now)),
    }


def member_benefits(member: Member, *, now: datetime) -> Read[list[dict[str, Any]]]:
    """The benefits of ``list_member_benefits``, as a read a view sends with others."""
    return Read(
        _LAST_USED_AND_EXPLAINED, {"p_member": member.id}, lambda rows: _benefit_items(member, rows, now)
    )


def _benefit_items(member: Member, rows: Sequence[Any], now: datetime) -> list[dict[str, Any]]:
    last: dict[str, dict[str, datetime]] = {"used": {}, "explained": {}}
    for kind, code, moment in rows:
        last[kind][code] = moment
    last_used, last_explained = last["used"], last["explained"]
    items = []
    for benefit in rules.entitled_benefits(config.current().benefits, product=member.product):
        used = last_used.get(benefit.code)
        used = as_utc(used) if used is not None else None  # max() comes back naive on SQLite
        explained = last_explained.get(benefit.code)
        items.append(
            {
                "code": benefit.code,
                "label_fr": benefit.label_fr,
                "label_en": benefit.label_en,
                "last_used_at": iso_z(used),
                "last_explained_at": iso_z(as_utc(explained)) if explained is not None else None,
                "unused_12m": rules.unused_for_12_months(used, now=now),
            }
        )
    return items


_COUNT_BENEFIT_USAGES = select(func.count()).where(
    BenefitUsage.member_id == bindparam("p_member"), BenefitUsage.used_at >= bindparam("p_since")
)


def count_benefit_usages(session: Session, *, member_id: int, since: datetime) -> int:
    """How many benefit usages a member recorded since a moment (a behavioural feature of offers,
    read on the decision of every earning payment: one prepared query)."""
    return int(session.execute(_COUNT_BENEFIT_USAGES, {"p_member": member_id, "p_since": since}).scalar_one())


def benefit_usage_events(session: Session, *, since: datetime, until: datetime) -> list[tuple[int, datetime]]:
    """(member id, used at) of every benefit usage in ``[since, until)``: the offers model's training
    set counts them per member and reference date, as the decision counts them one member at a time."""
    rows = session.execute(
        select(BenefitUsage.member_id, BenefitUsage.used_at).where(
            BenefitUsage.used_at >= since, BenefitUsage.used_at < until
        )
    )
    return [(int(member_id), used_at) for member_id, used_at in rows]


def benefit_usages() -> Subquery:
    """A selectable of every benefit usage's ``member_id``, ``benefit`` and ``used_at``, for reports
    above the desk that count usages in SQL."""
    return select(BenefitUsage.member_id, BenefitUsage.benefit, BenefitUsage.used_at).subquery(
        "benefit_usages"
    )


def member_unused_benefits(member: Member, *, now: datetime) -> Read[list[dict[str, Any]]]:
    """The entitled benefits the member has not used in the last twelve months: the 360's part
    (``common.reads``)."""
    return Read(
        _LAST_USED_AND_EXPLAINED,
        {"p_member": member.id},
        lambda rows: [b for b in _benefit_items(member, rows, now) if b["unused_12m"]],
    )
