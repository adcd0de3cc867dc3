"""The marketing screen: the programme in force (FX rates editable by an administrator), partners and
the catalogue (create or replace an item), the month's benefit usage with its alerts, and the offers
with their measured ROI and its interval.

Reads and writes go through the domains' services in-process. An ROI the offers loop refuses to
compute (a group too small for an honest interval) is shown as that refusal, never as a number.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import Response
from pydantic import ValidationError

from prevenance.common.auth import Role
from prevenance.common.problems import InvalidInput, PrevenanceError
from prevenance.console.web import (
    MARKETING,
    ConsoleRoute,
    Page,
    field_errors,
    page,
    problem_errors,
    redirect,
    render,
    screens_for,
)
from prevenance.db import read_session, run_in_transaction
from prevenance.loyalty import programme
from prevenance.loyalty import service as loyalty
from prevenance.loyalty.schemas import CatalogueItemPut
from prevenance.offers import roi_service
from prevenance.offers import service as offers
from prevenance.views import benefit_usage

router = APIRouter(include_in_schema=False, route_class=ConsoleRoute)
PageDep = Annotated[Page, Depends(page)]
CATALOGUE_INPUTS = {"sku", "name", "points", "stock"}
_SKU = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def _month_or_previous(p: Page, month: str) -> str:
    """The month asked for, else the last complete month (the current one is still filling up)."""
    if re.fullmatch(r"\d{4}-\d{2}", month or ""):
        return month
    first = p.now.replace(day=1)
    year, number = (first.year - 1, 12) if first.month == 1 else (first.year, first.month - 1)
    return f"{year:04d}-{number:02d}"


def offer_rows(p: Page) -> list[dict[str, Any]]:
    """Every offer with its ROI report, or the reason it cannot be measured yet."""
    rows = []
    with read_session(p.engine) as session:
        for offer in offers.list_offers(session):
            try:
                report: dict[str, Any] | None = roi_service.roi_report(
                    session, offer_id=offer["id"], now=p.now
                )
                refusal = None
            except PrevenanceError as error:
                report, refusal = None, problem_errors(p, error, None, set())["form"]
            rows.append({"offer": offer, "roi": report, "refusal": refusal})
    return rows


def _render(
    p: Page,
    *,
    month: str,
    status: int = 200,
    forms: dict[str, dict[str, str]] | None = None,
    errors: dict[str, dict[str, str]] | None = None,
) -> Response:
    usage_errors: dict[str, str] = {}
    with read_session(p.engine) as session:
        found = programme.current_document(session)
        catalogue = loyalty.list_catalogue(session)
        partners = loyalty.list_partners(session)
        try:
            usage: dict[str, Any] | None = benefit_usage.usage_report(session, month=month)
        except PrevenanceError as error:
            usage, usage_errors = None, problem_errors(p, error, None, {"month"})
    alerts = benefit_usage.alerts_of(usage) if usage else []
    document = found[1] if found else {}
    return render(
        p,
        "marketing.html",
        status,
        screens=screens_for(p),
        month=month,
        version=found[0] if found else None,
        document=document,
        fx_rates=sorted((document.get("fx_rates") or {}).items()),
        products=document.get("products") or {},
        catalogue=catalogue,
        partners=partners,
        usage=usage,
        alerts=alerts,
        offers=offer_rows(p),
        can_edit_programme=p.user is not None and p.user.role is Role.ADMIN,
        values={"catalogue": {}, "fx": {}, **(forms or {})},
        errors={"usage": usage_errors, "catalogue": {}, "fx": {}, **(errors or {})},
        done=p.request.query_params.get("done"),
    )


@router.get("/console/marketing")
def marketing_page(p: PageDep, month: Annotated[str, Query(max_length=7)] = "") -> Response:
    """Programme, partners, catalogue, benefit usage and its alerts, offers and their ROI."""
    p.require(*MARKETING)
    return _render(p, month=_month_or_previous(p, month))


@router.post("/console/marketing/catalogue")
def put_catalogue_item(p: PageDep) -> Response:
    """Create or replace a catalogue item (a PUT: the same form twice leaves one item)."""
    p.require(*MARKETING)
    form = p.form
    month = _month_or_previous(p, form.get("month", ""))
    sku = form.get("sku", "").strip()
    if not _SKU.match(sku):
        return _render(p, month=month, status=422, forms={"catalogue": form},
                       errors={"catalogue": {"sku": p.t("err.sku")}})  # fmt: skip
    try:
        body = CatalogueItemPut.model_validate(
            {
                "name": form.get("name", "").strip(),
                "points": form.get("points", ""),
                "stock": form.get("stock", ""),
            }
        )
    except ValidationError as error:
        errors = field_errors(p, error, None, CATALOGUE_INPUTS)
        return _render(p, month=month, status=422, forms={"catalogue": form}, errors={"catalogue": errors})
    try:
        run_in_transaction(
            p.engine,
            lambda s: loyalty.put_catalogue_item(
                s, sku=sku, name=body.name, points=body.points, stock=body.stock, now=p.now
            ),
        )
    except PrevenanceError as error:
        errors = problem_errors(p, error, None, CATALOGUE_INPUTS)
        return _render(
            p, month=month, status=error.status, forms={"catalogue": form}, errors={"catalogue": errors}
        )
    return redirect(p, f"/console/marketing?month={month}&done=catalogue")


@router.post("/console/marketing/fx-rates")
def put_fx_rate(p: PageDep) -> Response:
    """Set a currency's euro rate: a new programme version, as ``PUT /v1/programme/fx-rates/{currency}``
    (administrators only, like the API)."""
    user = p.require(Role.ADMIN)
    form = p.form
    month = _month_or_previous(p, form.get("month", ""))
    currency = form.get("currency", "").strip().upper()
    errors: dict[str, str] = {}
    if not _CURRENCY.match(currency) or currency == "EUR":
        errors["currency"] = p.t("err.currency")
    try:
        rate = Decimal(form.get("rate", "").strip().replace(",", "."))
        if not rate.is_finite() or rate <= 0:
            raise InvalidOperation
    except InvalidOperation:
        errors["rate"] = p.t("err.amount")
    if errors:
        return _render(p, month=month, status=422, forms={"fx": form}, errors={"fx": errors})

    def use_case(session: Any) -> None:
        found = programme.current_document(session)
        if found is None:
            raise InvalidInput("no programme installed")
        document = {**found[1], "fx_rates": {**found[1].get("fx_rates", {}), currency: str(rate)}}
        programme.install(session, document=document, now=p.now, by=f"console:{user.username}")

    try:
        run_in_transaction(p.engine, use_case)
    except PrevenanceError as error:
        errors = problem_errors(p, error, {f"fx_rates.{currency}": "rate"}, {"currency", "rate"})
        return _render(p, month=month, status=error.status, forms={"fx": form}, errors={"fx": errors})
    return redirect(p, f"/console/marketing?month={month}&done=fx")
