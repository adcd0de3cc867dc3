"""Tables of the customer record."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, func
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
    # E.164 (``+33612345678``): the agent finds a caller by the number they call from.
    phone: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime())


class AccessLogEntry(Base):
    """Who read or changed which customer's record, when, through which route: append-only (the
    database refuses UPDATE and DELETE), queried by customer. Keyed by the member's internal id so
    that an erasure, which pseudonymises the reference, keeps the history attached."""

    __tablename__ = "customer_access_log"
    __table_args__ = (
        CheckConstraint("action IN ('read', 'change')", name="action"),
        Index("ix_customer_access_log_member_at", "member_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    member_id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"))
    at: Mapped[datetime] = mapped_column(UtcDateTime())
    actor: Mapped[str] = mapped_column(String(120))  # the API key's or console user's name
    actor_role: Mapped[str] = mapped_column(String(20))
    action: Mapped[str] = mapped_column(String(10))
    channel: Mapped[str] = mapped_column(String(10))  # api | console
    method: Mapped[str] = mapped_column(String(10))
    route: Mapped[str] = mapped_column(String(200))
    status: Mapped[int] = mapped_column(Integer)
    request_id: Mapped[str | None] = mapped_column(String(64), nullable=True)


# Prefix search of members (name, e-mail, ref; ``customers.search``), lower-cased. On PostgreSQL ``text_pattern_ops`` lets
# ``LIKE 'abc%'`` use the index whatever the database collation; on SQLite the search is written as a
# range (``>= 'abc' AND < 'abd'``), which the plain expression index serves.
_members = Member.__table__
for _column in ("name", "email", "ref"):
    Index(
        f"ix_console_members_{_column}_prefix",
        func.lower(_members.c[_column]).label(_column),
        postgresql_ops={_column: "text_pattern_ops"},
    )
