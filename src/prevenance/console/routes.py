"""Console and portal pages (HTML), mounted beside the API.

Pages read and write through the domains' services in-process (``read_session``,
``run_in_transaction``), never through HTTP. Every form that moves points or customer data carries
an idempotency key generated when the form is rendered (hidden ``key`` field), so a double submit
replays the first answer instead of writing twice; a refused form keeps its key (nothing was
written) and shows the errors next to the fields, in the user's language.
"""

from __future__ import annotations

import mimetypes

from fastapi.responses import FileResponse, RedirectResponse, Response

from prevenance.common import ratelimit
from prevenance.common.auth import Role
from prevenance.common.problems import RateLimited
from prevenance.console import (
    i18n,
    pages_chat,
    pages_concierge,
    pages_dashboard,
    pages_desk,
    pages_executive,
    pages_incidents,
    pages_mail,
    pages_marketing,
    pages_portal,
    pages_recovery,
    pages_voice,
    users,
)
from prevenance.console.web import (
    LANG_COOKIE,
    STATIC_DIR,
    PageDep,
    console_router,
    redirect,
    render,
    safe_next,
    screens_for,
    secure_cookie,
    session_payload,
    write_session,
)
from prevenance.db import read_session, run_in_transaction

router = console_router()


def _home_of(role: Role) -> str:
    return {
        Role.AGENT: "/console/desk",
        Role.SUPERVISOR: "/console/desk",
        Role.CONCIERGE: "/console/concierge",
        Role.MEMBER: "/portal/",
    }.get(role, "/console/")


# --- entry, static files, sign-in, language -----------------------------------------------------


@router.get("/")
def root() -> RedirectResponse:
    """The site opens on the console."""
    return RedirectResponse("/console/", status_code=303)


@router.get("/console/static/{path:path}")
def static(path: str) -> Response:
    """The stylesheet and the vendored front-end files (no CDN); nothing outside ``static/``."""
    target = (STATIC_DIR / path).resolve()
    if not target.is_file() or STATIC_DIR.resolve() not in target.parents:
        return Response(status_code=404)
    media = mimetypes.guess_type(target.name)[0] or "application/octet-stream"
    return FileResponse(target, media_type=media, headers={"Cache-Control": "public, max-age=3600"})


@router.get("/console/")
def home(p: PageDep) -> Response:
    """Each user lands on its own screen; a role without one sees the list of screens."""
    user = p.require(*Role)
    target = _home_of(user.role)
    if target != "/console/":
        return redirect(p, target)
    return render(p, "home.html", screens=screens_for(p))


@router.get("/console/login")
@router.get("/portal/login")
def login_form(p: PageDep, next: str | None = None) -> Response:
    """The sign-in form (staff and members alike)."""
    return render(p, "login.html", next=safe_next(next, ""), username="", errors={}, screens=[])


@router.post("/console/login")
@router.post("/portal/login")
def login(p: PageDep) -> Response:
    """Check the password; on success a fresh session (new CSRF token) and the user's screen."""
    username, password = p.form.get("username", "").strip(), p.form.get("password", "")
    try:
        # Before the password is checked: guessing costs the attacker a slot whether it is right or not.
        # Per address (one machine spraying many names), then per user name (many machines, one name).
        ratelimit.enforce(
            p.request,
            scope="sign-in-address",
            rule=p.settings.rate_limit_sign_in_address,
            key=ratelimit.client_address(p.request),
        )
        if username:
            ratelimit.enforce(
                p.request, scope="sign-in-user", rule=p.settings.rate_limit_sign_in, key=username.lower()
            )
    except RateLimited as error:
        wait = int(error.extra.get("retry_after", 60))
        errors = {"form": p.t("login.too_many", seconds=wait)}
        refused = render(
            p, "login.html", 429, next=p.form.get("next", ""), username=username, errors=errors, screens=[]
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    with read_session(p.engine) as session:
        user = users.authenticate(session, username=username, password=password) if username else None
    if user is None:
        errors = {"password": p.t("login.failed")} if username else {"username": p.t("err.required")}
        return render(p, "login.html", 401, next=p.form.get("next", ""), username=username, errors=errors)
    response = RedirectResponse(safe_next(p.form.get("next"), _home_of(user.role)), status_code=303)
    write_session(response, p, session_payload(user))
    return response


@router.post("/console/logout")
def logout(p: PageDep) -> Response:
    """End the user's sessions on the server (a copy of the cookie is refused from now on), then a
    new anonymous session."""
    target = "/portal/login" if p.user is not None and p.user.role is Role.MEMBER else "/console/login"
    if p.user is not None:
        user_id = p.user.id
        run_in_transaction(p.engine, lambda session: users.end_sessions(session, user_id=user_id))
    response = RedirectResponse(target, status_code=303)
    write_session(response, p, session_payload(None))
    return response


@router.get("/console/lang")
def switch_language(p: PageDep, to: str, next: str | None = None) -> Response:
    """The language switcher: remembered in a cookie for a year."""
    response = redirect(p, safe_next(next, "/console/"))
    if to in i18n.LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            to,
            max_age=365 * 86400,
            httponly=True,
            samesite="lax",
            secure=secure_cookie(p.request, p.settings),
            path="/",
        )
    return response


# --- the pages, one module per screen family (in this order: the first matching route wins) -----

for pages in (
    pages_desk,
    pages_chat,
    pages_chat,
    pages_concierge,
    pages_dashboard,
    pages_portal,
    pages_voice,
    pages_executive,
    pages_marketing,
    pages_incidents,
    pages_mail,
    pages_recovery,
):
    router.include_router(pages.router)
