"""Co-brand miles owed to airline partners, and the programme's point liability."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from prevenance.common.ids import as_utc
from prevenance.customers.tables import Member
from prevenance.loyalty import programme, rules
from prevenance.loyalty.tables import (
    Account,
    CardTransaction,
    MilesExport,
    MilesExportLine,
    Posting,
    Redemption,
)


def export_miles(session: Session, *, export_date: date, now: datetime) -> list[dict[str, Any]]:
    """The miles each airline partner is owed up to the end of ``export_date``, per member.

    Each miles posting is sent once: a line's primary key is the posting id. Exporting a date
    again returns that date's stored lines and adds nothing.
    """
    prog = programme.current(session)
    miles_partners = {
        rule.code: rule.miles_partner for rule in prog.products.values() if rule.unit == "miles"
    }
    fallback = next(iter(miles_partners.values()), None)
    end = datetime.combine(export_date + timedelta(days=1), time.min, tzinfo=UTC)
    pending = session.execute(
        select(Posting.id, Posting.amount, Posting.credit_account_id, Member.ref, Member.product, Account.id)
        .join(Member, Member.id == Posting.member_id)
        .join(Account, (Account.member_id == Member.id) & (Account.unit == "miles"))
        .outerjoin(MilesExportLine, MilesExportLine.posting_id == Posting.id)
        .where(Posting.unit == "miles", Posting.created_at < end, MilesExportLine.posting_id.is_(None))
        .order_by(Posting.id)
    ).all()
    by_partner: dict[str, list[tuple[int, str, int]]] = {}
    for posting_id, amount, credit_id, ref, product, account_id in pending:
        partner = miles_partners.get(product) or fallback
        if partner is None:
            continue
        signed = amount if credit_id == account_id else -amount
        by_partner.setdefault(partner, []).append((posting_id, ref, signed))
    partners = set(by_partner) | set(filter(None, miles_partners.values()))
    files = []
    for partner in sorted(partners):
        existing = session.scalars(
            select(MilesExport).where(
                MilesExport.partner_code == partner, MilesExport.export_date == export_date.isoformat()
            )
        ).first()
        if existing is None:
            lines = by_partner.get(partner, [])
            existing = MilesExport(
                partner_code=partner,
                export_date=export_date.isoformat(),
                created_at=now,
                line_count=len(lines),
                total_miles=sum(m for _, _, m in lines),
            )
            session.add(existing)
            session.flush()
            session.add_all(
                MilesExportLine(posting_id=pid, export_id=existing.id, member_ref=ref, miles=miles)
                for pid, ref, miles in lines
            )
            session.flush()
        per_member = session.execute(
            select(MilesExportLine.member_ref, func.sum(MilesExportLine.miles))
            .where(MilesExportLine.export_id == existing.id)
            .group_by(MilesExportLine.member_ref)
            .order_by(MilesExportLine.member_ref)
        ).all()
        files.append(
            {
                "partner": partner,
                "export_date": export_date.isoformat(),
                "export_id": existing.id,
                "total_miles": existing.total_miles,
                "postings": existing.line_count,
                "members": [(ref, int(total)) for ref, total in per_member if total],
            }
        )
    return files


def list_member_ids_at_merchant(
    session: Session, *, merchant: str, start: datetime | None, end: datetime | None
) -> list[int]:
    """Ids of the members with a card transaction at ``merchant`` (exact name, case-insensitive)
    that occurred in ``[start, end)`` (an open bound does not restrict)."""
    statement = select(CardTransaction.member_id).where(
        func.lower(CardTransaction.merchant) == merchant.lower()
    )
    if start is not None:
        statement = statement.where(CardTransaction.occurred_at >= as_utc(start))
    if end is not None:
        statement = statement.where(CardTransaction.occurred_at < as_utc(end))
    return list(session.scalars(statement.distinct()))


def point_liability(session: Session, *, now: datetime) -> dict[str, Any]:
    """What a point issued now costs the brand (``rules.point_cost``), from the redemptions of the
    programme's liability window (default 365 days) that went through (completed or confirmed)."""
    current = programme.current_document(session)
    document = current[1] if current else programme.default_document()
    liability = dict(document.get("liability") or {})
    days = int(liability.get("window_days", rules.DEFAULT_LIABILITY["window_days"]))
    rows = session.execute(
        select(Redemption.kind, Redemption.points, Redemption.details).where(
            Redemption.status.in_(("completed", "confirmed")),
            Redemption.created_at >= now - timedelta(days=days),
            Redemption.created_at < now,
        )
    ).all()
    lines = [
        rules.RedeemedLine(
            kind=str(kind),
            key=str((details or {}).get("sku") or (details or {}).get("partner") or "") or None,
            points=int(points),
            quantity=int((details or {}).get("quantity") or 1),
        )
        for kind, points, details in rows
    ]
    found = rules.point_cost(
        lines, liability=liability, euro_per_point=programme.current(session).euro_per_point
    )
    return {**found, "window_days": days, "as_of": now.isoformat()}
