"""Service recovery in the console: the supervisor's recovery queue (cases due and breached, the
month's recovery rate and goodwill) and the agent's "close recovery" form on the 360."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response

from prevenance.common.periods import month_of, previous_month
from prevenance.common.problems import PrevenanceError
from prevenance.console.web import (
    DASHBOARD,
    DESK,
    Page,
    PageDep,
    console_router,
    problem_errors,
    redirect,
    render,
    screens_for,
)
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import incidents, recovery
from prevenance.desk import recovery_rules as rules
from prevenance.loyalty import goodwill
from prevenance.views import goodwill as goodwill_views

router = console_router()
STATES = ("open", "due", "breached", "closed")


@router.get("/console/recovery")
def recovery_queue(
    p: PageDep,
    state: Annotated[str, Query(max_length=10)] = "open",
    month: Annotated[str, Query(max_length=7)] = "",
) -> Response:
    """Recovery cases in a state, soonest due first, with the counts, the month's recovery report
    (last complete month by default) and its goodwill."""
    p.require(*DASHBOARD)
    return _render_queue(p, state=state if state in STATES else "open", month=month)


def _render_queue(
    p: Page, *, state: str, month: str = "", status: int = 200, granted: dict[str, Any] | None = None,
    grant_error: str | None = None,
) -> Response:  # fmt: skip
    """The queue page; the report's month is the last complete one unless the user chose one."""
    month = month or previous_month(month_of(p.now))
    errors: dict[str, str] = {}
    report = gestures = None
    with read_session(p.engine) as session:
        cases = recovery.list_cases(session, now=p.now, state=state, limit=200)
        counts = recovery.counts(session, now=p.now)
        resolved = incidents.list_incidents(session, status="resolved", limit=20)
        try:
            report = recovery.report(session, month=month)
            gestures = goodwill.report(session, month=month)
        except PrevenanceError as error:
            errors = problem_errors(p, error, {"month": "month"})
    return render(
        p,
        "recovery.html",
        422 if errors else status,
        screens=screens_for(p),
        cases=cases,
        counts=counts,
        state=state,
        states=STATES,
        month=month,
        report=report,
        gestures=gestures,
        errors=errors,
        resolved_incidents=resolved,
        granted=granted,
        grant_error=grant_error,
    )


@router.post("/console/recovery/incident-goodwill")
def grant_incident_goodwill(p: PageDep) -> Response:
    """A supervisor grants the programme's incident goodwill to every member a resolved incident
    affected; granting again gives only to those not yet granted (the API's ``POST
    /v1/incidents/{id}/goodwill``)."""
    user = p.require(*DASHBOARD)
    incident_id = (p.form.get("incident_id") or "").strip()
    if not incident_id:
        return _render_queue(p, state="open", status=422, grant_error=p.t("recovery.grant.choose"))
    try:
        granted = goodwill_views.grant_incident_goodwill(
            p.engine, incident_id=incident_id, by=user.username, now=p.now
        )
    except PrevenanceError as error:
        message = next(iter(problem_errors(p, error, {"id": "incident_id"}).values()), error.detail)
        return _render_queue(p, state="open", status=error.status, grant_error=message)
    return _render_queue(p, state="open", granted=granted)


def close_errors(p: Page, error: PrevenanceError) -> dict[str, str]:
    return problem_errors(p, error, {"outcome": "outcome", "id": "outcome"})


@router.post("/console/members/{ref}/recovery/{case_id}/close")
def close_recovery(p: PageDep, ref: str, case_id: str) -> Response:
    """Close a recovery case with its outcome (closing it again with the same outcome is harmless)."""
    user = p.require(*DESK)
    outcome = p.form.get("outcome", "")
    note = (p.form.get("note") or "").strip()[:2000] or None
    if outcome not in rules.OUTCOMES:
        return _back_with_error(p, ref, case_id, p.t("recovery.choose_outcome"))
    try:
        run_in_transaction(
            p.engine,
            lambda s: recovery.close_case(
                s, case_id=case_id, outcome=outcome, note=note, by=user.username, now=p.now
            ),
        )
    except PrevenanceError as error:
        message = next(iter(close_errors(p, error).values()), error.detail)
        return _back_with_error(p, ref, case_id, message, error.status)
    return redirect(p, f"/console/members/{ref}?done=recovery")


def _back_with_error(p: Page, ref: str, case_id: str, message: str, status: int = 422) -> Response:
    from prevenance.console.pages_desk import render_360  # the 360 page imports nothing of this one

    return render_360(p, ref, status=status, errors={"recovery": {case_id: message}})
