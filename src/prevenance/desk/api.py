"""REST routes of the service desk.

Contacts, cases, card replacements and reports are staff business (agents, concierge,
supervisors, integrators); a member key may read and set only its own contact preference and read
its own communications.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import (
    AppClock,
    DbEngine,
    Reader,
    ensure_member_scope,
    note_member_access,
    require,
)
from prevenance.common.inputs import Moment, Month, OptionalMonth
from prevenance.common.problems import PROBLEM_JSON
from prevenance.common.responses import respond
from prevenance.db import read_session, run_in_transaction
from prevenance.desk import service
from prevenance.desk.schemas import (
    BenefitAttributionReport,
    BenefitRead,
    BenefitsExplainedCreate,
    BenefitsExplainedRead,
    BenefitUsageCreate,
    BenefitUsageRead,
    CallbackComplete,
    CallbackCreate,
    CallbackRead,
    CardReplacementCreate,
    CardReplacementRead,
    CardReplacementReport,
    CaseRead,
    CaseResolve,
    ChannelRecommendation,
    CommunicationCreate,
    CommunicationRead,
    CommunicationsPage,
    ContactCreate,
    ContactPreferencePut,
    ContactPreferenceRead,
    ContactRead,
    ContactsPage,
    FcrReport,
    MemberBenefits,
    MemberCommunicationsPage,
    MemberContactPreferenceRead,
    ReasonRead,
    ReasonReport,
)

router = APIRouter(prefix="/v1", tags=["desk"])

DeskStaff = Annotated[
    Principal, Depends(require(Role.AGENT, Role.CONCIERGE, Role.SUPERVISOR, Role.INTEGRATOR))
]
CommunicationWriter = Annotated[
    Principal, Depends(require(Role.AGENT, Role.CONCIERGE, Role.MARKETING, Role.INTEGRATOR))
]
PreferenceWriter = Annotated[
    Principal, Depends(require(Role.AGENT, Role.CONCIERGE, Role.SUPERVISOR, Role.INTEGRATOR, Role.MEMBER))
]
Ref = Annotated[str, Path(min_length=1, max_length=200)]
Limit = Annotated[int, Query(ge=1, le=500)]
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "Conflict", **_PROBLEM}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"description": "Invalid input", **_PROBLEM}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Not found", **_PROBLEM}}


def as_seen_by(principal: Principal, body: dict[str, Any], member_model: type[BaseModel]) -> Any:
    """``body`` for a staff key; for a member key only the fields of ``member_model``, the allow-list
    of what a member sees of themselves (no staff identities), as in their 360 and GDPR export."""
    if principal.role is not Role.MEMBER:
        return body
    return JSONResponse(member_model.model_validate(body).model_dump(mode="json"))


# --- contacts and cases -------------------------------------------------------------------------


@router.get("/contact-reasons", response_model=list[ReasonRead])
def get_reasons(_: DeskStaff) -> list[dict[str, str]]:
    """The contact reason taxonomy (group.reason codes) with French and English labels."""
    return service.list_reasons()


@router.post("/contacts", status_code=201, response_model=ContactRead, responses={**CONFLICT, **INVALID})
def post_contact(body: ContactCreate, engine: DbEngine, clock: AppClock, _: DeskStaff) -> JSONResponse:
    """Log a contact; it opens a case, or joins ``case_id``. The same ``id`` and body replay the answer."""
    contact = service.ContactInput(**body.model_dump())
    return respond(
        run_in_transaction(engine, lambda s: service.log_contact(s, contact=contact, now=clock.now()))
    )


@router.get("/contacts/{id}", response_model=ContactRead, responses=NOT_FOUND)
def get_contact(id: Ref, engine: DbEngine, _: DeskStaff, request: Request) -> dict[str, Any]:
    """One contact (a read of its member's record: in their access log)."""
    with read_session(engine) as session:
        contact = service.get_contact(session, contact_id=id)
    note_member_access(request, contact["member_ref"])
    return contact


@router.get("/members/{ref}/contacts", response_model=ContactsPage, responses=NOT_FOUND)
def get_member_contacts(ref: Ref, engine: DbEngine, _: DeskStaff, limit: Limit = 50) -> dict[str, Any]:
    """A member's contacts, newest first."""
    with read_session(engine) as session:
        return service.list_member_contacts(session, member_ref=ref, limit=limit)


@router.get("/members/{ref}/cases", response_model=list[CaseRead], responses=NOT_FOUND)
def get_member_cases(
    ref: Ref,
    engine: DbEngine,
    _: DeskStaff,
    status: Annotated[Literal["open", "resolved"] | None, Query()] = None,
    limit: Limit = 50,
) -> list[dict[str, Any]]:
    """A member's cases, newest first (``status`` filters)."""
    with read_session(engine) as session:
        return service.list_member_cases(session, member_ref=ref, status=status, limit=limit)


@router.get("/cases/{id}", response_model=CaseRead, responses=NOT_FOUND)
def get_case(id: Ref, engine: DbEngine, _: DeskStaff, request: Request) -> dict[str, Any]:
    """A case with its contacts in order (a read of its member's record: in their access log)."""
    with read_session(engine) as session:
        case = service.get_case(session, case_id=id)
    note_member_access(request, case["member_ref"])
    return case


@router.post("/cases/{id}/resolve", response_model=CaseRead, responses=NOT_FOUND)
def post_case_resolve(
    id: Ref,
    engine: DbEngine,
    clock: AppClock,
    _: DeskStaff,
    body: Annotated[CaseResolve | None, Body()] = None,
) -> dict[str, Any]:
    """Resolve a case without a new contact (resolving twice changes nothing)."""
    owner = body.owner if body else None
    return run_in_transaction(
        engine, lambda s: service.resolve_case(s, case_id=id, owner=owner, now=clock.now())
    )


@router.get("/desk/fcr", response_model=FcrReport, responses=INVALID)
def get_fcr(
    engine: DbEngine,
    clock: AppClock,
    _: DeskStaff,
    by: Annotated[Literal["agent", "team", "channel", "reason", "country", "month"], Query()] = "agent",
    month: OptionalMonth = None,
) -> dict[str, Any]:
    """First-contact resolution of the cases opened in ``month`` (or ever), with Wilson 95% intervals."""
    with read_session(engine) as session:
        return service.fcr_report(session, by=by, month=month, now=clock.now())


@router.get("/desk/reasons", response_model=ReasonReport, responses=INVALID)
def get_reason_report(
    engine: DbEngine,
    _: DeskStaff,
    month: Month,
) -> dict[str, Any]:
    """Contact reasons of a month: volume, repeat rate, growth against the previous month, avoidable share."""
    with read_session(engine) as session:
        return service.reason_report(session, month=month)


# --- emergency card replacement -----------------------------------------------------------------


@router.post(
    "/members/{ref}/card-replacements",
    status_code=201,
    response_model=CardReplacementRead,
    responses={**CONFLICT, **INVALID, **NOT_FOUND},
)
def post_card_replacement(
    ref: Ref, body: CardReplacementCreate, engine: DbEngine, clock: AppClock, _: DeskStaff
) -> JSONResponse:
    """Order an emergency card: 2 hours where the city has a city team, 48 hours elsewhere."""
    order = service.CardReplacementInput(member_ref=ref, **body.model_dump())
    return respond(
        run_in_transaction(engine, lambda s: service.order_card_replacement(s, order=order, now=clock.now()))
    )


@router.get("/members/{ref}/card-replacements", response_model=list[CardReplacementRead], responses=NOT_FOUND)
def get_member_card_replacements(
    ref: Ref, engine: DbEngine, clock: AppClock, _: DeskStaff
) -> list[dict[str, Any]]:
    """A member's emergency card orders, newest first."""
    with read_session(engine) as session:
        return service.list_member_card_replacements(session, member_ref=ref, now=clock.now())


@router.get("/card-replacements", response_model=list[CardReplacementRead])
def get_card_replacements(
    engine: DbEngine,
    clock: AppClock,
    _: DeskStaff,
    state: Annotated[Literal["open", "on_track", "at_risk", "breached"], Query()] = "open",
    limit: Limit = 500,
) -> list[dict[str, Any]]:
    """Undelivered orders in a state (at risk: under a quarter of the promise left), soonest due first."""
    with read_session(engine) as session:
        return service.list_card_replacements(session, state=state, now=clock.now(), limit=limit)


@router.get("/card-replacements/{id}", response_model=CardReplacementRead, responses=NOT_FOUND)
def get_card_replacement(
    id: Ref, engine: DbEngine, clock: AppClock, _: DeskStaff, request: Request
) -> dict[str, Any]:
    """One order and where it stands against its promise now (a read of its member's record: in
    their access log)."""
    with read_session(engine) as session:
        order = service.get_card_replacement(session, replacement_id=id, now=clock.now())
    note_member_access(request, order["member_ref"])
    return order


def _advance(action: str) -> Any:
    def advance(id: Ref, engine: DbEngine, clock: AppClock, _: DeskStaff) -> dict[str, Any]:
        return run_in_transaction(
            engine,
            lambda s: service.advance_card_replacement(s, replacement_id=id, action=action, now=clock.now()),
        )

    advance.__doc__ = f"Mark the order {action}ed now (repeating it changes nothing; out of order: 409)."
    advance.__name__ = f"post_card_replacement_{action}"
    return advance


for _action in ("dispatch", "deliver"):
    router.add_api_route(
        f"/card-replacements/{{id}}/{_action}",
        _advance(_action),
        methods=["POST"],
        response_model=CardReplacementRead,
        responses={**CONFLICT, **NOT_FOUND},
    )


@router.get("/desk/card-replacements", response_model=CardReplacementReport, responses=INVALID)
def get_card_replacement_report(
    engine: DbEngine,
    clock: AppClock,
    _: DeskStaff,
    month: Month,
) -> dict[str, Any]:
    """Share of the month's emergency cards delivered within their promise (Wilson 95% interval)."""
    with read_session(engine) as session:
        return service.card_replacement_report(session, month=month, now=clock.now())


# --- communications log -------------------------------------------------------------------------


@router.post(
    "/communications", status_code=201, response_model=CommunicationRead, responses={**CONFLICT, **INVALID}
)
def post_communication(
    body: CommunicationCreate, engine: DbEngine, clock: AppClock, principal: CommunicationWriter
) -> JSONResponse:
    """Log something sent to a member (statement, marketing, notice, survey); idempotent by ``id``."""
    communication = service.CommunicationInput(**body.model_dump())
    return respond(
        run_in_transaction(
            engine,
            lambda s: service.log_communication(
                s, communication=communication, source=principal.name, now=clock.now()
            ),
        )
    )


@router.get(
    "/members/{ref}/communications",
    response_model=CommunicationsPage | MemberCommunicationsPage,
    responses=NOT_FOUND,
)
def get_member_communications(ref: Ref, engine: DbEngine, principal: Reader, limit: Limit = 50) -> Any:
    """Everything sent to a member, newest first (a member key: without ``source``)."""
    ensure_member_scope(principal, ref)
    with read_session(engine) as session:
        page = service.list_member_communications(session, member_ref=ref, limit=limit)
    return as_seen_by(principal, page, MemberCommunicationsPage)


# --- contact preference -------------------------------------------------------------------------


@router.put(
    "/members/{ref}/contact-preference",
    response_model=ContactPreferenceRead | MemberContactPreferenceRead,
    responses={**INVALID, **NOT_FOUND},
)
def put_contact_preference(
    ref: Ref, body: ContactPreferencePut, engine: DbEngine, clock: AppClock, principal: PreferenceWriter
) -> Any:
    """Set how the member wants to be approached; ``leave_me_alone`` stops all outbound marketing
    (a member key: answered without ``updated_by``)."""
    ensure_member_scope(principal, ref)
    preference = run_in_transaction(
        engine,
        lambda s: service.set_contact_preference(
            s,
            member_ref=ref,
            mode=body.mode,
            preferred_channel=body.preferred_channel,
            by=principal.name,
            now=clock.now(),
        ),
    )
    return as_seen_by(principal, preference, MemberContactPreferenceRead)


@router.get(
    "/members/{ref}/contact-preference",
    response_model=ContactPreferenceRead | MemberContactPreferenceRead,
    responses=NOT_FOUND,
)
def get_contact_preference(ref: Ref, engine: DbEngine, principal: Reader) -> Any:
    """How the member wants to be approached (``mode`` null when never stated; a member key:
    without ``updated_by``)."""
    ensure_member_scope(principal, ref)
    with read_session(engine) as session:
        preference = service.get_contact_preference(session, member_ref=ref)
    return as_seen_by(principal, preference, MemberContactPreferenceRead)


# --- channel routing ----------------------------------------------------------------------------


@router.get(
    "/members/{ref}/channel-recommendation",
    response_model=ChannelRecommendation,
    responses={**NOT_FOUND, **INVALID},
)
def get_channel_recommendation(
    ref: Ref,
    engine: DbEngine,
    clock: AppClock,
    _: DeskStaff,
    reason: Annotated[str, Query(min_length=1, max_length=80, examples=["statement.question"])],
) -> dict[str, Any]:
    """The channel that solves this reason fastest for this member, from measured resolution
    times, honouring the member's contact preference; every channel's figures are listed."""
    with read_session(engine) as session:
        return service.channel_recommendation(session, member_ref=ref, reason=reason, now=clock.now())


@router.post(
    "/members/{ref}/callbacks",
    status_code=201,
    response_model=CallbackRead,
    responses={**CONFLICT, **INVALID, **NOT_FOUND},
)
def post_callback(
    ref: Ref, body: CallbackCreate, engine: DbEngine, clock: AppClock, principal: DeskStaff
) -> JSONResponse:
    """Book a call-back (``scheduled_for`` in the future); ``id`` is the idempotency key."""
    callback = service.CallbackInput(member_ref=ref, **body.model_dump())
    return respond(
        run_in_transaction(
            engine, lambda s: service.book_callback(s, callback=callback, by=principal.name, now=clock.now())
        )
    )


@router.get("/callbacks", response_model=list[CallbackRead])
def get_callbacks(
    engine: DbEngine,
    _: DeskStaff,
    due_before: Annotated[Moment | None, Query()] = None,
    status: Annotated[Literal["scheduled", "completed"], Query()] = "scheduled",
    limit: Limit = 500,
) -> list[dict[str, Any]]:
    """Call-backs to make (or made), soonest first; ``due_before`` keeps those scheduled before it."""
    with read_session(engine) as session:
        return service.list_callbacks(session, due_before=due_before, status=status, limit=limit)


@router.get("/callbacks/{id}", response_model=CallbackRead, responses=NOT_FOUND)
def get_callback(id: Ref, engine: DbEngine, _: DeskStaff, request: Request) -> dict[str, Any]:
    """One call-back (a read of its member's record: in their access log)."""
    with read_session(engine) as session:
        callback = service.get_callback(session, callback_id=id)
    note_member_access(request, callback["member_ref"])
    return callback


@router.post(
    "/callbacks/{id}/complete",
    response_model=CallbackRead,
    responses={**CONFLICT, **INVALID, **NOT_FOUND},
)
def post_callback_complete(
    id: Ref, body: CallbackComplete, engine: DbEngine, clock: AppClock, _: DeskStaff
) -> dict[str, Any]:
    """Mark the call-back made by this contact (the same call again changes nothing)."""
    return run_in_transaction(
        engine,
        lambda s: service.complete_callback(s, callback_id=id, contact_id=body.contact_id, now=clock.now()),
    )


# --- benefits -----------------------------------------------------------------------------------


@router.get("/benefits", response_model=list[BenefitRead])
def get_benefits(_: Reader) -> list[dict[str, Any]]:
    """The benefits catalogue with French and English labels and the products entitled to each."""
    return service.list_benefit_catalogue()


@router.post(
    "/members/{ref}/benefit-usages",
    status_code=201,
    response_model=BenefitUsageRead,
    responses={**CONFLICT, **INVALID, **NOT_FOUND},
)
def post_benefit_usage(
    ref: Ref, body: BenefitUsageCreate, engine: DbEngine, clock: AppClock, principal: DeskStaff
) -> JSONResponse:
    """Record a benefit the member used (their card must be entitled to it); idempotent by ``id``."""
    usage = service.BenefitUsageInput(member_ref=ref, **body.model_dump())
    return respond(
        run_in_transaction(
            engine,
            lambda s: service.record_benefit_usage(s, usage=usage, by=principal.name, now=clock.now()),
        )
    )


@router.get("/members/{ref}/benefits", response_model=MemberBenefits, responses=NOT_FOUND)
def get_member_benefits(ref: Ref, engine: DbEngine, clock: AppClock, principal: Reader) -> dict[str, Any]:
    """The benefits the member's card is entitled to, last used and whether unused for 12 months."""
    ensure_member_scope(principal, ref)
    with read_session(engine) as session:
        return service.list_member_benefits(session, member_ref=ref, now=clock.now())


@router.post(
    "/contacts/{id}/benefits-explained",
    response_model=BenefitsExplainedRead,
    responses={**INVALID, **NOT_FOUND},
)
def post_benefits_explained(
    id: Ref, body: BenefitsExplainedCreate, engine: DbEngine, clock: AppClock, _: DeskStaff
) -> dict[str, Any]:
    """Record the benefits the agent explained at this contact (repeating one changes nothing)."""
    return run_in_transaction(
        engine,
        lambda s: service.explain_benefits(s, contact_id=id, benefits=body.benefits, now=clock.now()),
    )


@router.get("/desk/benefits/attribution", response_model=BenefitAttributionReport, responses=INVALID)
def get_benefit_attribution(
    engine: DbEngine,
    clock: AppClock,
    _: DeskStaff,
    month: Month,
) -> dict[str, Any]:
    """Benefits explained at the month's contacts, then used within the window: per agent and
    benefit, with Wilson 95% intervals."""
    with read_session(engine) as session:
        return service.benefit_attribution_report(session, month=month, now=clock.now())
