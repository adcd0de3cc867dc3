"""FastAPI dependencies as ``Annotated`` aliases, so a route's signature reads as a sentence."""

from __future__ import annotations

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
    """The caller behind ``Authorization: Bearer <key>``; 401 when absent, unknown or revoked.

    Read from the database on every request (one lookup on the unique index of the key's hash), not
    from a per-process cache: a key revoked by ``prevenance keys revoke`` (or by an erasure) is
    refused at once by every worker process, which a cache in each of them could not promise.
    """
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated("send an API key as 'Authorization: Bearer <key>'")
    with read_session(engine) as session:
        principal = authenticate(session, credentials.credentials)
    if principal is None:
        raise Unauthenticated("unknown or revoked API key")
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
