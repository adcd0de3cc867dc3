"""Console users: who may sign in to the staff console or the member portal, and with what role.

Passwords are hashed with argon2id (``argon2-cffi`` defaults); a wrong password and an unknown user
take the same path (a hash is verified either way), so timing does not tell which usernames exist.

Sessions can be ended on the server: each user row carries a ``session_generation`` that the signed
cookie repeats. Signing out, disabling the user (or erasing its member) moves the counter on, and a
cookie carrying an older generation names nobody, however long its signature remains valid. The
check rides on the primary-key read that every request already makes for the user, so it costs no
query; the price is that signing out ends the user's sessions on every device, which is what a
staff member who signs out of a shared desk wants anyway.
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
from prevenance.common.bulk import rows_changed
from prevenance.common.problems import Conflict, InvalidInput, NotFound
from prevenance.console.tables import ROLES, ConsoleUser
from prevenance.customers import service as customers
from prevenance.views.privacy_columns import ERASED_PASSWORD

_HASHER = PasswordHasher()
_DUMMY_HASH = _HASHER.hash("prevenance-no-such-user")
_USERNAME = re.compile(r"^[A-Za-z0-9._@-]{3,120}$")
MIN_PASSWORD = 10


class UsernameTaken(Conflict):
    type_slug = "username-taken"
    title = "Username already taken"


class UnknownConsoleUser(NotFound):
    type_slug = "unknown-console-user"
    title = "Unknown console user"


@dataclass(frozen=True)
class ConsoleIdentity:
    """The signed-in user of one request."""

    id: int
    username: str
    role: Role
    language: str
    member_ref: str | None
    session_generation: int = 0  # the cookie must repeat it (see the module's docstring)


def _identity(row: ConsoleUser) -> ConsoleIdentity:
    return ConsoleIdentity(
        row.id, row.username, Role(row.role), row.language, row.member_ref, row.session_generation
    )


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
        member = customers.get_member_for_body(session, ref=member_ref, field="member_ref")
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
        session_generation=0,
    )
    session.add(row)
    session.flush()
    return _identity(row)


def erase_member_users(session: Session, *, member_id: int, pseudonym: str) -> int:
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
            session_generation=users.c.session_generation + 1,
        )
    )
    return rows_changed(result)


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


def find_user(session: Session, *, user_id: int) -> ConsoleIdentity | None:
    """An enabled user by id, or None. A member user speaks its member's language as the customer
    record holds it now (it may have changed since the user was made)."""
    row = session.get(ConsoleUser, user_id)
    if row is None or row.disabled:
        return None
    return _current_identity(session, row)


def find_signed_in(session: Session, *, user_id: int, generation: object) -> ConsoleIdentity | None:
    """The user a session cookie names, or None when the user is gone or disabled or the session was
    ended since (signed out, disabled): one primary-key read, the one every request makes anyway."""
    row = session.get(ConsoleUser, user_id)
    if row is None or row.disabled or not isinstance(generation, int) or generation != row.session_generation:
        return None
    return _current_identity(session, row)


def _current_identity(session: Session, row: ConsoleUser) -> ConsoleIdentity:
    identity = _identity(row)
    if row.member_id is not None:
        member = customers.find_member_by_id(session, member_id=row.member_id)
        if member is not None and member.language != identity.language:
            identity = ConsoleIdentity(
                row.id, row.username, identity.role, member.language, row.member_ref, row.session_generation
            )
    return identity


def end_sessions(session: Session, *, user_id: int) -> None:
    """Sign the user out everywhere: every cookie issued so far stops naming it (one atomic UPDATE)."""
    session.execute(
        update(ConsoleUser)
        .where(ConsoleUser.id == user_id)
        .values(session_generation=ConsoleUser.session_generation + 1)
    )


def disable_user(session: Session, *, username: str) -> ConsoleIdentity:
    """Refuse the user's sign-ins from now on and end its open sessions (idempotent); 404 when no
    such user. Used by ``prevenance console disable-user``."""
    row = session.scalars(select(ConsoleUser).where(ConsoleUser.username == username)).first()
    if row is None:
        raise UnknownConsoleUser(f"no console user {username!r}", field="username")
    _disable(session, [row.id])
    session.refresh(row)
    return _identity(row)


def disable_member_users(session: Session, *, member_id: int) -> int:
    """Disable every portal sign-in bound to a member and end its sessions (for erasure); the count
    of users newly disabled. Idempotent: a second call disables nothing more."""
    ids = list(
        session.scalars(
            select(ConsoleUser.id).where(ConsoleUser.member_id == member_id, ConsoleUser.disabled.is_(False))
        )
    )
    _disable(session, ids)
    return len(ids)


def _disable(session: Session, ids: list[int]) -> None:
    if ids:
        session.execute(
            update(ConsoleUser)
            .where(ConsoleUser.id.in_(ids))
            .values(disabled=True, session_generation=ConsoleUser.session_generation + 1)
        )
