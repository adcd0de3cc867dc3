"""REST routes of the rewards programme."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import Admin, AppClock, DbEngine, Reader, ensure_member_scope, require
from prevenance.common.idempotency import Outcome
from prevenance.common.inputs import Month, OptionalMonth
from prevenance.common.problems import PROBLEM_JSON, InvalidInput, NotFound
from prevenance.db import read_session, read_statements, run_in_transaction
from prevenance.loyalty import batcher, earning, ledger, programme, service
from prevenance.loyalty.errors import LedgerBroken
from prevenance.loyalty.schemas import (
    AuditRead,
    BalanceRead,
    CatalogueItemPut,
    CatalogueItemRead,
    ECodesLoad,
    ECodesLoaded,
    FxRatePut,
    MemberReferralsRead,
    MovementsPage,
    PartnerPut,
    PartnerRead,
    ProgrammeRead,
    RedemptionCreate,
    RedemptionRead,
    ReferralCodeRead,
    ReferralCodeRedeem,
    ReferralCreate,
    ReferralRead,
    ReferralReportRead,
    ReferralsPage,
    ReferredRead,
    RefundCreate,
    RefundRead,
    TransactionCreate,
    TransactionRead,
)
from prevenance.loyalty.tables import CatalogueItem, Partner

router = APIRouter(prefix="/v1", tags=["rewards"])

Integrator = Annotated[Principal, Depends(require(Role.INTEGRATOR))]
Marketing = Annotated[Principal, Depends(require(Role.MARKETING))]
Redeemer = Annotated[Principal, Depends(require(Role.AGENT, Role.CONCIERGE, Role.MEMBER, Role.INTEGRATOR))]
HoldResolver = Annotated[Principal, Depends(require(Role.AGENT, Role.CONCIERGE, Role.INTEGRATOR))]
# Staff and integrators record a referral between two refs; a member never names a referee (that
# would need no consent and would tell whether a ref exists): it shares its referral code instead.
Referrer = Annotated[Principal, Depends(require(Role.AGENT, Role.MARKETING, Role.INTEGRATOR))]
# Following referrals across members (both refs shown) is for the desk and marketing.
ReferralViewer = Annotated[Principal, Depends(require(Role.AGENT, Role.MARKETING, Role.SUPERVISOR))]
CodeHolder = Annotated[Principal, Depends(require(Role.AGENT, Role.MARKETING, Role.MEMBER, Role.INTEGRATOR))]
Ref = Annotated[str, Path(min_length=1, max_length=200)]
# As long as their columns: a longer one is a 422, not a 500.
Sku = Annotated[str, Path(min_length=1, max_length=CatalogueItem.__table__.c.sku.type.length)]
PartnerCode = Annotated[str, Path(min_length=1, max_length=Partner.__table__.c.code.type.length)]
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "Conflict", "content": {PROBLEM_JSON: {}}}}
INVALID: dict[int | str, dict[str, Any]] = {
    422: {"description": "Invalid input", "content": {PROBLEM_JSON: {}}}
}
POSTS: dict[int | str, dict[str, Any]] = {
    422: {
        "description": "Invalid input, or a posting past the ledger's bound (`balance-limit`)",
        "content": {PROBLEM_JSON: {}},
    }
}
"""The 422 of a route that credits a member: ``ledger_bounds`` may refuse the posting."""


def _respond(outcome: Outcome) -> JSONResponse:
    media = PROBLEM_JSON if outcome.status_code >= 400 else "application/json"
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, status_code=outcome.status_code, media_type=media, headers=headers)


@router.post(
    "/transactions", status_code=201, response_model=TransactionRead, responses={**CONFLICT, **POSTS}
)
async def post_transaction(body: TransactionCreate, request: Request, _: Integrator) -> JSONResponse:
    """Earn points for a card transaction. The same ``id`` and body replay the first answer.

    The earn joins its process's batch (group commit, ``loyalty.batcher``); the answer is sent once
    that batch has committed."""
    tx = service.TransactionInput(
        id=body.id,
        member_ref=body.member_ref,
        amount=body.amount,
        currency=body.currency,
        merchant=body.merchant,
        category=body.category,
        occurred_at=body.occurred_at,
    )
    # The app's batching (engine, clock, batch limits), set up once with the app.
    batching: batcher.EarnBatching = request.app.state.earn_batching
    return _respond(await batching.batcher().submit(earning.EarnRequest.of(tx)))


@router.post(
    "/transactions/{id}/refunds",
    status_code=201,
    response_model=RefundRead,
    responses={**CONFLICT, **POSTS},
)
def post_refund(
    id: Ref, body: RefundCreate, engine: DbEngine, clock: AppClock, _: Integrator
) -> JSONResponse:
    """Refund part or all of a transaction; the points follow the remaining amount."""
    return _respond(
        run_in_transaction(
            engine,
            lambda s: service.refund_transaction(
                s, transaction_id=id, refund_id=body.id, amount=body.amount, now=clock.now()
            ),
        )
    )


@router.get("/members/{ref}/balance", response_model=BalanceRead)
def get_balance(ref: Ref, engine: DbEngine, principal: Reader) -> dict[str, Any]:
    """Points and miles of a member."""
    ensure_member_scope(principal, ref)
    with read_statements(engine) as session:
        return service.get_balance(session, member_ref=ref)


@router.get("/members/{ref}/movements", response_model=MovementsPage)
def get_movements(
    ref: Ref,
    engine: DbEngine,
    principal: Reader,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
) -> dict[str, Any]:
    """The member's movements, newest first; pass ``next_cursor`` back as ``cursor`` for more."""
    ensure_member_scope(principal, ref)
    with read_statements(engine) as session:
        return service.list_movements(session, member_ref=ref, limit=limit, cursor=cursor)


@router.put(
    "/catalogue/{sku}", response_model=CatalogueItemRead, responses={201: {"model": CatalogueItemRead}}
)
def put_catalogue_item(
    sku: Sku, body: CatalogueItemPut, engine: DbEngine, clock: AppClock, _: Marketing, response: Response
) -> CatalogueItemRead:
    """Create (201) or replace (200) a catalogue item."""

    def use_case(session: Any) -> tuple[CatalogueItemRead, bool]:
        item, created = service.put_catalogue_item(session, sku=sku, now=clock.now(), **body.model_dump())
        return CatalogueItemRead(sku=item.sku, name=item.name, points=item.points, stock=item.stock), created

    read, created = run_in_transaction(engine, use_case)
    response.status_code = 201 if created else 200
    return read


@router.get("/catalogue", response_model=list[CatalogueItemRead])
def get_catalogue(engine: DbEngine, _: Reader) -> list[CatalogueItemRead]:
    """Every catalogue item with its price in points and its stock."""
    with read_session(engine) as session:
        return [
            CatalogueItemRead(sku=i.sku, name=i.name, points=i.points, stock=i.stock)
            for i in service.list_catalogue(session)
        ]


@router.get(
    "/catalogue/{sku}",
    response_model=CatalogueItemRead,
    responses={404: {"description": "Unknown SKU", "content": {PROBLEM_JSON: {}}}},
)
def find_catalogue_item(sku: Sku, engine: DbEngine, _: Reader) -> CatalogueItemRead:
    """One catalogue item with its price in points and its stock."""
    with read_session(engine) as session:
        item = service.find_catalogue_item(session, sku=sku)
        if item is None:
            raise NotFound(f"no catalogue item {sku!r}", field="sku")
        return CatalogueItemRead(sku=item.sku, name=item.name, points=item.points, stock=item.stock)


def _partner_read(partner: Any) -> PartnerRead:
    return PartnerRead(
        code=partner.code,
        kind=partner.kind,
        name=partner.name,
        points_per_block=partner.points_per_block,
        units_per_block=partner.units_per_block,
    )


@router.put("/partners/{code}", response_model=PartnerRead, responses={201: {"model": PartnerRead}})
def put_partner(
    code: PartnerCode, body: PartnerPut, engine: DbEngine, clock: AppClock, _: Marketing, response: Response
) -> PartnerRead:
    """Create (201) or replace (200) a partner."""

    def use_case(session: Any) -> tuple[PartnerRead, bool]:
        partner, created = service.put_partner(session, code=code, now=clock.now(), **body.model_dump())
        return _partner_read(partner), created

    read, created = run_in_transaction(engine, use_case)
    response.status_code = 201 if created else 200
    return read


@router.get("/partners", response_model=list[PartnerRead])
def get_partners(engine: DbEngine, _: Reader) -> list[PartnerRead]:
    """Every partner."""
    with read_session(engine) as session:
        return [_partner_read(p) for p in service.list_partners(session)]


@router.post("/partners/{code}/ecodes", status_code=201, response_model=ECodesLoaded)
def post_ecodes(
    code: PartnerCode, body: ECodesLoad, engine: DbEngine, clock: AppClock, _: Marketing
) -> dict[str, Any]:
    """Load codes into a partner's pool (codes already loaded are skipped)."""
    return run_in_transaction(
        engine,
        lambda s: service.load_ecodes(
            s, partner_code=code, points=body.points, codes=body.codes, now=clock.now()
        ),
    )


_REDEMPTION_KINDS = ("catalogue", "ecode", "transfer", "travel")


def _untag(error: dict[str, Any]) -> dict[str, Any]:
    loc = tuple(error.get("loc", ()))
    if error.get("type") in ("union_tag_invalid", "union_tag_not_found") and loc == ("body",):
        return {**error, "loc": ("body", "kind")}
    if len(loc) >= 3 and loc[0] == "body" and loc[1] in _REDEMPTION_KINDS:
        return {**error, "loc": ("body", *loc[2:])}
    return error


class _UntaggedBodyRoute(APIRoute):
    """Name a redemption's offending field as the caller wrote it.

    Pydantic puts the discriminator's tag in an error's location (``catalogue.quantity``) and blames
    the whole body for a bad ``kind``; the caller sent ``quantity`` and ``kind``.
    """

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def untagged(request: Request) -> Response:
            try:
                return await handler(request)
            except RequestValidationError as error:
                raise RequestValidationError([_untag(e) for e in error.errors()], body=error.body) from None

        return untagged


def post_redemption(
    ref: Ref,
    body: Annotated[RedemptionCreate, Body()],
    engine: DbEngine,
    clock: AppClock,
    principal: Redeemer,
) -> JSONResponse:
    """Use points. ``kind`` is catalogue, ecode, transfer or travel (held until confirmed)."""
    ensure_member_scope(principal, ref)
    request = body.model_dump()
    return _respond(
        run_in_transaction(
            engine, lambda s: service.redeem(s, member_ref=ref, request=request, now=clock.now())
        )
    )


router.add_api_route(
    "/members/{ref}/redemptions",
    post_redemption,
    methods=["POST"],
    status_code=201,
    response_model=RedemptionRead,
    responses={**CONFLICT, **INVALID},
    route_class_override=_UntaggedBodyRoute,
)


@router.get("/redemptions/{id}", response_model=RedemptionRead)
def get_redemption(id: Ref, engine: DbEngine, principal: Reader) -> dict[str, Any]:
    """A redemption and its status."""
    with read_session(engine) as session:
        body = service.get_redemption(session, redemption_id=id)
    ensure_member_scope(principal, body["member_ref"])
    return body


@router.post("/redemptions/{id}/confirm", response_model=RedemptionRead, responses={**CONFLICT, **POSTS})
def confirm_redemption(id: Ref, engine: DbEngine, clock: AppClock, _: HoldResolver) -> JSONResponse:
    """Post held travel points once the booking is confirmed."""
    return _respond(
        run_in_transaction(
            engine, lambda s: service.resolve_hold(s, redemption_id=id, action="confirm", now=clock.now())
        )
    )


@router.post("/redemptions/{id}/void", response_model=RedemptionRead, responses={**CONFLICT, **POSTS})
def void_redemption(id: Ref, engine: DbEngine, clock: AppClock, _: HoldResolver) -> JSONResponse:
    """Release held travel points (booking abandoned)."""
    return _respond(
        run_in_transaction(
            engine, lambda s: service.resolve_hold(s, redemption_id=id, action="void", now=clock.now())
        )
    )


def _secret(request: Request) -> str:
    secret: str = request.app.state.settings.secret_key
    return secret


Secret = Annotated[str, Depends(_secret)]


@router.post("/referrals", status_code=201, response_model=ReferralRead, responses=INVALID)
def post_referral(
    body: ReferralCreate,
    engine: DbEngine,
    clock: AppClock,
    _: Referrer,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Record a referral between two members (staff and integrators; a member shares its referral
    code instead); the referrer's bonus is credited at the referee's first transaction."""
    return _respond(
        run_in_transaction(
            engine,
            lambda s: service.create_referral(
                s,
                referrer_ref=body.referrer_ref,
                referee_ref=body.referee_ref,
                key=idempotency_key,
                now=clock.now(),
            ),
        )
    )


@router.get("/members/{ref}/referrals", response_model=MemberReferralsRead)
def get_member_referrals(ref: Ref, engine: DbEngine, principal: Reader) -> dict[str, Any]:
    """The member's referrals, as referrer and as referee. A member key sees its own side only:
    the other party's ref is null (the referee consented to the referrer by entering a code, not to
    being shown to them)."""
    ensure_member_scope(principal, ref)
    with read_session(engine) as session:
        return service.list_member_referrals(session, member_ref=ref, staff=principal.role is not Role.MEMBER)


@router.get("/referrals", response_model=ReferralsPage, responses=INVALID)
def get_referrals(
    engine: DbEngine,
    _: ReferralViewer,
    month: OptionalMonth = None,
    status: Annotated[Literal["pending", "rewarded"] | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    """Referrals made, newest first, filtered by status and by the month they were made in."""
    with read_session(engine) as session:
        return service.list_referrals(session, status=status, month=month, limit=limit)


@router.get("/referrals/report", response_model=ReferralReportRead, responses=INVALID)
def get_referrals_report(month: Month, engine: DbEngine, _: ReferralViewer) -> dict[str, Any]:
    """The month's referrals: made, converted, conversion rate with its 95 % Wilson interval, and the
    bonuses paid."""
    with read_session(engine) as session:
        return service.referral_report(session, month=month)


@router.get("/members/{ref}/referral-code", response_model=ReferralCodeRead)
def get_referral_code(ref: Ref, engine: DbEngine, principal: CodeHolder, secret: Secret) -> dict[str, Any]:
    """The member's referral code: a new customer who enters it is referred by this member."""
    ensure_member_scope(principal, ref)
    with read_session(engine) as session:
        return service.get_referral_code(session, member_ref=ref, secret=secret)


@router.post("/members/{ref}/referral", status_code=201, response_model=ReferredRead, responses=INVALID)
def post_member_referral(
    ref: Ref,
    body: ReferralCodeRedeem,
    engine: DbEngine,
    clock: AppClock,
    principal: CodeHolder,
    secret: Secret,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """The member (a new customer, or an integrator for them at onboarding) enters the referral code
    a friend gave them; the friend's bonus is credited at the member's first transaction."""
    ensure_member_scope(principal, ref)
    return _respond(
        run_in_transaction(
            engine,
            lambda s: service.redeem_referral_code(
                s,
                referee_ref=ref,
                code=body.referral_code,
                key=idempotency_key,
                secret=secret,
                now=clock.now(),
            ),
        )
    )


@router.get("/ledger/audit", response_model=AuditRead, responses={500: {"content": {PROBLEM_JSON: {}}}})
def get_audit(engine: DbEngine, _: Admin) -> dict[str, Any]:
    """Prove the ledger's invariants; a broken one answers 500 with the failing checks."""
    with read_session(engine) as session:
        report = ledger.audit(session)
    if not report["ok"]:
        failed = [c["name"] for c in report["checks"] if not c["ok"]]
        raise LedgerBroken("ledger invariants broken: " + ", ".join(failed), report=report)
    return report


@router.get("/programme", response_model=ProgrammeRead)
def get_programme(engine: DbEngine, _: Reader) -> ProgrammeRead:
    """The programme document in force."""
    with read_session(engine) as session:
        found = programme.current_document(session)
    if found is None:
        raise InvalidInput("no programme installed")
    return ProgrammeRead(version=found[0], document=found[1])


@router.put("/programme", response_model=ProgrammeRead, responses=INVALID)
def put_programme(
    document: Annotated[dict[str, Any], Body()], engine: DbEngine, clock: AppClock, principal: Admin
) -> ProgrammeRead:
    """Replace the programme (a new version; earlier transactions keep the rules they earned under)."""
    version, _ = run_in_transaction(
        engine, lambda s: programme.install(s, document=document, now=clock.now(), by=principal.name)
    )
    return ProgrammeRead(version=version, document=document)


@router.put("/programme/fx-rates/{currency}", response_model=ProgrammeRead, responses=INVALID)
def put_fx_rate(
    currency: Annotated[str, Path(pattern="^[A-Z]{3}$")],
    body: FxRatePut,
    engine: DbEngine,
    clock: AppClock,
    principal: Admin,
) -> ProgrammeRead:
    """Set the euro rate of a currency (a new programme version; the rate used is kept per transaction)."""
    version, document = run_in_transaction(
        engine,
        lambda s: programme.set_fx_rate(
            s, currency=currency, rate=body.rate, now=clock.now(), by=principal.name
        ),
    )
    return ProgrammeRead(version=version, document=document)
