"""FastAPI dependencies as ``Annotated`` aliases, so a route's signature reads as a sentence."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from fastapi.security.utils import get_authorization_scheme_param
from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.types import Scope

from prevenance.common import key_lookup
from prevenance.common.auth import Principal, Role, lookup_principal
from prevenance.common.clock import Clock
from prevenance.common.problems import Forbidden, Unauthenticated

_BEARER_DESCRIPTION = "An API key: `Authorization: Bearer <key>`"


# The dependencies below are ``async def``: FastAPI runs a plain ``def`` dependency in the thread
# pool, a hop to a worker thread and back on every request for what is an attribute read.


async def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


async def get_clock(request: Request) -> Clock:
    clock: Clock = request.app.state.clock
    return clock


DbEngine = Annotated[Engine, Depends(get_engine)]
AppClock = Annotated[Clock, Depends(get_clock)]


def _bearer_secret(authorization: str | None) -> str:
    """The key of an ``Authorization: Bearer <key>`` header; 401 when absent or malformed."""
    scheme, _, secret = (authorization or "").strip().partition(" ")
    secret = secret.strip()
    if scheme.lower() != "bearer" or not secret:
        raise Unauthenticated("send an API key as 'Authorization: Bearer <key>'")
    return secret


async def find_principal(engine: Engine, secret: str) -> Principal | None:
    """The key's principal, or None when unknown or revoked, read as every request reads it.

    From the database each time (one lookup on the unique index of the key's hash), not from a
    per-process cache: a key revoked by ``prevenance keys revoke`` (or by an erasure) is refused at
    once by every worker process. Without stalling the event loop: on SQLite the read of a local
    file takes tens of microseconds, less than a hop to a worker thread; on PostgreSQL the lookups
    of concurrent requests share one statement on the loop's own connection (``common.key_lookup``);
    another server driver's round trip goes to a thread.
    """
    if engine.dialect.name == "sqlite":
        return lookup_principal(engine, secret)
    if key_lookup.coalesces(engine):
        return await key_lookup.key_reader(engine).principal(secret)
    return await run_in_threadpool(lookup_principal, engine, secret)


async def _lookup_for_request(engine: Engine, secret: str) -> Principal:
    """The key's principal; 401 when unknown or revoked."""
    principal = await find_principal(engine, secret)
    if principal is None:
        raise Unauthenticated("unknown or revoked API key")
    return principal


def _check_member_scope(principal: Principal, path: str, path_params: dict[str, Any]) -> None:
    ref = path_params.get("ref")
    if ref is not None and path.startswith("/v1/members/"):
        # Before the body is even read: a member key never acts on another member's routes.
        ensure_member_scope(principal, ref)


async def authenticate_before_body(scope: Scope) -> Principal:
    """The caller of a keyed route, resolved from the headers alone (the body is not read yet):
    401 for a missing, malformed, unknown or revoked key, 403 for a member key on another member's
    route. One indexed read (``find_principal``)."""
    app = scope["app"]
    authorization = Headers(scope=scope).get("authorization")
    secret = _bearer_secret(authorization)
    principal = await _lookup_for_request(app.state.engine, secret)
    _check_member_scope(principal, str(scope.get("path", "")), scope.get("path_params") or {})
    return principal


class KeyCheck(SecurityBase):
    """The caller behind ``Authorization: Bearer <key>``, as one dependency: 401 when the key is
    absent, malformed, unknown or revoked, 403 for a member key on another member's route and, when
    ``admitted_roles`` is given, 403 for any other role.

    One dependency rather than a chain (bearer credentials, engine, principal, role): FastAPI pays
    for each dependency it solves on every request. The OpenAPI document is the same as with
    FastAPI's ``HTTPBearer``: the same scheme name and model. Keyed routes have already resolved the
    principal before reading the body (``prevenance.request_guards``): it is reused.
    """

    def __init__(self, admitted_roles: frozenset[Role] | None = None) -> None:
        self.model = HTTPBearerModel(description=_BEARER_DESCRIPTION)
        self.scheme_name = "HTTPBearer"
        self.admitted_roles = admitted_roles
        self._refusal = (
            None
            if admitted_roles is None
            else "; allowed: " + ", ".join(sorted(role.value for role in admitted_roles))
        )

    async def __call__(self, request: Request) -> Principal:
        principal: Principal | None = getattr(request.state, "principal", None)
        if principal is None:
            scheme, secret = get_authorization_scheme_param(request.headers.get("Authorization"))
            if scheme.lower() != "bearer" or not secret:
                raise Unauthenticated("send an API key as 'Authorization: Bearer <key>'")
            principal = await _lookup_for_request(request.app.state.engine, secret)
            request.state.principal = principal  # read by the access-log middleware after the response
        _check_member_scope(principal, request.scope.get("path", ""), request.path_params)
        if self.admitted_roles is not None and principal.role not in self.admitted_roles:
            raise Forbidden(f"role {principal.role.value!r} may not do this{self._refusal}")
        return principal


# Any valid key, whatever its role.
current_principal = KeyCheck()
CurrentKey = Annotated[Principal, Depends(current_principal)]


def require(*roles: Role) -> KeyCheck:
    """A dependency admitting the given roles (and admin); 403 for any other role. Its
    ``admitted_roles`` are read by the authorisation matrix."""
    return KeyCheck(frozenset({Role.ADMIN, *roles}))


def ensure_member_scope(principal: Principal, member_ref: str) -> None:
    """A member key reaches only its own member; staff keys reach everyone."""
    if principal.role is Role.MEMBER and principal.member_ref != member_ref:
        raise Forbidden("a member key may only act for its own member", field="member_ref")


ACCESSED_MEMBER = "accessed_member_ref"
"""The request-state key naming the member a route without ``{ref}`` read (see below)."""


def note_member_access(request: Request, member_ref: str) -> None:
    """Say that this request read ``member_ref``'s record through a route keyed by something else
    (a contact, a case, a call-back by its id): the customer access log (``access_audit``) records
    the call as it records every ``/v1/members/{ref}…`` call, so no read of a member's record goes
    unlogged for want of their ref in the path."""
    request.state.accessed_member_ref = member_ref


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
