"""The member portal: balance and movements, redemptions, transfers, travel, referral, offers and
the member's contact preference."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from prevenance.common.auth import Role
from prevenance.common.ids import new_id
from prevenance.common.problems import PrevenanceError
from prevenance.console.pages_desk import apply_preference_form
from prevenance.console.web import (
    Page,
    PageDep,
    choices,
    console_router,
    field_errors,
    problem_errors,
    redirect,
    render,
)
from prevenance.customers import service as customers
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import rules as desk_rules
from prevenance.desk import service as desk
from prevenance.loyalty import service as loyalty
from prevenance.loyalty.schemas import RedemptionCreate, ReferralCodeRedeem
from prevenance.offers import service as offers

router = console_router()
PORTAL = (Role.MEMBER,)
_REDEMPTION = TypeAdapter(RedemptionCreate)


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
        member = customers.get_member(session, ref=ref)
        balance = loyalty.get_balance(session, member_ref=ref)
        movements = loyalty.list_latest_movements(session, member_ref=ref, limit=20)
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
    errors = apply_preference_form(p, user.member_ref, f"member:{user.member_ref}")
    if errors:
        return _render_portal(p, status=422, forms={"preference": p.form}, errors={"preference": errors})
    return redirect(p, "/portal/?done=preference")
