"""The console's request plumbing: signed session cookie, CSRF, roles, language and page rendering.

The session is a cookie signed with ``settings.secret_key`` (itsdangerous), HttpOnly, SameSite=Lax
and Secure when the public URL is https, holding the user id, the user's session generation (signing
out or disabling the user moves it on, so a replayed cookie names nobody) and a CSRF token. Every POST form carries that token in a hidden
field and is refused (403) when it does not match: the double-submit of a token an attacker's page
cannot read. Anonymous visitors get a session too, so the sign-in form is protected the same way;
signing in issues a fresh token (no session fixation).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from itsdangerous import BadSignature, URLSafeTimedSerializer
from pydantic import ValidationError
from sqlalchemy import Engine

from prevenance.common.auth import Role
from prevenance.common.clock import Clock
from prevenance.common.problems import PrevenanceError
from prevenance.console import i18n, users
from prevenance.console.users import ConsoleIdentity
from prevenance.db import read_session
from prevenance.settings import Settings

SESSION_COOKIE = "pv_session"
LANG_COOKIE = "pv_lang"
_SALT = "prevenance.console.session"
_HERE = Path(__file__).parent
# Who may open which staff screen (admin may open all of them; the portal is for members only).
DESK = (Role.AGENT, Role.SUPERVISOR)
CONCIERGE = (Role.CONCIERGE,)
DASHBOARD = (Role.SUPERVISOR,)
MARKETING = (Role.MARKETING,)
EXECUTIVE = (Role.SUPERVISOR, Role.MARKETING)
TEMPLATES = Jinja2Templates(directory=str(_HERE / "templates"))
STATIC_DIR = _HERE / "static"


class SignInRequired(Exception):
    """No valid session: the page sends the visitor to the sign-in form."""


class PageForbidden(Exception):
    """A signed-in user whose role may not see the page."""


class CsrfRejected(Exception):
    """A POST whose CSRF token is missing or does not match the session's."""


@dataclass
class Page:
    """Everything a page handler needs of its request: who, in which language, with which token."""

    request: Request
    engine: Engine
    clock: Clock
    settings: Settings
    user: ConsoleIdentity | None
    lang: str
    csrf: str
    set_session: dict[str, Any] | None = None
    form: dict[str, str] = field(default_factory=dict)

    def t(self, key: str, **values: Any) -> str:
        return i18n.translate(self.lang, key, **values)

    @property
    def now(self) -> datetime:
        return self.clock.now()

    def require(self, *roles: Role) -> ConsoleIdentity:
        """The signed-in user when its role is admitted (admin always is, except in the portal)."""
        if self.user is None:
            raise SignInRequired()
        admitted = set(roles) if Role.MEMBER in roles else {Role.ADMIN, *roles}
        if self.user.role not in admitted:
            raise PageForbidden()
        return self.user


def _serializer(settings: Settings) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(settings.secret_key, salt=_SALT)


def read_cookie(request: Request, settings: Settings) -> dict[str, Any] | None:
    """The session payload of a valid, unexpired cookie, else None."""
    raw = request.cookies.get(SESSION_COOKIE)
    if not raw:
        return None
    try:
        data = _serializer(settings).loads(raw, max_age=settings.console_session_hours * 3600)
    except BadSignature:  # SignatureExpired derives from it
        return None
    return data if isinstance(data, dict) and isinstance(data.get("c"), str) else None


async def page(request: Request) -> Page:
    """The ``Page`` of a request (a FastAPI dependency); reads the POST form and checks its CSRF."""
    state = request.app.state
    settings: Settings = state.settings
    engine: Engine = state.engine
    data = read_cookie(request, settings)
    set_session = None
    if data is None:
        data = {"u": None, "c": secrets.token_urlsafe(24)}
        set_session = data
    user = _signed_in(engine, data)
    form: dict[str, str] = {}
    if request.method == "POST":
        raw = await request.form()
        form = {k: v for k, v in raw.items() if isinstance(v, str)}
        sent = form.pop("csrf", "")
        if set_session is not None or not hmac.compare_digest(sent.encode(), str(data["c"]).encode()):
            raise CsrfRejected()
    lang = i18n.choose(
        cookie=request.cookies.get(LANG_COOKIE),
        user_language=user.language if user else None,
        accept_language=request.headers.get("accept-language"),
    )
    return Page(request, engine, state.clock, settings, user, lang, str(data["c"]), set_session, form)


def _signed_in(engine: Engine, data: dict[str, Any]) -> ConsoleIdentity | None:
    """The user a session names, when that session has not been ended since."""
    if not isinstance(data.get("u"), int):
        return None
    with read_session(engine) as session:
        return users.find_signed_in(session, user_id=data["u"], generation=data.get("g"))


def session_payload(user: ConsoleIdentity | None) -> dict[str, Any]:
    """A fresh session (new CSRF token) for a user who just signed in, or an anonymous one."""
    if user is None:
        return {"u": None, "c": secrets.token_urlsafe(24)}
    return {"u": user.id, "g": user.session_generation, "c": secrets.token_urlsafe(24)}


def secure_cookie(request: Request, settings: Settings) -> bool:
    """Cookies carry ``Secure`` when the public URL is https (or this request came over https)."""
    return settings.secure_cookies or request.url.scheme == "https"


def write_session(response: Response, page: Page, payload: dict[str, Any]) -> None:
    """Set the signed session cookie (HttpOnly, SameSite=Lax; Secure when the public URL is https)."""
    response.set_cookie(
        SESSION_COOKIE,
        _serializer(page.settings).dumps(payload),
        max_age=page.settings.console_session_hours * 3600,
        httponly=True,
        samesite="lax",
        secure=secure_cookie(page.request, page.settings),
        path="/",
    )


def render(page: Page, template: str, status_code: int = 200, **data: Any) -> HTMLResponse:
    """A page from its template, with the context every template uses."""
    response = TEMPLATES.TemplateResponse(
        page.request,
        template,
        {"p": page, "t": page.t, "lang": page.lang, "user": page.user, "csrf": page.csrf, **data},
        status_code=status_code,
    )
    if page.set_session is not None:
        write_session(response, page, page.set_session)
    return response


def redirect(page: Page, url: str) -> RedirectResponse:
    """303 to ``url`` (after a POST, so a reload does not post again)."""
    response = RedirectResponse(url, status_code=303)
    if page.set_session is not None:
        write_session(response, page, page.set_session)
    return response


def safe_next(url: str | None, default: str) -> str:
    """A local path to go back to; anything else (another site, ``//host``) becomes ``default``."""
    if url and url.startswith("/") and not url.startswith("//") and "\\" not in url:
        return url
    return default


# --- errors next to their field, in the user's language ----------------------------------------

_PYDANTIC = {
    "missing": "err.required",
    "string_too_short": "err.required",
    "string_too_long": "err.too_long",
    "literal_error": "err.choice",
    "enum": "err.choice",
    "int_parsing": "err.integer",
    "int_type": "err.integer",
    "greater_than": "err.positive",
    "greater_than_equal": "err.positive",
    "less_than_equal": "err.too_large",
    "decimal_parsing": "err.amount",
    "string_pattern_mismatch": "err.format",
    "datetime_from_date_parsing": "err.datetime",
    "datetime_parsing": "err.datetime",
}


def _input(name: str, rename: dict[str, str] | None, inputs: set[str] | None) -> str:
    """The form input a problem's field names; ``form`` (the top of the form) when none shows it."""
    name = (rename or {}).get(name, name)
    return name if inputs is None or name in inputs else "form"


def field_errors(
    page: Page, error: ValidationError, rename: dict[str, str] | None = None, inputs: set[str] | None = None
) -> dict[str, str]:
    """Pydantic's errors as ``{input name: message in the page's language}`` (first per field)."""
    found: dict[str, str] = {}
    for item in error.errors():
        name = ".".join(str(part) for part in item.get("loc", ()) if not isinstance(part, int)) or "form"
        name = _input(name.split(".")[-1], rename, inputs)
        key = _PYDANTIC.get(str(item.get("type")), "err.invalid")
        found.setdefault(name, page.t(key))
    return found


def problem_errors(
    page: Page, error: PrevenanceError, rename: dict[str, str] | None = None, inputs: set[str] | None = None
) -> dict[str, str]:
    """A domain refusal as ``{input name: message}``: translated by its problem type when the
    catalogue knows it, else the generic refusal followed by the domain's own detail."""
    name = _input(error.field or "form", rename, inputs)
    key = f"err.{error.type_slug}"
    message = page.t(key) if key in i18n.catalogue(page.lang) else f"{page.t('err.refused')} ({error.detail})"
    return {name: message}


# --- the route class: sign-in, refusals and domain errors become pages --------------------------


class ConsoleRoute(APIRoute):
    """Turns the console's exceptions into HTML (the app's handlers answer problem+json for the API)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except SignInRequired:
                target = "/portal/login" if request.url.path.startswith("/portal") else "/console/login"
                if request.headers.get("hx-request") == "true":
                    # A live-search fragment must not swap the sign-in page into the results.
                    return Response(status_code=204, headers={"HX-Redirect": target})
                nxt = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"{target}?next={quote(nxt, safe='/?=&')}", status_code=303)
            except (PageForbidden, CsrfRejected, PrevenanceError) as error:
                return await _error_page(request, error)

        return handler


PageDep = Annotated[Page, Depends(page)]


def console_router() -> APIRouter:
    """A router of console pages: left out of the API's schema, its refusals answered as pages."""
    return APIRouter(include_in_schema=False, route_class=ConsoleRoute)


async def _error_page(request: Request, error: Exception) -> Response:
    settings: Settings = request.app.state.settings
    data = read_cookie(request, settings) or {"u": None, "c": secrets.token_urlsafe(24)}
    user = _signed_in(request.app.state.engine, data)
    lang = i18n.choose(
        cookie=request.cookies.get(LANG_COOKIE),
        user_language=user.language if user else None,
        accept_language=request.headers.get("accept-language"),
    )
    p = Page(request, request.app.state.engine, request.app.state.clock, settings, user, lang, str(data["c"]))
    if isinstance(error, PageForbidden):
        status, title, detail = 403, p.t("error.forbidden.title"), p.t("error.forbidden.detail")
    elif isinstance(error, CsrfRejected):
        status, title, detail = 403, p.t("error.csrf.title"), p.t("error.csrf.detail")
    else:
        assert isinstance(error, PrevenanceError)
        key = f"err.{error.type_slug}"
        status, title = error.status, p.t("error.refused.title")
        detail = p.t(key) if key in i18n.catalogue(lang) else error.detail
    return render(p, "error.html", status, title=title, detail=detail, screens=screens_for(p))


def screens_for(p: Page) -> list[tuple[str, str]]:
    """The screens the signed-in user may open, for the navigation bar."""
    if p.user is None or p.user.role is Role.MEMBER:
        return []
    role = p.user.role
    found = []
    if role in (Role.ADMIN, *DESK):
        found.append(("/console/desk", p.t("nav.desk")))
        found.append(("/console/chat", p.t("nav.chat")))
        found.append(("/console/mail", p.t("mail_in.console.title")))
    if role in (Role.ADMIN, *CONCIERGE):
        found.append(("/console/concierge", p.t("nav.concierge")))
    if role in (Role.ADMIN, *DASHBOARD):
        found.append(("/console/dashboard", p.t("nav.dashboard")))
        found.append(("/console/voice", p.t("nav.voice")))
        found.append(("/console/recovery", p.t("nav.recovery")))
    if role in (Role.ADMIN, *MARKETING):
        found.append(("/console/marketing", p.t("nav.marketing")))
    if role in (Role.ADMIN, *EXECUTIVE):
        found.append(("/console/executive", p.t("nav.executive")))
    return found


ACTOR_MAX = 120
"""The width of the columns that record who did something (``updated_by``, ``declared_by``…)."""


def actor(user: ConsoleIdentity) -> str:
    """Who the console records as having done something: ``console:<username>``.

    A username may be 120 characters, the prefix makes it 128, and PostgreSQL refuses a text longer
    than its column (a 500). A name that does not fit keeps its head and a digest of the whole, so it
    still names that user alone; a name that fits is kept as it is."""
    name = f"console:{user.username}"
    if len(name) <= ACTOR_MAX:
        return name
    digest = hashlib.sha256(user.username.encode("utf-8")).hexdigest()[:16]
    return name[: ACTOR_MAX - len(digest) - 1] + "~" + digest


def script_json(spec: dict[str, Any]) -> str:
    """JSON safe inside a ``<script type="application/json">`` (labels come from stored data)."""
    return json.dumps(spec).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def choices(values: Iterable[str], page: Page, prefix: str) -> list[tuple[str, str]]:
    """(value, translated label) pairs for a select."""
    return [(value, page.t(f"{prefix}.{value}")) for value in values]
