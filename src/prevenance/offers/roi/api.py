"""``GET /v1/offers/{offer_id}/roi``: the campaign's effect against its control group, with CIs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, require
from prevenance.common.problems import PROBLEM_JSON
from prevenance.db import read_session, run_in_transaction
from prevenance.offers import service
from prevenance.offers.roi import rules as roi
from prevenance.offers.roi import service as roi_service

router = APIRouter(prefix="/v1", tags=["offers"])
Analyst = Annotated[Principal, Depends(require(Role.MARKETING, Role.SUPERVISOR))]
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown offer", **_PROBLEM},
    422: {"description": "Invalid parameter, or a group too small for an interval", **_PROBLEM},
}


@router.get("/offers/{offer_id}/roi", responses=RESPONSES)
def get_offer_roi(
    engine: DbEngine,
    clock: AppClock,
    _: Analyst,
    offer_id: Annotated[str, Path(min_length=1, max_length=200)],
    before_days: Annotated[int, Query(ge=1, le=730, description="days before t0")] = roi.DEFAULT_BEFORE_DAYS,
    after_days: Annotated[int, Query(ge=1, le=730, description="days after t0")] = roi.DEFAULT_AFTER_DAYS,
    country: Annotated[str | None, Query(min_length=2, max_length=2, description="ISO country")] = None,
    min_arm: Annotated[int, Query(ge=2, le=1_000_000, description="smallest group analysed")] = (
        roi.DEFAULT_MIN_ARM
    ),
    ci: Annotated[Literal["welch", "bootstrap"], Query(description="interval method")] = "welch",
    seed: Annotated[int, Query(ge=0, description="bootstrap seed")] = 0,
    replicates: Annotated[int, Query(ge=100, le=20_000, description="bootstrap replicates")] = (
        roi.DEFAULT_REPLICATES
    ),
) -> dict[str, Any]:
    """Difference in differences (spend, transactions, attrition) and ROI, each with a 95% CI, cut by
    country; the method is in ``docs/offers-methods.md#roi``. Read-only."""
    with read_session(engine) as session:
        return roi_service.roi_report(
            session,
            offer_id=offer_id,
            now=clock.now(),
            before_days=before_days,
            after_days=after_days,
            country=country,
            min_arm=min_arm,
            ci=ci,
            seed=seed,
            replicates=replicates,
        )


Marketing = Annotated[Principal, Depends(require(Role.MARKETING))]


class HoldoutStart(BaseModel):
    """A new period of the programme-wide holdout."""

    model_config = ConfigDict(extra="forbid")
    share: str = Field(default="0.03", max_length=40, description="share of members held out, e.g. 0.03")
    min_days: int = Field(default=150, ge=150, le=3650, description="days it runs at least")


@router.get("/programme-holdout", responses=RESPONSES)
def get_programme_holdout(engine: DbEngine, clock: AppClock, _: Analyst) -> dict[str, Any]:
    """The periods of the programme-wide holdout and the whole programme's incremental value against
    the open one, with its 95% interval (``docs/offers-methods.md#programme-holdout``). Read-only."""
    with read_session(engine) as session:
        return {
            "periods": service.programme_holdout_periods(session),
            "report": roi_service.programme_holdout_for(session, now=clock.now()),
        }


@router.post(
    "/programme-holdout", status_code=201, responses={409: {"description": "still running", **_PROBLEM}}
)
def start_programme_holdout(
    body: HoldoutStart, engine: DbEngine, clock: AppClock, principal: Marketing
) -> dict[str, Any]:
    """Start a new holdout period with a fresh salt; 409 while the open one has not run its minimum
    (so repeating the request never reshuffles the members)."""
    return run_in_transaction(
        engine,
        lambda s: service.start_programme_holdout(
            s, share=body.share, min_days=body.min_days, now=clock.now(), by=principal.name
        ),
    )
