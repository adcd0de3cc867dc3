"""Every query of the customer record."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from prevenance.customers.tables import Member, Product


def member_by_ref(session: Session, ref: str, *, for_update: bool = False) -> Member | None:
    statement = select(Member).where(Member.ref == ref)
    if for_update:
        statement = statement.with_for_update()
    return session.scalars(statement).first()


def member_by_id(session: Session, member_id: int) -> Member | None:
    return session.get(Member, member_id)


def product(session: Session, code: str) -> Product | None:
    return session.get(Product, code)


def products(session: Session) -> list[Product]:
    return list(session.scalars(select(Product).order_by(Product.code)))
