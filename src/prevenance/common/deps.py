"""FastAPI dependencies as ``Annotated`` aliases, so a route's signature reads as a sentence."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine

from prevenance.common.auth import Principal, Role, authenticate
from prevenance.common.clock import Clock
from prevenance.common.problems import Forbidden, Unauthenticated
from prevenance.db import read_session

_bearer = HTTPBearer(auto_error=False, description="An API key: `Authorization: Bearer <key>`")
_KEY_CACHE_SECONDS = 10.0


class _KeyCache:
    """Recently authenticated keys, so the hot path does not query ``api_keys`` on every call.

    A revoked key stops working within ``_KEY_CACHE_SECONDS``. Member keys are never cached: an
    erasure revokes them and the member's ref may be given to someone else at once, so each call
    of a member key looks its key up (one indexed read).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[float, Principal]] = {}

    def get(self, secret: str) -> Principal | None:
        with self._lock:
            hit = self._entries.get(secret)
        if hit and hit[0] > time.monotonic():
            return hit[1]
        return None

    def put(self, secret: str, principal: Principal) -> None:
        with self._lock:
            if len(self._entries) > 10_000:
                self._entries.clear()
            self._entries[secret] = (time.monotonic() + _KEY_CACHE_SECONDS, principal)


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


DbEngine = Annotated[Engine, Depends(get_engine)]
AppClock = Annotated[Clock, Depends(get_clock)]


def current_principal(
    request: Request,
    engine: DbEngine,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller behind ``Authorization: Bearer <key>``; 401 when absent or unknown."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated("send an API key as 'Authorization: Bearer <key>'")
    cache: _KeyCache = request.app.state.key_cache
    secret = credentials.credentials
    principal = cache.get(secret)
    if principal is None:
        with read_session(engine) as session:
            principal = authenticate(session, secret)
        if principal is None:
            raise Unauthenticated("unknown or revoked API key")
        if principal.role is not Role.MEMBER:
            cache.put(secret, principal)
    request.state.principal = principal  # read by the access-log middleware after the response
    ref = request.path_params.get("ref")
    if ref is not None and request.url.path.startswith("/v1/members/"):
        # Before the body is even read: a member key never acts on another member's routes.
        ensure_member_scope(principal, ref)
    return principal


CurrentKey = Annotated[Principal, Depends(current_principal)]


def require(*roles: Role) -> Callable[[Principal], Principal]:
    """A dependency admitting the given roles (and admin); 403 for any other role."""
    admitted = {Role.ADMIN, *roles}

    def _check(principal: CurrentKey) -> Principal:
        if principal.role not in admitted:
            raise Forbidden(
                f"role {principal.role.value!r} may not do this; allowed: "
                + ", ".join(sorted(r.value for r in admitted))
            )
        return principal

    _check.admitted_roles = frozenset(admitted)  # type: ignore[attr-defined]  # read by the authorisation matrix
    return _check


def ensure_member_scope(principal: Principal, member_ref: str) -> None:
    """A member key reaches only its own member; staff keys reach everyone."""
    if principal.role is Role.MEMBER and principal.member_ref != member_ref:
        raise Forbidden("a member key may only act for its own member", field="member_ref")


def new_key_cache() -> _KeyCache:
    return _KeyCache()


STAFF_READ = (
    Role.AGENT,
    Role.CONCIERGE,
    Role.SUPERVISOR,
    Role.MARKETING,
    Role.INTEGRATOR,
    Role.MEMBER,
)
Admin = Annotated[Principal, Depends(require())]
Reader = Annotated[Principal, Depends(require(*STAFF_READ))]
