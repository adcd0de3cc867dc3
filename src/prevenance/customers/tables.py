"""Tables of the customer record."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from prevenance.common.base import Base, UtcDateTime


class Product(Base):
    """A card product (green, gold, platinum…): its tier and whether it is premium."""

    __tablename__ = "products"

    code: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    tier: Mapped[str] = mapped_column(String(40))
    premium: Mapped[bool] = mapped_column(Boolean, default=False)


class Member(Base):
    """A customer of the brand, known by the issuer's own reference."""

    __tablename__ = "members"
    __table_args__ = (
        CheckConstraint("language IN ('fr', 'en')", name="language"),
        CheckConstraint("length(country) = 2", name="country"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    ref: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254), index=True)
    language: Mapped[str] = mapped_column(String(2))
    country: Mapped[str] = mapped_column(String(2), index=True)
    product: Mapped[str] = mapped_column(ForeignKey("products.code"))
    # Where the member lives: targets city-wide incidents and is the default card delivery city.
    city: Mapped[str | None] = mapped_column(String(120), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())
