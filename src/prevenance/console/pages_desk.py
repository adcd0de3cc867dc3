"""The agent's desk: the customer search and the member's 360 with its forms (contact, emergency
card, contact preference, benefit explained)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response
from pydantic import ValidationError

from prevenance.common.auth import Principal
from prevenance.common.ids import new_id
from prevenance.common.problems import PrevenanceError
from prevenance.console.web import (
    DESK,
    Page,
    PageDep,
    actor,
    choices,
    console_router,
    field_errors,
    problem_errors,
    redirect,
    render,
    screens_for,
)
from prevenance.customers.service import search_members
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import recovery_rules
from prevenance.desk import rules as desk_rules
from prevenance.desk import service as desk
from prevenance.desk.schemas import CardReplacementCreate, ContactCreate, ContactPreferencePut
from prevenance.views.member360 import get_member_360
from prevenance.voice import rules as voice_rules

router = console_router()
CONTACT_INPUTS = {"channel", "direction", "reason", "minutes", "team", "case_id", "notes", "outcome"}
CARD_INPUTS = {"city", "country", "address"}


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
    rows = []
    for survey in surveys:
        point = survey.get("interaction")
        comment = (survey.get("comment") or "").strip()
        excerpt = comment if len(comment) <= EXCERPT else comment[: EXCERPT - 1].rstrip() + "…"
        rows.append(
            {
                **survey,
                "interaction_label": p.t(f"voice.interaction.{point}")
                if point in voice_rules.INTERACTION_POINTS
                else None,
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
        recovery_outcomes=[(o, p.t(f"recovery.outcome.{o}")) for o in recovery_rules.OUTCOMES],
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


def apply_preference_form(p: Page, ref: str, by: str) -> dict[str, str] | None:
    """Set the member's contact preference from the posted form; the errors to show, or None."""
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
    errors = apply_preference_form(p, ref, actor(user))
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


def render_360(p: Page, ref: str, *, status: int, errors: dict[str, dict[str, str]]) -> Response:
    """The 360 shown again with a refused form's errors (the recovery form of ``pages_recovery``)."""
    return _render_360(p, ref, status=status, errors=errors)
