"""Console and portal pages (HTML), mounted beside the API.

Pages read and write through the domains' services in-process (``read_session``,
``run_in_transaction``), never through HTTP. Every form that moves points or customer data carries
an idempotency key generated when the form is rendered (hidden ``key`` field), so a double submit
replays the first answer instead of writing twice; a refused form keeps its key (nothing was
written) and shows the errors next to the fields, in the user's language.
"""

from __future__ import annotations

import mimetypes
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from fastapi.responses import FileResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from prevenance.common import ratelimit
from prevenance.common.auth import Principal, Role
from prevenance.common.ids import new_id
from prevenance.common.problems import PrevenanceError, RateLimited
from prevenance.console import charts, i18n, pages_executive, pages_marketing, pages_voice, users
from prevenance.console.web import (
    CONCIERGE,
    DASHBOARD,
    DESK,
    LANG_COOKIE,
    STATIC_DIR,
    ConsoleRoute,
    Page,
    choices,
    field_errors,
    page,
    problem_errors,
    redirect,
    render,
    safe_next,
    screens_for,
    script_json,
    secure_cookie,
    session_payload,
    write_session,
)
from prevenance.customers import service as customers
from prevenance.customers.service import search_members
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import concierge
from prevenance.desk import rules as desk_rules
from prevenance.desk import service as desk
from prevenance.desk.schemas import CardReplacementCreate, ContactCreate, ContactPreferencePut
from prevenance.loyalty import service as loyalty
from prevenance.loyalty.schemas import RedemptionCreate, ReferralCodeRedeem
from prevenance.offers import service as offers
from prevenance.views.member360 import get_member_360
from prevenance.voice import rules as voice_rules

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)
PageDep = Annotated[Page, Depends(page)]

PORTAL = (Role.MEMBER,)
_REDEMPTION = TypeAdapter(RedemptionCreate)
CONTACT_INPUTS = {"channel", "direction", "reason", "minutes", "team", "case_id", "notes", "outcome"}
CARD_INPUTS = {"city", "country", "address"}


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


# --- agent desk ---------------------------------------------------------------------------------


@router.get("/console/desk")
def desk_page(p: PageDep, q: str = "") -> Response:
    """Find a customer (name, e-mail or reference prefix)."""
    p.require(*DESK)
    results = _search(p, q)
    return render(p, "desk.html", screens=screens_for(p), q=q, results=results)


@router.get("/console/desk/search")
def desk_search(p: PageDep, q: Annotated[str, Query(max_length=200)] = "") -> Response:
    """The live search's rows (HTMX swaps them in as the agent types)."""
    p.require(*DESK)
    if p.request.headers.get("hx-request") != "true":
        return redirect(p, f"/console/desk?q={q}")
    return render(p, "_search_results.html", q=q, results=_search(p, q))


def _search(p: Page, q: str) -> list[dict[str, Any]] | None:
    if not q.strip():
        return None
    with read_session(p.engine) as session:
        return search_members(session, q=q)


def _as_principal(p: Page) -> Principal:
    assert p.user is not None
    return Principal(key_id=f"console:{p.user.id}", name=p.user.username, role=p.user.role)


def _member360(p: Page, ref: str) -> dict[str, Any]:
    """Exactly what ``GET /v1/members/{ref}/360`` returns, read in-process."""
    return get_member_360(ref, p.engine, p.clock, _as_principal(p))


def _promise(p: Page, replacement: dict[str, Any]) -> dict[str, Any]:
    """The emergency card's promise clock: time left (or overdue) against its due time."""
    due = datetime.fromisoformat(str(replacement["due_at"]).replace("Z", "+00:00"))
    left = due - p.now
    minutes = int(abs(left.total_seconds()) // 60)
    text = f"{minutes // 60} h {minutes % 60:02d} min"
    return {
        **replacement,
        "clock": p.t("card.left", time=text) if left >= timedelta(0) else p.t("card.overdue", time=text),
        "overdue": left < timedelta(0),
    }


EXCERPT = 120  # characters of a survey comment shown on the 360 (the whole comment in its title)


def _survey_rows(p: Page, surveys: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The member's answered surveys for the 360: the interaction point in words, the comment cut short."""
    labels = voice_rules.INTERACTION_LABELS[p.lang]
    rows = []
    for survey in surveys:
        point = survey.get("interaction")
        comment = (survey.get("comment") or "").strip()
        excerpt = comment if len(comment) <= EXCERPT else comment[: EXCERPT - 1].rstrip() + "…"
        rows.append(
            {
                **survey,
                "interaction_label": labels[point - 1] if point and 1 <= point <= len(labels) else None,
                "excerpt": excerpt,
            }
        )
    return rows


def _forms_defaults(p: Page) -> dict[str, dict[str, str]]:
    return {
        "contact": {
            "key": new_id("ct"),
            "channel": "phone",
            "direction": "inbound",
            "minutes": "5",
            "outcome": "resolved",
            "team": "front",
        },
        "card": {"key": new_id("card"), "city": "", "country": "", "address": ""},
        "preference": {},
    }


def _render_360(
    p: Page,
    ref: str,
    *,
    status: int = 200,
    forms: dict[str, dict[str, str]] | None = None,
    errors: dict[str, dict[str, str]] | None = None,
    done: str | None = None,
) -> Response:
    data = _member360(p, ref)
    values = _forms_defaults(p)
    values["preference"] = {
        "mode": data["contact_preference"]["mode"] or "",
        "preferred_channel": data["contact_preference"]["preferred_channel"] or "",
    }
    for name, form in (forms or {}).items():
        values[name] = {**values[name], **form}
    return render(
        p,
        "member360.html",
        status,
        screens=screens_for(p),
        m=data,
        replacements=[_promise(p, r) for r in data["open_card_replacements"]],
        surveys=_survey_rows(p, data["surveys"]),
        values=values,
        errors=errors or {},
        done=done or p.request.query_params.get("done"),
        reasons=desk.list_reasons(),
        reason_labels={r["code"]: r[f"label_{p.lang}"] for r in desk.list_reasons()},
        channels=choices(desk_rules.CHANNELS, p, "channel"),
        directions=choices(desk_rules.DIRECTIONS, p, "direction"),
        outcomes=choices(desk_rules.OUTCOMES, p, "outcome"),
        modes=choices(desk_rules.PREFERENCE_MODES, p, "mode"),
    )


@router.get("/console/members/{ref}")
def member_page(p: PageDep, ref: str) -> Response:
    """The 360: the whole customer on one screen, with the agent's forms."""
    p.require(*DESK)
    return _render_360(p, ref)


@router.post("/console/members/{ref}/contacts")
def log_contact(p: PageDep, ref: str) -> Response:
    """Log the contact the agent is having (its id is the form's idempotency key)."""
    user = p.require(*DESK)
    form = p.form
    now = p.now
    try:
        minutes = int(form.get("minutes", ""))
        if not 0 <= minutes <= 24 * 60:
            raise ValueError
    except ValueError:
        return _render_360(
            p, ref, status=422, forms={"contact": form}, errors={"contact": {"minutes": p.t("err.minutes")}}
        )
    try:
        body = ContactCreate.model_validate(
            {
                "id": form.get("key", ""),
                "member_ref": ref,
                "channel": form.get("channel", ""),
                "direction": form.get("direction", ""),
                "agent": user.username,
                "team": form.get("team", "").strip(),
                "reason": form.get("reason", ""),
                "started_at": now - timedelta(minutes=minutes),
                "ended_at": now,
                "notes": form.get("notes", ""),
                "outcome": form.get("outcome", ""),
                "case_id": form.get("case_id") or None,
            }
        )
    except ValidationError as error:
        errors = field_errors(p, error, None, CONTACT_INPUTS)
        return _render_360(p, ref, status=422, forms={"contact": form}, errors={"contact": errors})
    contact = desk.ContactInput(**body.model_dump())
    try:
        run_in_transaction(p.engine, lambda s: desk.log_contact(s, contact=contact, now=now))
    except PrevenanceError as error:
        errors = problem_errors(p, error, None, CONTACT_INPUTS)
        return _render_360(p, ref, status=error.status, forms={"contact": form}, errors={"contact": errors})
    return redirect(p, f"/console/members/{ref}?done=contact")


@router.post("/console/members/{ref}/card-replacements")
def order_card(p: PageDep, ref: str) -> Response:
    """Order an emergency card; the 360 then shows its promise clock."""
    p.require(*DESK)
    form = p.form
    try:
        body = CardReplacementCreate.model_validate(
            {
                "id": form.get("key", ""),
                "city": form.get("city", "").strip(),
                "country": form.get("country", "").strip().upper(),
                "address": form.get("address", ""),
            }
        )
    except ValidationError as error:
        errors = field_errors(p, error, None, CARD_INPUTS)
        return _render_360(p, ref, status=422, forms={"card": form}, errors={"card": errors})
    order = desk.CardReplacementInput(member_ref=ref, **body.model_dump())
    try:
        run_in_transaction(p.engine, lambda s: desk.order_card_replacement(s, order=order, now=p.now))
    except PrevenanceError as error:
        errors = problem_errors(p, error, None, CARD_INPUTS)
        return _render_360(p, ref, status=error.status, forms={"card": form}, errors={"card": errors})
    return redirect(p, f"/console/members/{ref}?done=card")


def _set_preference(p: Page, ref: str, by: str) -> dict[str, str] | None:
    """Validate and store the contact preference; the errors by field, or None when stored."""
    form = p.form
    try:
        body = ContactPreferencePut.model_validate(
            {"mode": form.get("mode", ""), "preferred_channel": form.get("preferred_channel") or None}
        )
    except ValidationError as error:
        return field_errors(p, error)
    try:
        run_in_transaction(
            p.engine,
            lambda s: desk.set_contact_preference(
                s,
                member_ref=ref,
                mode=body.mode,
                preferred_channel=body.preferred_channel,
                by=by,
                now=p.now,
            ),
        )
    except PrevenanceError as error:
        return problem_errors(p, error)
    return None


@router.post("/console/members/{ref}/preference")
def set_preference(p: PageDep, ref: str) -> Response:
    """Record how the customer wants to be approached (a PUT: idempotent by nature)."""
    user = p.require(*DESK)
    errors = _set_preference(p, ref, f"console:{user.username}")
    if errors:
        return _render_360(p, ref, status=422, forms={"preference": p.form}, errors={"preference": errors})
    return redirect(p, f"/console/members/{ref}?done=preference")


@router.post("/console/members/{ref}/benefits/{code}/explained")
def explained(p: PageDep, ref: str, code: str) -> Response:
    """Record that the agent told the customer about a benefit, on the member's latest contact."""
    p.require(*DESK)
    with read_session(p.engine) as session:
        contacts = desk.list_member_contacts(session, member_ref=ref, limit=1)["items"]
    if not contacts:
        return _render_360(p, ref, status=409, errors={"benefits": {code: p.t("benefit.needs_contact")}})
    try:
        run_in_transaction(
            p.engine,
            lambda s: desk.explain_benefits(s, contact_id=contacts[0]["id"], benefits=[code], now=p.now),
        )
    except PrevenanceError as error:
        return _render_360(
            p, ref, status=error.status, errors={"benefits": problem_errors(p, error, {"benefits": code})}
        )
    return redirect(p, f"/console/members/{ref}?done=benefit")


# --- concierge board ----------------------------------------------------------------------------


@router.get("/console/concierge")
def concierge_board(
    p: PageDep,
    member: Annotated[str, Query(max_length=64)] = "",
    q: Annotated[str, Query(max_length=200)] = "",
    country: Annotated[str, Query(max_length=2)] = "",
    city: Annotated[str, Query(max_length=120)] = "",
    category: Annotated[str, Query(max_length=40)] = "",
) -> Response:
    """Requests by due time, the partner directory, a customer's tastes and past similar requests."""
    p.require(*CONCIERGE)
    errors: dict[str, str] = {}
    tastes = similar = None
    with read_session(p.engine) as session:
        # Open and in-progress requests, soonest due first (solved ones would crowd a mixed list).
        requests = sorted(
            concierge.list_requests(session, status="open", due_before=None, limit=200)
            + concierge.list_requests(session, status="in_progress", due_before=None, limit=200),
            key=lambda r: (r["due_at"], r["id"]),
        )
        partners = concierge.list_partners(
            session,
            country=country.strip() or None,
            city=city.strip() or None,
            category=category if category in concierge.CATEGORIES else None,
        )
        if member.strip():
            if customers.get(session, ref=member.strip()) is None:
                errors["member"] = p.t("err.unknown-member")
            else:
                tastes = concierge.get_tastes(session, member_ref=member.strip())
        if q.strip():
            try:
                similar = concierge.search_solved(
                    session,
                    q=q,
                    category=category if category in concierge.CATEGORIES else None,
                    city=city.strip() or None,
                    limit=20,
                )
            except PrevenanceError as error:
                errors.update(problem_errors(p, error))
    return render(
        p,
        "concierge.html",
        screens=screens_for(p),
        requests=requests,
        partners=partners,
        tastes=tastes,
        similar=similar,
        member=member,
        q=q,
        country=country,
        city=city,
        category=category,
        categories=choices(concierge.CATEGORIES, p, "category"),
        errors=errors,
    )


# --- supervisor dashboard -----------------------------------------------------------------------


@router.get("/console/dashboard")
def dashboard(p: PageDep, month: Annotated[str, Query(max_length=7)] = "") -> Response:
    """First-contact resolution by team, contact reasons (Pareto), emergency cards within promise."""
    p.require(*DASHBOARD)
    month = month or p.now.strftime("%Y-%m")
    try:
        with read_session(p.engine) as session:
            fcr = desk.fcr_report(session, by="team", month=month, now=p.now)
            reasons = desk.reason_report(session, month=month)
            cards = desk.card_replacement_report(session, month=month, now=p.now)
    except PrevenanceError as error:
        return render(
            p,
            "dashboard.html",
            422,
            screens=screens_for(p),
            month=month,
            errors=problem_errors(p, error, {"month": "month"}),
            specs={},
            fcr=None,
            reasons=None,
            cards=None,
        )
    specs = {
        "fcr": charts.fcr_by_team(fcr, p.lang),
        "reasons": charts.reasons_pareto(reasons, p.lang),
        "cards": charts.card_promise(cards, p.lang),
    }
    return render(
        p,
        "dashboard.html",
        screens=screens_for(p),
        month=month,
        errors={},
        specs={name: _script_json(spec) for name, spec in specs.items()},
        fcr=fcr,
        reasons=reasons,
        cards=cards,
    )


_script_json = script_json


# --- member portal ------------------------------------------------------------------------------


def _portal_defaults() -> dict[str, dict[str, str]]:
    return {
        "redeem": {"key": new_id("rd"), "quantity": "1"},
        "transfer": {"key": new_id("tr")},
        "travel": {"key": new_id("tv")},
        "referral": {"key": new_id("rf")},
        "preference": {},
    }


def _render_portal(
    p: Page,
    *,
    status: int = 200,
    forms: dict[str, dict[str, str]] | None = None,
    errors: dict[str, dict[str, str]] | None = None,
    done: str | None = None,
) -> Response:
    user = p.require(*PORTAL)
    assert user.member_ref is not None
    ref = user.member_ref
    with read_session(p.engine) as session:
        member = customers.get_or_raise(session, ref=ref)
        balance = loyalty.get_balance(session, member_ref=ref)
        movements = loyalty.list_movements(session, member_ref=ref, limit=20, cursor=None)["items"]
        catalogue = [c for c in loyalty.list_catalogue(session) if c.stock > 0]
        partners = [x for x in loyalty.list_partners(session) if x.kind in ("airline", "hotel")]
        preference = desk.get_contact_preference(session, member_ref=ref)
        member_offers = offers.list_active_member_offers(session, member_ref=ref, language=p.lang, now=p.now)
        referral_code = loyalty.get_referral_code(session, member_ref=ref, secret=p.settings.secret_key)
    values = _portal_defaults()
    values["preference"] = {
        "mode": preference["mode"] or "",
        "preferred_channel": preference["preferred_channel"] or "",
    }
    for name, form in (forms or {}).items():
        values[name] = {**values[name], **form}
    return render(
        p,
        "portal.html",
        status,
        screens=[],
        member=member,
        balance=balance,
        movements=movements,
        catalogue=catalogue,
        partners=partners,
        offers=member_offers["items"],
        referral_code=referral_code,
        values=values,
        errors=errors or {},
        done=done or p.request.query_params.get("done"),
        modes=choices(desk_rules.PREFERENCE_MODES, p, "mode"),
        channels=choices(desk_rules.CHANNELS, p, "channel"),
    )


@router.get("/portal/")
def portal(p: PageDep) -> Response:
    """The member's own space: balance and history, and what points can do."""
    return _render_portal(p)


def _redeem(p: Page, form_name: str, request: dict[str, Any], inputs: set[str]) -> Response:
    """One redemption of the signed-in member, validated by the API's own schema."""
    user = p.require(*PORTAL)
    assert user.member_ref is not None
    ref = user.member_ref
    try:
        body = _REDEMPTION.validate_python(request).model_dump()
    except ValidationError as error:
        errors = field_errors(p, error, None, inputs)
        return _render_portal(p, status=422, forms={form_name: p.form}, errors={form_name: errors})
    try:
        run_in_transaction(p.engine, lambda s: loyalty.redeem(s, member_ref=ref, request=body, now=p.now))
    except PrevenanceError as error:
        errors = problem_errors(p, error, None, inputs)
        return _render_portal(p, status=error.status, forms={form_name: p.form}, errors={form_name: errors})
    return redirect(p, f"/portal/?done={form_name}")


@router.post("/portal/redeem")
def portal_redeem(p: PageDep) -> Response:
    """Redeem a catalogue item."""
    f = p.form
    request = {
        "id": f.get("key", ""),
        "kind": "catalogue",
        "sku": f.get("sku", ""),
        "quantity": f.get("quantity", ""),
    }
    return _redeem(p, "redeem", request, {"sku", "quantity"})


@router.post("/portal/transfer")
def portal_transfer(p: PageDep) -> Response:
    """Transfer points to an airline or hotel partner programme."""
    f = p.form
    request = {
        "id": f.get("key", ""),
        "kind": "transfer",
        "partner": f.get("partner", ""),
        "points": f.get("points", ""),
    }
    return _redeem(p, "transfer", request, {"partner", "points"})


@router.post("/portal/travel")
def portal_travel(p: PageDep) -> Response:
    """Pay a trip with points, in full or in part (the points are held until the booking is confirmed)."""
    f = p.form
    request = {
        "id": f.get("key", ""),
        "kind": "travel",
        "booking_ref": f.get("booking_ref", "").strip(),
        "amount": f.get("amount", "").strip().replace(",", "."),
        "points": f.get("points", ""),
    }
    return _redeem(p, "travel", request, {"booking_ref", "amount", "points"})


@router.post("/portal/referral")
def portal_referral(p: PageDep) -> Response:
    """The member was referred: they enter the referral code a friend gave them (their consent), as
    ``POST /v1/members/{ref}/referral``."""
    user = p.require(*PORTAL)
    assert user.member_ref is not None
    ref, f = user.member_ref, p.form
    inputs = {"referral_code"}
    try:
        body = ReferralCodeRedeem.model_validate({"referral_code": f.get("referral_code", "").strip()})
        key = f.get("key", "") or None
        run_in_transaction(
            p.engine,
            lambda s: loyalty.redeem_referral_code(
                s,
                referee_ref=ref,
                code=body.referral_code,
                key=key,
                secret=p.settings.secret_key,
                now=p.now,
            ),
        )
    except ValidationError as error:
        errors = field_errors(p, error, None, inputs)
        return _render_portal(p, status=422, forms={"referral": f}, errors={"referral": errors})
    except PrevenanceError as error:
        errors = problem_errors(p, error, None, inputs)
        return _render_portal(p, status=error.status, forms={"referral": f}, errors={"referral": errors})
    return redirect(p, "/portal/?done=referral")


@router.post("/portal/offers/{offer_id}/activate")
def portal_activate_offer(
    p: PageDep, offer_id: Annotated[str, Path(min_length=1, max_length=200)]
) -> Response:
    """Activate an offer made to the member, as ``POST /v1/members/{ref}/offers/{id}/activate``
    (activating again replays the first answer: idempotent by nature)."""
    user = p.require(*PORTAL)
    assert user.member_ref is not None
    ref = user.member_ref
    try:
        run_in_transaction(
            p.engine, lambda s: offers.activate(s, member_ref=ref, offer_id=offer_id, now=p.now)
        )
    except PrevenanceError as error:
        message = next(iter(problem_errors(p, error).values()))
        with read_session(p.engine) as session:
            shown = offers.list_active_member_offers(session, member_ref=ref, language=p.lang, now=p.now)
        # Next to the offer when the page lists it, else at the top of the section.
        where = offer_id if any(o["offer_id"] == offer_id for o in shown["items"]) else "form"
        return _render_portal(p, status=error.status, errors={"offers": {where: message}})
    return redirect(p, "/portal/?done=offer")


@router.post("/portal/preference")
def portal_preference(p: PageDep) -> Response:
    """The member says how they want to be approached."""
    user = p.require(*PORTAL)
    assert user.member_ref is not None
    errors = _set_preference(p, user.member_ref, f"member:{user.member_ref}")
    if errors:
        return _render_portal(p, status=422, forms={"preference": p.form}, errors={"preference": errors})
    return redirect(p, "/portal/?done=preference")


# --- the second pass's screens, each in its own module --------------------------------------------

router.include_router(pages_voice.router)
router.include_router(pages_executive.router)
router.include_router(pages_marketing.router)
