"""The rewards catalogue, airline and hotel partners, and pre-bought e-codes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from prevenance.loyalty.errors import (
    UnknownPartner,
)
from prevenance.loyalty.tables import (
    CatalogueItem,
    ECode,
    Partner,
)


def put_catalogue_item(
    session: Session, *, sku: str, name: str, points: int, stock: int, now: datetime
) -> tuple[CatalogueItem, bool]:
    """Create or replace a catalogue item."""
    item = session.get(CatalogueItem, sku, with_for_update=True)
    created = item is None
    if item is None:
        item = CatalogueItem(sku=sku)
        session.add(item)
    item.name, item.points, item.stock, item.updated_at = name, points, stock, now
    session.flush()
    return item, created


def list_catalogue(session: Session) -> list[CatalogueItem]:
    """Every catalogue item, by SKU."""
    return list(session.scalars(select(CatalogueItem).order_by(CatalogueItem.sku)))


def find_catalogue_item(session: Session, *, sku: str) -> CatalogueItem | None:
    """The catalogue item with this SKU, or None."""
    return session.get(CatalogueItem, sku)


def put_partner(
    session: Session,
    *,
    code: str,
    kind: str,
    name: str,
    points_per_block: int,
    units_per_block: int,
    now: datetime,
) -> tuple[Partner, bool]:
    """Create or replace a partner."""
    partner = session.get(Partner, code, with_for_update=True)
    created = partner is None
    if partner is None:
        partner = Partner(code=code)
        session.add(partner)
    partner.kind, partner.name, partner.updated_at = kind, name, now
    partner.points_per_block, partner.units_per_block = points_per_block, units_per_block
    session.flush()
    return partner, created


def list_partners(session: Session) -> list[Partner]:
    """Every partner, by code."""
    return list(session.scalars(select(Partner).order_by(Partner.code)))


def load_ecodes(
    session: Session, *, partner_code: str, points: int, codes: list[str], now: datetime
) -> dict[str, Any]:
    """Add codes to a partner's pool; a code already loaded is skipped, so loading is idempotent."""
    if session.get(Partner, partner_code) is None:
        raise UnknownPartner(f"no partner {partner_code!r}", field="code")
    existing = set(
        session.scalars(select(ECode.code).where(ECode.partner_code == partner_code, ECode.code.in_(codes)))
    )
    fresh = list(dict.fromkeys(c for c in codes if c not in existing))
    session.add_all(ECode(partner_code=partner_code, points=points, code=c, loaded_at=now) for c in fresh)
    session.flush()
    available = session.execute(
        select(func.count())
        .select_from(ECode)
        .where(ECode.partner_code == partner_code, ECode.points == points, ECode.redemption_id.is_(None))
    ).scalar_one()
    return {
        "partner": partner_code,
        "points": points,
        "loaded": len(fresh),
        "skipped": len(codes) - len(fresh),
        "available": int(available),
    }
