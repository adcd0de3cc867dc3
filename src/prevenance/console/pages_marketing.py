"""The marketing screen: the programme in force (FX rates editable by an administrator), partners
(create or replace one) and the catalogue (create or replace an item), offers and campaigns (define,
pause, resume or end one) with their measured ROI and its interval, the month's benefit usage with
its alerts, and the proactive incidents in force (their forms: ``pages_incidents``).

Reads and writes go through the domains' services in-process, each write validated by the API's own
request model so a refusal names the same field as the API would, next to that field, in the user's
language, with nothing written. An ROI the offers domain refuses to compute (a group too small for an
honest interval) is shown as that refusal, never as a number.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from fastapi import Path, Query
from fastapi.responses import Response
from pydantic import ValidationError

from prevenance.common.auth import Role
from prevenance.common.ids import new_id
from prevenance.common.problems import PrevenanceError
from prevenance.console.web import (
    MARKETING,
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
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import incidents
from prevenance.desk import service as desk
from prevenance.loyalty import programme
from prevenance.loyalty import service as loyalty
from prevenance.loyalty.schemas import CatalogueItemPut, PartnerPut
from prevenance.offers import rules as offer_rules
from prevenance.offers import service as offers
from prevenance.offers.roi import service as roi_service
from prevenance.offers.schemas import OfferPut
from prevenance.views import benefit_usage

router = console_router()
CATALOGUE_INPUTS = {"sku", "name", "points", "stock"}
PARTNER_INPUTS = {"code", "kind", "name", "points_per_block", "units_per_block"}
PARTNER_KINDS = ("airline", "hotel", "merchant")
OFFER_INPUTS = {
    "id", "title_fr", "title_en", "text_fr", "text_en", "partner_merchant", "partner_category",
    "reward_kind", "reward_points", "reward_category", "reward_multiplier", "reward_max_points",
    "reward_sku", "reward_min_spend", "products", "countries", "cap_per_member", "budget_points",
    "unit_cost_eur", "margin_rate", "expected_spend_eur", "holdout_share", "decision_days",
    "valid_from", "valid_until",
}  # fmt: skip
# The service names a reward's or eligibility's key by its path; the form has one input per key.
OFFER_RENAME = {
    "reward.points": "reward_points",
    "reward.category": "reward_category",
    "reward.multiplier": "reward_multiplier",
    "reward.max_points": "reward_max_points",
    "reward.sku": "reward_sku",
    "reward.min_spend_eur": "reward_min_spend",
    "reward": "reward_kind",
    "eligibility.products": "products",
    "eligibility.countries": "countries",
    "eligibility": "products",
}
OFFER_STATUS = {"pause": "paused", "resume": "active", "end": "ended"}
_SKU = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
_CODE = re.compile(r"^[A-Za-z0-9._-]{1,80}$")
_CURRENCY = re.compile(r"^[A-Z]{3}$")


def month_or_previous(p: Page, month: str) -> str:
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
                    session, offer_id=offer["id"], now=p.now, programme_holdout=False
                )
                refusal = None
            except PrevenanceError as error:
                report, refusal = None, problem_errors(p, error, None, set())["form"]
            rows.append({"offer": offer, "roi": report, "refusal": refusal})
    return rows


def programme_holdout(p: Page) -> dict[str, Any] | None:
    """The whole programme against its holdout (the same figures the ROI API gives beside each
    campaign), or None when no holdout period was ever started."""
    with read_session(p.engine) as session:
        return roi_service.programme_holdout_for(session, now=p.now)


def split_list(text: str, *, upper: bool = False) -> list[str]:
    """A comma (or semicolon, or line) separated list typed in one input."""
    items = [part.strip() for part in re.split(r"[,;\n]", text) if part.strip()]
    return [item.upper() for item in items] if upper else items


def _minute(moment: datetime) -> str:
    """A time as a ``datetime-local`` input shows it (UTC, to the minute)."""
    return moment.strftime("%Y-%m-%dT%H:%M")


def _referrals(session: Any, month: str) -> dict[str, Any]:
    """The month's referral report and the referrals made that month (newest first, at most 20)."""
    listed = loyalty.list_referrals(session, status=None, month=month, limit=20)
    return {"report": loyalty.referral_report(session, month=month), **listed}


def _defaults(p: Page) -> dict[str, dict[str, str]]:
    """Fresh forms: each write form gets its idempotency key (or resource id) when rendered."""
    today = p.now.date()
    return {
        "catalogue": {},
        "fx": {},
        "partner": {"kind": "airline"},
        "offer": {
            "id": new_id("of"),
            "reward_kind": "bonus_points",
            "cap_per_member": "1",
            "expected_spend_eur": "100",
            "holdout_share": "0.10",
            "decision_days": "30",
            "valid_from": today.isoformat(),
            "valid_until": (today + timedelta(days=30)).isoformat(),
        },
        "incident": {"key": new_id("inc"), "since": _minute(p.now)},
    }


def render_marketing(
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
        active_incidents = incidents.list_incidents(session, status="active")
        try:
            usage: dict[str, Any] | None = benefit_usage.usage_report(session, month=month)
        except PrevenanceError as error:
            usage, usage_errors = None, problem_errors(p, error, None, {"month"})
        referrals = _referrals(session, month) if usage is not None else None
    alerts = benefit_usage.alerts_of(usage) if usage else []
    document = found[1] if found else {}
    values = _defaults(p)
    for incident in active_incidents:
        values[f"upd:{incident['id']}"] = {"key": new_id("upd")}
        values[f"res:{incident['id']}"] = {}
    for name, form in (forms or {}).items():
        values[name] = {**values.get(name, {}), **form}
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
        transfer_partners=[x for x in partners if x.kind in ("airline", "hotel")],
        merchant_partners=[x for x in partners if x.kind == "merchant"],
        partner_kinds=choices(PARTNER_KINDS, p, "mkt.kind"),
        reward_kinds=choices(offer_rules.REWARD_KINDS, p, "mkt.reward_kind"),
        card_products=sorted(document.get("products") or {}),
        reasons=[(r["code"], r[f"label_{p.lang}"]) for r in desk.list_reasons()],
        incidents=active_incidents,
        usage=usage,
        referrals=referrals,
        alerts=alerts,
        offers=offer_rows(p),
        programme_holdout=programme_holdout(p),
        can_edit_programme=p.user is not None and p.user.role is Role.ADMIN,
        values=values,
        errors={"usage": usage_errors, **(errors or {})},
        done=p.request.query_params.get("done"),
    )


@router.get("/console/marketing")
def marketing_page(p: PageDep, month: Annotated[str, Query(max_length=7)] = "") -> Response:
    """Programme, partners, catalogue, benefit usage and its alerts, offers and their ROI."""
    p.require(*MARKETING)
    return render_marketing(p, month=month_or_previous(p, month))


@router.post("/console/marketing/catalogue")
def put_catalogue_item(p: PageDep) -> Response:
    """Create or replace a catalogue item (a PUT: the same form twice leaves one item)."""
    p.require(*MARKETING)
    form = p.form
    month = month_or_previous(p, form.get("month", ""))
    sku = form.get("sku", "").strip()
    if not _SKU.match(sku):
        return render_marketing(p, month=month, status=422, forms={"catalogue": form},
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
        return render_marketing(
            p, month=month, status=422, forms={"catalogue": form}, errors={"catalogue": errors}
        )
    try:
        run_in_transaction(
            p.engine,
            lambda s: loyalty.put_catalogue_item(
                s, sku=sku, name=body.name, points=body.points, stock=body.stock, now=p.now
            ),
        )
    except PrevenanceError as error:
        errors = problem_errors(p, error, None, CATALOGUE_INPUTS)
        return render_marketing(
            p, month=month, status=error.status, forms={"catalogue": form}, errors={"catalogue": errors}
        )
    return redirect(p, f"/console/marketing?month={month}&done=catalogue")


@router.post("/console/marketing/fx-rates")
def put_fx_rate(p: PageDep) -> Response:
    """Set a currency's euro rate: a new programme version, as ``PUT /v1/programme/fx-rates/{currency}``
    (administrators only, like the API)."""
    user = p.require(Role.ADMIN)
    form = p.form
    month = month_or_previous(p, form.get("month", ""))
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
        return render_marketing(p, month=month, status=422, forms={"fx": form}, errors={"fx": errors})

    try:
        run_in_transaction(
            p.engine,
            lambda s: programme.set_fx_rate(s, currency=currency, rate=str(rate), now=p.now, by=actor(user)),
        )
    except PrevenanceError as error:
        errors = problem_errors(p, error, None, {"currency", "rate"})
        return render_marketing(
            p, month=month, status=error.status, forms={"fx": form}, errors={"fx": errors}
        )
    return redirect(p, f"/console/marketing?month={month}&done=fx")


# --- partners -------------------------------------------------------------------------------------


@router.post("/console/marketing/partners")
def put_partner(p: PageDep) -> Response:
    """Create or replace a partner, as ``PUT /v1/partners/{code}`` (the same form twice leaves one)."""
    p.require(*MARKETING)
    form = p.form
    month = month_or_previous(p, form.get("month", ""))
    code = form.get("code", "").strip()
    if not _CODE.match(code):
        return render_marketing(p, month=month, status=422, forms={"partner": form},
                       errors={"partner": {"code": p.t("err.code")}})  # fmt: skip
    try:
        body = PartnerPut.model_validate(
            {
                "kind": form.get("kind", ""),
                "name": form.get("name", "").strip(),
                "points_per_block": form.get("points_per_block", ""),
                "units_per_block": form.get("units_per_block", ""),
            }
        )
    except ValidationError as error:
        errors = field_errors(p, error, None, PARTNER_INPUTS)
        return render_marketing(
            p, month=month, status=422, forms={"partner": form}, errors={"partner": errors}
        )
    try:
        run_in_transaction(
            p.engine, lambda s: loyalty.put_partner(s, code=code, now=p.now, **body.model_dump())
        )
    except PrevenanceError as error:
        errors = problem_errors(p, error, None, PARTNER_INPUTS)
        return render_marketing(
            p, month=month, status=error.status, forms={"partner": form}, errors={"partner": errors}
        )
    return redirect(p, f"/console/marketing?month={month}&done=partner")


# --- offers and campaigns -------------------------------------------------------------------------


def _offer_request(p: Page, form: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``OfferPut`` body a form describes, or the errors of the inputs that cannot be read."""
    errors: dict[str, str] = {}
    kind = form.get("reward_kind", "")
    wanted = {
        "bonus_points": ("points",),
        "category_multiplier": ("category", "multiplier", "max_points"),
        "ecode": ("sku", "points"),
    }.get(kind, ())
    reward: dict[str, Any] = {}
    for key in (*wanted, "min_spend_eur"):
        name = "reward_min_spend" if key == "min_spend_eur" else f"reward_{key}"
        value = form.get(name, "").strip().replace(",", ".") if key != "sku" else form.get(name, "").strip()
        if not value:
            continue
        if key in ("points", "max_points"):
            try:
                reward[key] = int(value)
            except ValueError:
                errors[name] = p.t("err.integer")
        else:
            reward[key] = value
    eligibility: dict[str, Any] = {}
    products = split_list(form.get("products", ""))
    countries = split_list(form.get("countries", ""), upper=True)
    if products:
        eligibility["products"] = products
    if countries:
        eligibility["countries"] = countries
    request: dict[str, Any] = {
        "partner_merchant": form.get("partner_merchant", "").strip(),
        "partner_category": form.get("partner_category", "").strip() or None,
        "reward_kind": kind,
        "reward": reward,
        "eligibility": eligibility,
        "budget_points": form.get("budget_points", "").strip() or None,
        "title_fr": form.get("title_fr", "").strip(),
        "title_en": form.get("title_en", "").strip(),
        "text_fr": form.get("text_fr", "").strip(),
        "text_en": form.get("text_en", "").strip(),
    }
    for name in ("cap_per_member", "decision_days", "valid_from", "valid_until"):
        if form.get(name, "").strip():
            request[name] = form[name].strip()
    for name in ("unit_cost_eur", "margin_rate", "expected_spend_eur", "holdout_share"):
        if form.get(name, "").strip() or name in ("unit_cost_eur", "margin_rate"):
            request[name] = form.get(name, "").strip().replace(",", ".")
    return request, errors


@router.post("/console/marketing/offers")
def put_offer(p: PageDep) -> Response:
    """Define (or replace) an offer, as ``PUT /v1/offers/{id}``: its id is the form's key, so the same
    definition twice is one offer."""
    p.require(*MARKETING)
    form = p.form
    month = month_or_previous(p, form.get("month", ""))
    offer_id = form.get("id", "").strip()
    request, errors = _offer_request(p, form)
    if not _CODE.match(offer_id):
        errors["id"] = p.t("err.code")
    for name in ("unit_cost_eur", "margin_rate"):
        if not request[name]:
            errors[name] = p.t("err.required")
    try:
        body = OfferPut.model_validate(request)
    except ValidationError as error:
        errors = {**field_errors(p, error, OFFER_RENAME, OFFER_INPUTS), **errors}
    if errors:
        return render_marketing(p, month=month, status=422, forms={"offer": form}, errors={"offer": errors})
    try:
        run_in_transaction(
            p.engine, lambda s: offers.put_offer(s, offer_id=offer_id, data=body.model_dump(), now=p.now)
        )
    except PrevenanceError as error:
        errors = problem_errors(p, error, OFFER_RENAME, OFFER_INPUTS)
        return render_marketing(
            p, month=month, status=error.status, forms={"offer": form}, errors={"offer": errors}
        )
    return redirect(p, f"/console/marketing?month={month}&done=offer")


@router.post("/console/marketing/offers/{offer_id}/status")
def change_offer_status(p: PageDep, offer_id: Annotated[str, Path(min_length=1, max_length=200)]) -> Response:
    """Pause, resume or end an offer, as ``POST /v1/offers/{id}/pause|resume|end`` (repeating is a
    no-op; an ended offer stays ended)."""
    p.require(*MARKETING)
    form = p.form
    month = month_or_previous(p, form.get("month", ""))
    target = OFFER_STATUS.get(form.get("to", ""))
    if target is None:
        return render_marketing(
            p, month=month, status=422, errors={"offer_status": {offer_id: p.t("err.choice")}}
        )
    try:
        run_in_transaction(
            p.engine, lambda s: offers.set_status(s, offer_id=offer_id, status=target, now=p.now)
        )
    except PrevenanceError as error:
        message = next(iter(problem_errors(p, error).values()))
        where = "form" if error.status == 404 else offer_id  # an unknown offer has no row to show it in
        return render_marketing(
            p, month=month, status=error.status, errors={"offer_status": {where: message}}
        )
    return redirect(p, f"/console/marketing?month={month}&done=offer_{form['to']}")
