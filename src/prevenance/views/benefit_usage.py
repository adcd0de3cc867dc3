"""Monthly benefit usage: per benefit, card product and country, how many entitled members used the
benefit, with a Wilson 95% interval, the trend over the three months before, and an alert when the
rate drops significantly. The method is in ``docs/offers-methods.md#benefit-usage``.

A view above the domains: the catalogue (which product is entitled to what) is the desk's, the
members are the customer record's, usages are the desk's; each is read through its domain's service
(as selectables, so the counts stay in SQL). It only reads.
The statistics (``assess``, ``drop_test``) are pure functions, tested without a database.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from statistics import NormalDist
from typing import Annotated, Any

import typer
from fastapi import APIRouter, Depends, Query
from sqlalchemy import ColumnElement, Engine, func, select
from sqlalchemy.orm import Session

from prevenance.common.auth import Principal, Role
from prevenance.common.deps import DbEngine, require
from prevenance.common.problems import PROBLEM_JSON, InvalidInput, PrevenanceError
from prevenance.customers import service as customers
from prevenance.db import read_session
from prevenance.desk import config
from prevenance.desk import service as desk
from prevenance.desk.rules import Benefit, RuleViolation, month_bounds, previous_month, wilson

BASELINE_MONTHS = 3
DEFAULT_ALPHA = 0.01
DEFAULT_MIN_DROP = 0.02
DEFAULT_MIN_ENTITLED = 30
METHOD_ANCHOR = "docs/offers-methods.md#benefit-usage"

_members = customers.member_segments()  # id, product, country, created_at
_usages = desk.benefit_usages()  # member_id, benefit, used_at


# --- statistics (pure) ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Count:
    """Members who used a benefit in a month, out of those entitled to it."""

    users: int
    entitled: int


@dataclass(frozen=True)
class DropTest:
    """One-sided two-proportion z-test of "this month's rate is below the baseline's"."""

    z: float | None
    p_value: float | None


@dataclass(frozen=True)
class AlertPolicy:
    """When a drop is worth a person's attention: significant at ``alpha`` (one-sided), at least
    ``min_drop`` in absolute rate, on at least ``min_entitled`` entitled members this month."""

    alpha: float = DEFAULT_ALPHA
    min_drop: float = DEFAULT_MIN_DROP
    min_entitled: int = DEFAULT_MIN_ENTITLED


def drop_test(now: Count, baseline: Count) -> DropTest:
    """z = (p_now − p_base) / √(p(1−p)(1/n_now + 1/n_base)) with the pooled p; p-value = Φ(z)."""
    if now.entitled == 0 or baseline.entitled == 0:
        return DropTest(None, None)
    p_now = now.users / now.entitled
    p_base = baseline.users / baseline.entitled
    pooled = (now.users + baseline.users) / (now.entitled + baseline.entitled)
    variance = pooled * (1 - pooled) * (1 / now.entitled + 1 / baseline.entitled)
    if variance == 0:  # everyone or no one, in both: no evidence of any change
        return DropTest(0.0, 0.5)
    z = (p_now - p_base) / math.sqrt(variance)
    return DropTest(z, NormalDist().cdf(z))


def assess(now: Count, previous: Sequence[Count], policy: AlertPolicy) -> dict[str, Any]:
    """This month's rate with its interval, each previous month's, the pooled baseline, the test
    and whether it raises an alert. ``previous`` runs from the most recent month backwards."""
    rate = wilson(now.users, now.entitled)
    baseline = Count(sum(c.users for c in previous), sum(c.entitled for c in previous))
    base_rate = wilson(baseline.users, baseline.entitled)
    test = drop_test(now, baseline)
    change = rate.value - base_rate.value if rate.value is not None and base_rate.value is not None else None
    alert = (
        test.p_value is not None
        and change is not None
        and test.p_value < policy.alpha
        and -change >= policy.min_drop
        and now.entitled >= policy.min_entitled
    )
    return {
        "entitled": now.entitled,
        "users": now.users,
        "rate": {"value": rate.value, "n": rate.n, "ci_low": rate.ci_low, "ci_high": rate.ci_high},
        "trend": [
            {"users": c.users, "entitled": c.entitled, "rate": c.users / c.entitled if c.entitled else None}
            for c in previous
        ],
        "baseline": {
            "users": baseline.users,
            "entitled": baseline.entitled,
            "value": base_rate.value,
            "ci_low": base_rate.ci_low,
            "ci_high": base_rate.ci_high,
        },
        "change": change,
        "z": test.z,
        "p_value": test.p_value,
        "alert": alert,
    }


def months_before(month: str, count: int) -> list[str]:
    """The ``count`` months before ``month``, most recent first."""
    months = []
    for _ in range(count):
        month = previous_month(month)
        months.append(month)
    return months


def alert_messages(row: dict[str, Any]) -> dict[str, str]:
    """What a person reads, in French and in English."""
    scope_fr = " / ".join(x for x in (row.get("product"), row.get("country")) if x) or "tous"
    scope_en = " / ".join(x for x in (row.get("product"), row.get("country")) if x) or "all"
    now, base = row["rate"]["value"] * 100, row["baseline"]["value"] * 100
    return {
        "message_fr": (
            f"{row['label_fr']} ({scope_fr}) : taux d'usage {now:.1f} % en {row['month']}, contre "
            f"{base:.1f} % sur les {BASELINE_MONTHS} mois précédents (p = {row['p_value']:.2g})."
        ),
        "message_en": (
            f"{row['label_en']} ({scope_en}): usage rate {now:.1f}% in {row['month']}, against "
            f"{base:.1f}% over the previous {BASELINE_MONTHS} months (p = {row['p_value']:.2g})."
        ),
    }


# --- loading (SQL) -------------------------------------------------------------------------------

Key = tuple[str, str]  # (product, country)


def _entitled(session: Session, *, end: datetime, country: str | None) -> dict[Key, int]:
    """Members by (product, country) who were members before the month ended."""
    where: list[ColumnElement[bool]] = [_members.c.created_at < end]
    if country:
        where.append(_members.c.country == country)
    rows = session.execute(
        select(_members.c.product, _members.c.country, func.count())
        .where(*where)
        .group_by(_members.c.product, _members.c.country)
    )
    return {(str(product), str(c)): int(n) for product, c, n in rows}


def _users(
    session: Session, *, start: datetime, end: datetime, country: str | None
) -> dict[tuple[str, str, str], int]:
    """Distinct members by (benefit, product, country) with at least one usage in the month."""
    where: list[ColumnElement[bool]] = [
        _usages.c.used_at >= start,
        _usages.c.used_at < end,
        _members.c.created_at < end,
    ]
    if country:
        where.append(_members.c.country == country)
    rows = session.execute(
        select(
            _usages.c.benefit,
            _members.c.product,
            _members.c.country,
            func.count(func.distinct(_usages.c.member_id)),
        )
        .join(_members, _members.c.id == _usages.c.member_id)
        .where(*where)
        .group_by(_usages.c.benefit, _members.c.product, _members.c.country)
    )
    return {(str(b), str(p), str(c)): int(n) for b, p, c, n in rows}


def _parse_month(month: str) -> tuple[datetime, datetime]:
    try:
        return month_bounds(month)
    except RuleViolation as error:
        raise InvalidInput(str(error), field="month")


def _parse_country(country: str | None) -> str | None:
    if country is None or not country.strip():
        return None
    code = country.strip().upper()
    if len(code) != 2 or not code.isalpha():
        raise InvalidInput("country must be an ISO 3166-1 alpha-2 code such as FR", field="country")
    return code


def _check_policy(policy: AlertPolicy) -> None:
    if not 0 < policy.alpha < 0.5:
        raise InvalidInput("alpha must be between 0 and 0.5", field="alpha")
    if not 0 <= policy.min_drop < 1:
        raise InvalidInput("min_drop must be between 0 and 1", field="min_drop")
    if policy.min_entitled < 1:
        raise InvalidInput("min_entitled must be at least 1", field="min_entitled")


def _labels(benefit: Benefit) -> dict[str, str]:
    return {"benefit": benefit.code, "label_fr": benefit.label_fr, "label_en": benefit.label_en}


def usage_report(
    session: Session,
    *,
    month: str,
    country: str | None = None,
    policy: AlertPolicy | None = None,
) -> dict[str, Any]:
    """Usage rates per benefit × product × country for ``month`` and per benefit over the cut,
    each with its trend over the previous three months and whether it raises an alert."""
    policy = policy or AlertPolicy()
    _check_policy(policy)
    country = _parse_country(country)
    start, end = _parse_month(month)
    months = [month, *months_before(month, BASELINE_MONTHS)]
    entitled: list[dict[Key, int]] = []
    users: list[dict[tuple[str, str, str], int]] = []
    for m in months:
        m_start, m_end = month_bounds(m)
        entitled.append(_entitled(session, end=m_end, country=country))
        users.append(_users(session, start=m_start, end=m_end, country=country))
    catalogue = config.current().benefits.catalogue
    rows: list[dict[str, Any]] = []
    totals: list[dict[str, Any]] = []
    for benefit in catalogue.values():
        keys = sorted({k for e in entitled for k in e if k[0] in benefit.products})
        summed: dict[int, list[int]] = defaultdict(lambda: [0, 0])
        for product, member_country in keys:
            counts = []
            for i in range(len(months)):
                count = Count(
                    users[i].get((benefit.code, product, member_country), 0),
                    entitled[i].get((product, member_country), 0),
                )
                counts.append(count)
                summed[i][0] += count.users
                summed[i][1] += count.entitled
            rows.append(
                {
                    **_labels(benefit),
                    "product": product,
                    "country": member_country,
                    "month": month,
                    **assess(counts[0], counts[1:], policy),
                }
            )
        if keys:
            counts = [Count(*summed[i]) for i in range(len(months))]
            totals.append(
                {
                    **_labels(benefit),
                    "product": None,
                    "country": country,
                    "month": month,
                    **assess(counts[0], counts[1:], policy),
                }
            )
    return {
        "month": month,
        "from": start.isoformat(),
        "to": end.isoformat(),
        "country": country,
        "baseline_months": months[1:],
        "policy": {"alpha": policy.alpha, "min_drop": policy.min_drop, "min_entitled": policy.min_entitled},
        "rows": rows,
        "totals": totals,
        "method": METHOD_ANCHOR,
    }


def alerts_of(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The rows and totals whose drop raised an alert, largest drop first, with FR/EN messages."""
    found: Iterable[tuple[str, dict[str, Any]]] = [
        *(("benefit", row) for row in report["totals"]),
        *(("segment", row) for row in report["rows"]),
    ]
    alerts = [
        {
            "level": level,
            **{k: row[k] for k in ("benefit", "label_fr", "label_en", "product", "country", "month")},
            "entitled": row["entitled"],
            "users": row["users"],
            "rate": row["rate"],
            "baseline": row["baseline"],
            "change": row["change"],
            "z": row["z"],
            "p_value": row["p_value"],
            **alert_messages(row),
        }
        for level, row in found
        if row["alert"]
    ]
    return sorted(alerts, key=lambda a: (a["change"], a["benefit"], a["product"] or "", a["country"] or ""))


def usage_alerts(
    session: Session, *, month: str, country: str | None = None, policy: AlertPolicy | None = None
) -> dict[str, Any]:
    """Only the significant drops of ``month``."""
    report = usage_report(session, month=month, country=country, policy=policy)
    return {
        "month": month,
        "country": report["country"],
        "policy": report["policy"],
        "alerts": alerts_of(report),
        "method": METHOD_ANCHOR,
    }


# --- REST ----------------------------------------------------------------------------------------

router = APIRouter(prefix="/v1", tags=["benefits"])
Analyst = Annotated[Principal, Depends(require(Role.MARKETING, Role.SUPERVISOR))]
_PROBLEM: dict[str, Any] = {"content": {PROBLEM_JSON: {}}}
RESPONSES: dict[int | str, dict[str, Any]] = {422: {"description": "Invalid parameter", **_PROBLEM}}
Month = Annotated[str, Query(description="YYYY-MM", min_length=7, max_length=7)]
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


# --- CLI -----------------------------------------------------------------------------------------

app = typer.Typer(help="Benefit usage monitoring.", no_args_is_help=True)


def _engine() -> Engine:
    from prevenance.db import engine_from_settings

    engine: Engine = engine_from_settings()
    return engine


def _pct(value: float | None) -> str:
    return "    -" if value is None else f"{value * 100:5.1f}"


def _policy(alpha: float, min_drop: float, min_entitled: int) -> AlertPolicy:
    return AlertPolicy(alpha=alpha, min_drop=min_drop, min_entitled=min_entitled)


@app.command("usage")
def usage_command(
    month: str = typer.Option(..., help="YYYY-MM"),
    country: str | None = typer.Option(None, help="ISO country code"),
    alpha: float = typer.Option(DEFAULT_ALPHA, help="one-sided significance level of an alert"),
    min_drop: float = typer.Option(DEFAULT_MIN_DROP, help="smallest absolute drop alerted"),
    min_entitled: int = typer.Option(DEFAULT_MIN_ENTITLED, help="smallest group alerted"),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON"),
) -> None:
    """Usage rate per benefit, product and country with its 95% CI and the 3 months before."""
    try:
        with read_session(_engine()) as session:
            report = usage_report(
                session, month=month, country=country, policy=_policy(alpha, min_drop, min_entitled)
            )
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    prev = "  ".join(f"{m:>7}" for m in report["baseline_months"])
    typer.echo(f"{'benefit':<28} {'product':<16} {'ctry':<4} {'n':>6} {'rate %':>6} {'95% CI':>13}  {prev}")
    for row in [*report["rows"], *report["totals"]]:
        ci = f"{_pct(row['rate']['ci_low'])}–{_pct(row['rate']['ci_high'])}"
        trend = "  ".join(f"{_pct(t['rate']):>7}" for t in row["trend"])
        flag = "  ALERT" if row["alert"] else ""
        typer.echo(
            f"{row['benefit']:<28} {row['product'] or 'all':<16} {row['country'] or 'all':<4} "
            f"{row['entitled']:>6} {_pct(row['rate']['value']):>6} {ci:>13}  {trend}{flag}"
        )
    typer.echo(f"method: {report['method']}")


@app.command("alerts")
def alerts_command(
    month: str = typer.Option(..., help="YYYY-MM"),
    country: str | None = typer.Option(None, help="ISO country code"),
    alpha: float = typer.Option(DEFAULT_ALPHA, help="one-sided significance level of an alert"),
    min_drop: float = typer.Option(DEFAULT_MIN_DROP, help="smallest absolute drop alerted"),
    min_entitled: int = typer.Option(DEFAULT_MIN_ENTITLED, help="smallest group alerted"),
    language: str = typer.Option("en", help="fr or en"),
    as_json: bool = typer.Option(False, "--json", help="print the alerts as JSON"),
) -> None:
    """Benefits whose usage rate dropped significantly; exit code 1 when there is at least one."""
    try:
        if language not in ("fr", "en"):
            raise InvalidInput("language must be fr or en", field="language")
        with read_session(_engine()) as session:
            result = usage_alerts(
                session, month=month, country=country, policy=_policy(alpha, min_drop, min_entitled)
            )
    except PrevenanceError as error:
        typer.echo(f"error: {error.detail}", err=True)
        raise typer.Exit(2)
    if as_json:
        typer.echo(json.dumps(result, indent=2))
    else:
        for alert in result["alerts"]:
            typer.echo(alert[f"message_{language}"])
        if not result["alerts"]:
            typer.echo("aucune alerte" if language == "fr" else "no alert")
    if result["alerts"]:
        raise typer.Exit(1)
