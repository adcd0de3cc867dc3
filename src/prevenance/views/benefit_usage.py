"""Monthly benefit usage: per benefit, card product and country, how many entitled members used the
benefit, with a Wilson 95% interval, the trend over the three months before, and an alert when the
rate drops significantly. The method is in ``docs/offers-methods.md#benefit-usage``.

A view above the domains: the catalogue (which product is entitled to what) is the desk's, the
members are the customer record's, usages are the desk's; each is read through its domain's service
(as selectables, so the counts stay in SQL). It only reads.
The statistics (``benefit_stats``) are pure functions, tested without a database; the route is in
``benefit_usage_api``, the command in ``benefit_usage_cli``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from prevenance.common.inputs import check_month
from prevenance.common.periods import month_bounds
from prevenance.common.problems import InvalidInput, as_invalid_input
from prevenance.customers import service as customers
from prevenance.desk import config
from prevenance.desk import service as desk
from prevenance.desk.rules import Benefit
from prevenance.views.benefit_stats import (
    BASELINE_MONTHS,
    DEFAULT_ALPHA,
    DEFAULT_MIN_DROP,
    DEFAULT_MIN_ENTITLED,
    METHOD_ANCHOR,
    AlertPolicy,
    Count,
    DropTest,
    alert_messages,
    assess,
    drop_test,
    months_before,
)

_members = customers.member_segments()  # id, product, country, created_at
_usages = desk.benefit_usages()  # member_id, benefit, used_at


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
    check_month(month)  # the accepted window (a 422 naming the month)
    with as_invalid_input(field="month"):
        return month_bounds(month)


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


__all__ = [
    "BASELINE_MONTHS",
    "DEFAULT_ALPHA",
    "DEFAULT_MIN_DROP",
    "DEFAULT_MIN_ENTITLED",
    "METHOD_ANCHOR",
    "AlertPolicy",
    "Count",
    "DropTest",
    "alert_messages",
    "alerts_of",
    "assess",
    "drop_test",
    "months_before",
    "usage_alerts",
    "usage_report",
]
