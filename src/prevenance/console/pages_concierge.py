"""The concierge board: open requests by status, category and deadline."""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from fastapi.responses import Response

from prevenance.common.problems import PrevenanceError
from prevenance.console.web import (
    CONCIERGE,
    PageDep,
    choices,
    console_router,
    problem_errors,
    render,
    screens_for,
)
from prevenance.customers import service as customers
from prevenance.db import read_session
from prevenance.desk import concierge

router = console_router()


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
            if customers.find_member(session, ref=member.strip()) is None:
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
