"""``GET /v1/offers/{offer_id}/roi``: the campaign's effect against its control group, with CIs."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import AppClock, DbEngine, require
from prevenance.common.problems import PROBLEM_JSON
from prevenance.db import read_session
from prevenance.offers import roi, roi_service

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
