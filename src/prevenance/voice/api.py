"""REST routes of the voice domain, and the public survey page (mounted here, outside ``/v1``).

Scores, scorecards and country comparisons are for supervisors, marketing and admins; publishing a
scorecard (it feeds pay) is for supervisors and admins. A member's survey consent is set by the
member (own key), an agent or an admin.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Header, Path, Query
from fastapi.responses import JSONResponse

from prevenance.common import inputs
from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, ensure_member_scope, require
from prevenance.common.problems import PROBLEM_JSON
from prevenance.common.responses import respond
from prevenance.db import read_session, run_in_transaction
from prevenance.voice import service, survey_page
from prevenance.voice.schemas import (
    BarometerRead,
    CountriesRead,
    ScorecardPublish,
    ScorecardRead,
    ScorecardVersionRead,
    ScoresRead,
    SuggestionRead,
    SuggestionStatus,
    SuggestionUpdate,
    SurveyConsentPut,
    SurveyConsentRead,
    TopicsRead,
)

router = APIRouter(tags=["voice"])
router.include_router(survey_page.router)

Analyst = Annotated[Principal, Depends(require(Role.SUPERVISOR, Role.MARKETING))]
Publisher = Annotated[Principal, Depends(require(Role.SUPERVISOR))]
ConsentWriter = Annotated[Principal, Depends(require(Role.MEMBER, Role.AGENT))]
Ref = Annotated[str, Path(min_length=1, max_length=200)]
MonthQuery = inputs.Month
MonthPath = Annotated[str, Path(description=inputs.MONTH_TEXT, examples=["2026-01"]), inputs.MONTH_CHECK]
OptionalMonth = inputs.OptionalMonth
Quarter = inputs.Quarter
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"description": "Invalid input", **_PROBLEM}}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"description": "Not found", **_PROBLEM}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"description": "Conflict", **_PROBLEM}}


@router.put(
    "/v1/members/{ref}/survey-consent", response_model=SurveyConsentRead, responses={**NOT_FOUND, **INVALID}
)
def put_survey_consent(
    ref: Ref, body: SurveyConsentPut, engine: DbEngine, clock: AppClock, principal: ConsentWriter
) -> dict[str, Any]:
    """Opt a member out of (or back into) satisfaction surveys; an opted-out member is never asked."""
    ensure_member_scope(principal, ref)
    return run_in_transaction(
        engine,
        lambda s: service.set_survey_consent(
            s, member_ref=ref, opted_out=body.opted_out, by=principal.name, now=clock.now()
        ),
    )


@router.get("/v1/members/{ref}/survey-consent", response_model=SurveyConsentRead, responses=NOT_FOUND)
def get_survey_consent(ref: Ref, engine: DbEngine, principal: ConsentWriter) -> dict[str, Any]:
    """A member's survey choice."""
    ensure_member_scope(principal, ref)
    with read_session(engine) as session:
        return service.get_survey_consent(session, member_ref=ref)


@router.get("/v1/voice/scores", response_model=ScoresRead, responses=INVALID)
def get_scores(
    engine: DbEngine,
    _: Analyst,
    month: MonthQuery,
    by: Annotated[Literal["agent", "team", "channel", "reason", "country"], Query()] = "agent",
) -> dict[str, Any]:
    """RTF (% 9-10 minus % 0-6) and excellence rate (% top box) by ``by`` for a month, each with n and
    a 95% interval; by agent also the shrunk RTF and the probability of being above target."""
    with read_session(engine) as session:
        return service.scores(session, by=by, month=month)


@router.get("/v1/voice/scorecards", response_model=ScorecardRead, responses={**NOT_FOUND, **INVALID})
def get_scorecard(
    engine: DbEngine,
    _: Analyst,
    month: MonthQuery,
    version: Annotated[int | None, Query(ge=1, le=inputs.INT32_MAX)] = None,
) -> dict[str, Any]:
    """A published monthly scorecard (latest version unless ``version``), with every version's who and why."""
    with read_session(engine) as session:
        return service.get_scorecard(session, month=month, version=version)


@router.post(
    "/v1/voice/scorecards/{month}/publish",
    status_code=201,
    response_model=ScorecardVersionRead,
    responses={**CONFLICT, **INVALID},
)
def post_scorecard_publish(
    month: MonthPath,
    body: ScorecardPublish,
    engine: DbEngine,
    clock: AppClock,
    _: Publisher,
    idempotency_key: Annotated[str | None, Header(max_length=200)] = None,
) -> JSONResponse:
    """Freeze the month's scorecard as a new version (201); the same content again answers the latest
    version (200). With ``Idempotency-Key`` the first answer of that key is replayed."""
    return respond(
        run_in_transaction(
            engine,
            lambda s: service.publish_scorecard(
                s, month=month, by=body.by, reason=body.reason, now=clock.now(), key=idempotency_key
            ),
        )
    )


@router.get("/v1/voice/barometers", response_model=list[BarometerRead], responses=INVALID)
def get_barometers(
    engine: DbEngine,
    _: Analyst,
    quarter: inputs.OptionalQuarter = None,
    country: Annotated[str | None, Query(pattern=r"^[A-Z]{2}$")] = None,
) -> list[dict[str, Any]]:
    """Competitor and market barometers, as imported."""
    with read_session(engine) as session:
        return service.list_barometers(session, quarter=quarter, country=country)


@router.get("/v1/voice/countries", response_model=CountriesRead, responses=INVALID)
def get_countries(engine: DbEngine, _: Analyst, quarter: Quarter) -> dict[str, Any]:
    """Raw and culture-calibrated RTF per country for a quarter, with barometers beside."""
    with read_session(engine) as session:
        return service.country_comparison(session, quarter=quarter)


@router.get("/v1/voice/suggestions", response_model=list[SuggestionRead], responses=INVALID)
def get_suggestions(
    engine: DbEngine,
    _: Analyst,
    status: Annotated[SuggestionStatus | None, Query()] = None,
    topic: Annotated[str | None, Query(max_length=60)] = None,
    month: OptionalMonth = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Customers' suggestions, newest first."""
    with read_session(engine) as session:
        return service.list_suggestions(session, status=status, topic=topic, month=month, limit=limit)


@router.patch("/v1/voice/suggestions/{id}", response_model=SuggestionRead, responses={**NOT_FOUND, **INVALID})
def patch_suggestion(
    id: Ref, body: SuggestionUpdate, engine: DbEngine, clock: AppClock, principal: Analyst
) -> dict[str, Any]:
    """Set a suggestion's status and what was done with it (setting the same values changes nothing)."""
    return run_in_transaction(
        engine,
        lambda s: service.update_suggestion(
            s,
            suggestion_id=id,
            status=body.status,
            link=body.link,
            note=body.note,
            by=principal.name,
            now=clock.now(),
        ),
    )


@router.get("/v1/voice/topics", response_model=TopicsRead, responses=INVALID)
def get_topics(engine: DbEngine, _: Analyst, month: OptionalMonth = None) -> dict[str, Any]:
    """Answers mentioning each topic (keyword rules over comments and suggestions), by month."""
    with read_session(engine) as session:
        return service.topic_counts(session, month=month)
