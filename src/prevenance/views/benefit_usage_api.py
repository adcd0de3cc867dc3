"""``GET /v1/benefits/usage`` and ``/v1/benefits/usage/alerts``: the monthly benefit usage report
and its alerts, for marketing and supervisors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import DbEngine, require
from prevenance.common.inputs import Month
from prevenance.common.problems import PROBLEM_JSON
from prevenance.db import read_session
from prevenance.views.benefit_stats import DEFAULT_ALPHA, DEFAULT_MIN_DROP, DEFAULT_MIN_ENTITLED
from prevenance.views.benefit_usage import AlertPolicy, usage_alerts, usage_report

router = APIRouter(prefix="/v1", tags=["benefits"])
Analyst = Annotated[Principal, Depends(require(Role.MARKETING, Role.SUPERVISOR))]
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
RESPONSES: dict[int | str, dict[str, Any]] = {422: {"description": "Invalid parameter", **_PROBLEM}}
Country = Annotated[str | None, Query(description="ISO country code", min_length=2, max_length=2)]
Alpha = Annotated[float, Query(gt=0, lt=0.5, description="one-sided significance level")]
MinDrop = Annotated[float, Query(ge=0, lt=1, description="smallest absolute drop alerted")]
MinEntitled = Annotated[int, Query(ge=1, description="smallest group alerted")]


@dataclass(frozen=True)
class UsageQuery:
    """The query both routes share: the month, an optional country and the alert policy."""

    month: str
    country: str | None
    policy: AlertPolicy


def _usage_query(
    month: Month,
    country: Country = None,
    alpha: Alpha = DEFAULT_ALPHA,
    min_drop: MinDrop = DEFAULT_MIN_DROP,
    min_entitled: MinEntitled = DEFAULT_MIN_ENTITLED,
) -> UsageQuery:
    return UsageQuery(month, country, AlertPolicy(alpha, min_drop, min_entitled))


UsageParams = Annotated[UsageQuery, Depends(_usage_query)]


@router.get("/benefits/usage", responses=RESPONSES)
def get_benefit_usage(engine: DbEngine, _: Analyst, query: UsageParams) -> dict[str, Any]:
    """Usage rate per benefit, product and country with 95% CIs, trend and alerts (read-only)."""
    with read_session(engine) as session:
        return usage_report(session, month=query.month, country=query.country, policy=query.policy)


@router.get("/benefits/usage/alerts", responses=RESPONSES)
def get_benefit_usage_alerts(engine: DbEngine, _: Analyst, query: UsageParams) -> dict[str, Any]:
    """The benefits whose usage rate dropped significantly in ``month`` against the 3 months before."""
    with read_session(engine) as session:
        return usage_alerts(session, month=query.month, country=query.country, policy=query.policy)
