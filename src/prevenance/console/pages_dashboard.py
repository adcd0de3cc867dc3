"""The supervisor's dashboard: the month's contacts, first-contact resolution and card replacements."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.responses import Response

from prevenance.common.periods import month_bounds, month_of, previous_month
from prevenance.common.problems import PrevenanceError
from prevenance.console import charts
from prevenance.console.web import (
    DASHBOARD,
    PageDep,
    console_router,
    problem_errors,
    render,
    screens_for,
    script_json,
)
from prevenance.db import read_session
from prevenance.desk import service as desk
from prevenance.desk.chat import service as chat

router = console_router()


@router.get("/console/dashboard")
def dashboard(p: PageDep, month: Annotated[str, Query(max_length=7)] = "") -> Response:
    """First-contact resolution by team, contact reasons (Pareto), emergency cards within promise."""
    p.require(*DASHBOARD)
    # Without a month, the last complete one: the current month's contacts are mostly undetermined.
    month = month or previous_month(month_of(p.now))
    with read_session(p.engine) as session:
        recovery_counts = desk.recovery_counts(session, now=p.now)
    try:
        with read_session(p.engine) as session:
            fcr = desk.fcr_report(session, by="team", month=month, now=p.now)
            reasons = desk.reason_report(session, month=month)
            cards = desk.card_replacement_report(session, month=month, now=p.now)
            start, end = month_bounds(month)
            chat_hours = chat.times_by_hour(session, start=start, end=end, now=p.now)
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
            chat_hours=None,
            recovery_counts=recovery_counts,
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
        chat_hours=chat_hours,
        recovery_counts=recovery_counts,
    )


_script_json = script_json
