"""Console users: who may sign in to the staff console or the member portal, and with what role.

Passwords are hashed with argon2id (``argon2-cffi`` defaults); a wrong password and an unknown user
take the same path (a hash is verified either way), so timing does not tell which usernames exist.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from sqlalchemy import String, Table, cast, literal, select, update
from sqlalchemy.orm import Session

from prevenance.common.auth import Role
from prevenance.common.problems import Conflict, InvalidInput
from prevenance.console.tables import ROLES, ConsoleUser
from prevenance.customers import service as customers

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("prevenance-no-such-user")
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{3,120}$")
MIN_PASSWORD = 10


class UsernameTaken(Conflict):
    type_slug = "username-taken"
    title = "Username already taken"


@dataclass(frozen=True)
class ConsoleIdentity:
    """The signed-in user of one request."""

    id: int
    username: str
    role: Role
    language: str
    member_ref: str | None


def _identity(row: ConsoleUser) -> ConsoleIdentity:
    return ConsoleIdentity(row.id, row.username, Role(row.role), row.language, row.member_ref)


def create_user(
    session: Session,
    *,
    username: str,
    password: str,
    role: str,
    language: str,
    member_ref: str | None,
    now: datetime,
) -> ConsoleIdentity:
    """Create a console user; a member user is bound to an existing member and gets its language."""
    if not _USERNAME.match(username):
        raise InvalidInput("username must be 3-120 characters [A-Za-z0-9._@-]", field="username")
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD} characters", field="password")
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}", field="role")
    if language not in ("fr", "en"):
        raise InvalidInput("language must be 'fr' or 'en'", field="language")
    member_id = None
    if role == Role.MEMBER.value:
        if not member_ref:
            raise InvalidInput("a member user needs the member it signs in as", field="member_ref")
        member = customers.get_for_body_or_raise(session, ref=member_ref, field="member_ref")
        member_id, language = member.id, member.language
    elif member_ref:
        raise InvalidInput("only a member user is bound to a member", field="member_ref")
    if session.scalars(select(ConsoleUser.id).where(ConsoleUser.username == username)).first() is not None:
        raise UsernameTaken(f"username {username!r} is taken", field="username")
    row = ConsoleUser(
        username=username,
        password_hash=_HASHER.hash(password),
        role=role,
        member_id=member_id,
        member_ref=member_ref if member_id is not None else None,
        language=language,
        created_at=now,
        disabled=False,
    )
    session.add(row)
    session.flush()
    return _identity(row)


ERASED_PASSWORD = "!erased"  # not an argon2 hash: no password ever verifies against it


def disable_member_users(session: Session, *, member_id: int, pseudonym: str) -> int:
    """Disable every portal user of an erased member and unlink it from the person: the username
    (which may be their e-mail) and the member ref become the pseudonym, the password hash an
    unusable marker. The user stays bound to the erased member row, so a member later created with
    the same ref is never theirs, and its session cookie dies with it (``get`` refuses a disabled
    user). Returns how many users were bound; repeating it changes nothing."""
    users: Table = ConsoleUser.__table__  # type: ignore[assignment]
    result = session.execute(
        update(users)
        .where(users.c.member_id == member_id)
        .values(
            disabled=True,
            username=literal(f"{pseudonym}.") + cast(users.c.id, String),
            member_ref=pseudonym,
            password_hash=ERASED_PASSWORD,
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)


def authenticate(session: Session, *, username: str, password: str) -> ConsoleIdentity | None:
    """The user behind a username and password, or None (unknown, wrong password or disabled)."""
    row = session.scalars(select(ConsoleUser).where(ConsoleUser.username == username)).first()
    try:
        _HASHER.verify(row.password_hash if row else _DUMMY_HASH, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return None
    if row is None or row.disabled:
        return None
    return _identity(row)


def get(session: Session, *, user_id: int) -> ConsoleIdentity | None:
    """An enabled user by id (a session cookie names it), or None. A member user speaks its member's
    language as the customer record holds it now (it may have changed since the user was made)."""
    row = session.get(ConsoleUser, user_id)
    if row is None or row.disabled:
        return None
    identity = _identity(row)
    if row.member_id is not None:
        member = customers.get_by_id(session, member_id=row.member_id)
        if member is not None and member.language != identity.language:
            identity = ConsoleIdentity(row.id, row.username, identity.role, member.language, row.member_ref)
    return identity
