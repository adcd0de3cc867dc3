"""Demo sign-ins: one console user per staff role and one portal user, printed by ``make demo``
(``prevenance console demo-users``).

Passwords are drawn afresh on every call (and reset for users that already exist), so the printed
ones always work and none is written in the source.
"""

from __future__ import annotations

import secrets

from argon2 import PasswordHasher
from sqlalchemy import Engine, select

from prevenance.common.clock import SystemClock
from prevenance.console import users
from prevenance.console.tables import ConsoleUser
from prevenance.customers.tables import Member
from prevenance.db import unit_of_work

STAFF = (
    ("demo-agent", "agent"),
    ("demo-concierge", "concierge"),
    ("demo-supervisor", "supervisor"),
    ("demo-marketing", "marketing"),
    ("demo-admin", "admin"),
)
MEMBER_USER = "demo-member"


def create_demo_users(engine: Engine) -> list[tuple[str, str, str]]:
    """Create (or reset) the demo users; returns (username, password, role) for each.

    The portal user signs in as the first member of the database (the demo's first member).
    """
    now = SystemClock().now()
    created: list[tuple[str, str, str]] = []
    with unit_of_work(engine) as session:
        first = session.scalars(select(Member.ref).order_by(Member.id).limit(1)).first()
        wanted = list(STAFF) + ([(MEMBER_USER, "member")] if first else [])
        for username, role in wanted:
            password = secrets.token_urlsafe(9)
            row = session.scalars(select(ConsoleUser).where(ConsoleUser.username == username)).first()
            if row is None:
                users.create_user(
                    session,
                    username=username,
                    password=password,
                    role=role,
                    language="fr",
                    member_ref=first if role == "member" else None,
                    now=now,
                )
            else:
                row.password_hash, row.disabled = PasswordHasher().hash(password), False
            created.append((username, password, role))
    return created
