"""The marketing screen's proactive incidents: declare one, post an update, resolve it. Each form
answers with the marketing page (its refusals next to the fields, in the user's language, nothing
written), as the rest of that screen does (``pages_marketing``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from fastapi.responses import Response
from pydantic import ValidationError

from prevenance.common.problems import PrevenanceError
from prevenance.console.pages_marketing import month_or_previous, render_marketing, split_list
from prevenance.console.web import (
    MARKETING,
    Page,
    PageDep,
    actor,
    console_router,
    field_errors,
    problem_errors,
    redirect,
)
from prevenance.db import run_in_transaction
from prevenance.desk import incidents
from prevenance.desk.errors import IncidentResolved, UnknownIncident
from prevenance.desk.schemas import IncidentCreate, IncidentResolve, IncidentUpdateCreate
from prevenance.views import incidents as incident_views

router = console_router()

INCIDENT_INPUTS = {
    "title_fr", "title_en", "body_fr", "body_en", "since", "affects", "products", "countries",
    "cities", "merchant", "window_start", "window_end", "reasons",
}  # fmt: skip
# Who is affected is one rule (``affects``): its own refusal, and the key reuse, go to the form's top.
INCIDENT_RENAME = {"affects.reasons": "reasons", "id": "form"}
NOTICE_INPUTS = {"body_fr", "body_en"}


def _checked(form: dict[str, str], prefix: str) -> list[str]:
    """The values of a group of checkboxes named ``prefix.<value>``."""
    return sorted(name[len(prefix) + 1 :] for name in form if name.startswith(prefix + "."))


@router.post("/console/marketing/incidents")
def declare_incident(p: PageDep) -> Response:
    """Declare an incident, as ``POST /v1/incidents`` (the form's key is the incident id): every
    member the rule names is sent a notice in their language."""
    user = p.require(*MARKETING)
    form = p.form
    month = month_or_previous(p, form.get("month", ""))
    request: dict[str, Any] = {
        "id": form.get("key", ""),
        "title_fr": form.get("title_fr", "").strip(),
        "title_en": form.get("title_en", "").strip(),
        "body_fr": form.get("body_fr", "").strip(),
        "body_en": form.get("body_en", "").strip(),
        "affects": {
            "products": _checked(form, "product"),
            "countries": split_list(form.get("countries", ""), upper=True),
            "cities": split_list(form.get("cities", "")),
            "reasons": _checked(form, "reason"),
        },
    }
    if form.get("since", "").strip():
        request["since"] = form["since"].strip()
    for name in ("merchant", "window_start", "window_end"):
        if form.get(name, "").strip():
            request["affects"][name] = form[name].strip()
    try:
        body = IncidentCreate.model_validate(request)
    except ValidationError as error:
        errors = field_errors(p, error, INCIDENT_RENAME, INCIDENT_INPUTS)
        if "affects" in errors:
            errors["affects"] = p.t("err.incident_target")
        return render_marketing(
            p, month=month, status=422, forms={"incident": form}, errors={"incident": errors}
        )
    try:
        incident_views.declare(p.engine, body, by=actor(user), now=p.now)
    except PrevenanceError as error:
        errors = problem_errors(p, error, INCIDENT_RENAME, INCIDENT_INPUTS)
        return render_marketing(
            p, month=month, status=error.status, forms={"incident": form}, errors={"incident": errors}
        )
    return redirect(p, f"/console/marketing?month={month}&done=incident")


IncidentId = Annotated[str, Path(min_length=1, max_length=200)]


def _follow_up_refused(
    p: Page, month: str, name: str, form: dict[str, str], error: PrevenanceError
) -> Response:
    """An update or resolution refused: next to its form, or at the top of the incidents when the
    incident is no longer listed (resolved meanwhile, or unknown)."""
    errors = problem_errors(p, error, {"id": "form"}, NOTICE_INPUTS)
    if isinstance(error, IncidentResolved | UnknownIncident):
        name, errors = "incidents", {"form": next(iter(errors.values()))}
    return render_marketing(p, month=month, status=error.status, forms={name: form}, errors={name: errors})


@router.post("/console/marketing/incidents/{incident_id}/updates")
def post_incident_update(p: PageDep, incident_id: IncidentId) -> Response:
    """Tell every affected member how things stand, as ``POST /v1/incidents/{id}/updates`` (the
    form's key is the update id)."""
    p.require(*MARKETING)
    form = p.form
    month = month_or_previous(p, form.get("month", ""))
    name = f"upd:{incident_id}"
    try:
        body = IncidentUpdateCreate.model_validate(
            {
                "id": form.get("key", ""),
                "body_fr": form.get("body_fr", "").strip(),
                "body_en": form.get("body_en", "").strip(),
            }
        )
        run_in_transaction(
            p.engine,
            lambda s: incidents.add_update(
                s,
                incident_id=incident_id,
                update_id=body.id,
                body_fr=body.body_fr,
                body_en=body.body_en,
                now=p.now,
            ),
        )
    except ValidationError as error:
        errors = field_errors(p, error, {"id": "form"}, NOTICE_INPUTS)
        return render_marketing(p, month=month, status=422, forms={name: form}, errors={name: errors})
    except PrevenanceError as error:
        return _follow_up_refused(p, month, name, form, error)
    return redirect(p, f"/console/marketing?month={month}&done=incident_update")


@router.post("/console/marketing/incidents/{incident_id}/resolve")
def resolve_incident(p: PageDep, incident_id: IncidentId) -> Response:
    """Resolve the incident and tell every affected member, as ``POST /v1/incidents/{id}/resolve``
    (once per incident: the same text again replays)."""
    p.require(*MARKETING)
    form = p.form
    month = month_or_previous(p, form.get("month", ""))
    name = f"res:{incident_id}"
    try:
        body = IncidentResolve.model_validate(
            {"body_fr": form.get("body_fr", "").strip(), "body_en": form.get("body_en", "").strip()}
        )
        run_in_transaction(
            p.engine,
            lambda s: incidents.resolve(
                s, incident_id=incident_id, body_fr=body.body_fr, body_en=body.body_en, now=p.now
            ),
        )
    except ValidationError as error:
        errors = field_errors(p, error, None, NOTICE_INPUTS)
        return render_marketing(p, month=month, status=422, forms={name: form}, errors={name: errors})
    except PrevenanceError as error:
        return _follow_up_refused(p, month, name, form, error)
    return redirect(p, f"/console/marketing?month={month}&done=incident_resolved")
