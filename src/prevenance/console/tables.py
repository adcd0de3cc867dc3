"""Tables of the console: its users (staff and members of the portal)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from prevenance.common.base import Base, UtcDateTime

ROLES = ("agent", "concierge", "supervisor", "marketing", "admin", "member")


class ConsoleUser(Base):
    """Someone who signs in to the console (staff) or to the portal (a member, ``member_id`` set).

    Only an argon2 hash of the password is kept. A member user is bound to one member, so the portal
    can never show another member's record. ``session_generation`` moves on when the user signs out or
    is disabled: a session cookie carrying an older value is refused (``users.find_signed_in``).
    """

    __tablename__ = "console_users"
    __table_args__ = (
        CheckConstraint(
            "role IN ('agent', 'concierge', 'supervisor', 'marketing', 'admin', 'member')", name="role"
        ),
        CheckConstraint("language IN ('fr', 'en')", name="language"),
        CheckConstraint("(role = 'member') = (member_id IS NOT NULL)", name="member_bound"),
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    username: Mapped[str] = mapped_column(String(120), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(20))
    member_id: Mapped[int | None] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), ForeignKey("members.id"), nullable=True, index=True
    )
    member_ref: Mapped[str | None] = mapped_column(String(64), nullable=True)
    language: Mapped[str] = mapped_column(String(2))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime())
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    session_generation: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
