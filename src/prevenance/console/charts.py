"""Vega-Lite specs (built with Altair) for the supervisor's dashboard; vega-embed draws them.

Every rate is drawn with its 95% Wilson interval (the desk's reports give ``ci_low``/``ci_high``
and ``n``), so a team of twelve cases is not read as precisely as one of twelve hundred.
"""

from __future__ import annotations

import math
from typing import Any

import altair as alt

from prevenance.console.i18n import translate

_WIDTH = "container"  # the card's width (vega-embed resizes with it)


def _rate_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"key": r["key"], "value": r["value"], "low": r["ci_low"], "high": r["ci_high"], "n": r["n"]}
        for r in rows
        if r["n"] > 0
    ]


def _rate_chart(rows: list[dict[str, Any]], lang: str, *, axis: str, title: str) -> dict[str, Any]:
    data = alt.Data(values=_rate_rows(rows))
    base = alt.Chart(data).encode(y=alt.Y("key:N", title=axis, sort=None))
    bars = base.mark_bar(color="#1f5f8b").encode(
        x=alt.X(
            "value:Q",
            title=translate(lang, "chart.rate"),
            scale=alt.Scale(domain=[0, 1]),
            axis=alt.Axis(format="%"),
        ),
        tooltip=[
            alt.Tooltip("key:N", title=axis),
            alt.Tooltip("value:Q", format=".1%", title=translate(lang, "chart.rate")),
            alt.Tooltip("low:Q", format=".1%", title=translate(lang, "chart.ci_low")),
            alt.Tooltip("high:Q", format=".1%", title=translate(lang, "chart.ci_high")),
            alt.Tooltip("n:Q", title="n"),
        ],
    )
    whiskers = base.mark_rule(color="#111", strokeWidth=2).encode(x="low:Q", x2="high:Q")
    chart = (bars + whiskers).properties(width=_WIDTH, description=title)
    spec: dict[str, Any] = chart.to_dict()
    return spec


def fcr_by_team(report: dict[str, Any], lang: str) -> dict[str, Any]:
    """First-contact resolution by team, bars with their 95% intervals."""
    return _rate_chart(
        report["rows"], lang, axis=translate(lang, "chart.team"), title=translate(lang, "dash.fcr")
    )


def card_promise(report: dict[str, Any], lang: str) -> dict[str, Any]:
    """Share of the month's emergency cards delivered within their promise, with its interval."""
    row = {**report["within_promise"], "key": translate(lang, "chart.within_promise")}
    return _rate_chart([row], lang, axis="", title=translate(lang, "dash.cards"))


def reasons_pareto(report: dict[str, Any], lang: str) -> dict[str, Any]:
    """Contact reasons by volume, with the cumulative share line of a Pareto chart."""
    total = sum(r["contacts"] for r in report["reasons"]) or 1
    running = 0
    values = []
    for r in report["reasons"]:  # already sorted by volume, largest first
        running += r["contacts"]
        values.append(
            {
                "reason": r["label_fr"] if lang == "fr" else r["label_en"],
                "contacts": r["contacts"],
                "cumulative": running / total,
            }
        )
    data = alt.Data(values=values)
    order = [v["reason"] for v in values]
    reason, contacts = translate(lang, "chart.reason"), translate(lang, "chart.contacts")
    cumulative = translate(lang, "chart.cumulative")
    axis = alt.Axis(labelAngle=-PARETO_LABEL_ANGLE, labelLimit=PARETO_LABEL_LIMIT)
    base = alt.Chart(data).encode(x=alt.X("reason:N", sort=order, title=reason, axis=axis))
    tooltip = [
        alt.Tooltip("reason:N", title=reason),
        alt.Tooltip("contacts:Q", title=contacts),
        alt.Tooltip("cumulative:Q", format=".0%", title=cumulative),
    ]
    bars = base.mark_bar(color="#1f5f8b").encode(y=alt.Y("contacts:Q", title=contacts), tooltip=tooltip)
    line = base.mark_line(color="#b3261e", point=True).encode(
        y=alt.Y("cumulative:Q", title=cumulative, axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
        tooltip=tooltip,
    )
    # No title: the card's heading says it. The slanted labels run left of the first bar: room for
    # the first one (vega's fit to the container clips what overflows the left edge).
    chart = (
        alt.layer(bars, line)
        .resolve_scale(y="independent")
        .properties(
            width=_WIDTH,
            description=translate(lang, "dash.reasons"),
            padding={"left": pareto_left_padding(order), "top": 5, "right": 5, "bottom": 5},
        )
    )
    spec: dict[str, Any] = chart.to_dict()
    return spec


PARETO_LABEL_ANGLE = 30  # degrees
PARETO_LABEL_LIMIT = 150  # px: a longer reason ends in "…" (the tooltip has it whole)


def pareto_left_padding(labels: list[str]) -> int:
    """Left padding so the first slanted label fits: its estimated width (vega's 10px labels, about
    5.5px a character, cut at the label limit) along the x axis, less the ~50px the y axis and half
    a bar already give it."""
    if not labels:
        return 5
    width = min(len(labels[0]) * 5.5, PARETO_LABEL_LIMIT)
    overflow = width * math.cos(math.radians(PARETO_LABEL_ANGLE)) - 50
    return int(max(5, min(overflow + 5, 140)))


# --- the voice of the customer: scores in points or percent, each with its 95% interval ------------


def score_rows(items: list[dict[str, Any]], metric: str, label: str = "") -> list[dict[str, Any]]:
    """Chart rows of one score of ``voice.service.scores`` items (``rtf``, ``rtf_shrunk``, ``excellence``);
    a key without answers has no value and is left out (the table beside still lists it)."""
    rows = []
    for item in items:
        score = item.get(metric)
        if not score or score.get("value") is None or not score.get("n"):
            continue
        rows.append(
            {
                "key": str(item.get("key") or item.get("country") or ""),
                "estimate": label,
                "value": score["value"],
                "low": score["ci_low"],
                "high": score["ci_high"],
                "n": score["n"],
            }
        )
    return rows


def interval_chart(
    rows: list[dict[str, Any]], lang: str, *, axis: str, measure: str, domain: tuple[float, float], title: str
) -> dict[str, Any]:
    """Points with their 95% interval as a bar (several estimates of a key side by side, by colour)."""
    data = alt.Data(values=rows)
    several = len({r["estimate"] for r in rows}) > 1
    base = alt.Chart(data).encode(
        y=alt.Y("key:N", title=axis, sort=None),
        yOffset=alt.YOffset("estimate:N") if several else alt.YOffset(),
    )
    colour = (
        alt.Color("estimate:N", title=translate(lang, "chart.estimate"), legend=alt.Legend(orient="bottom"))
        if several
        else alt.value("#1f5f8b")
    )
    tooltip = [
        alt.Tooltip("key:N", title=axis),
        alt.Tooltip("estimate:N", title=translate(lang, "chart.estimate")),
        alt.Tooltip("value:Q", format=".1f", title=measure),
        alt.Tooltip("low:Q", format=".1f", title=translate(lang, "chart.ci_low")),
        alt.Tooltip("high:Q", format=".1f", title=translate(lang, "chart.ci_high")),
        alt.Tooltip("n:Q", title="n"),
    ]
    scale = alt.Scale(domain=list(domain))
    bars = base.mark_rule(strokeWidth=3).encode(
        x=alt.X("low:Q", title=measure, scale=scale), x2="high:Q", color=colour, tooltip=tooltip
    )
    points = base.mark_point(filled=True, size=60, color="#111").encode(x="value:Q", tooltip=tooltip)
    chart = (bars + points).properties(width=_WIDTH, description=title)
    spec: dict[str, Any] = chart.to_dict()
    return spec


def trend_chart(
    rows: list[dict[str, Any]],
    lang: str,
    *,
    measure: str,
    domain: tuple[float, float],
    title: str,
    x_title: str | None = None,
    series: str | None = None,
) -> dict[str, Any]:
    """A score by period (``key``: a month unless ``x_title`` says otherwise), one line per series
    (``estimate``, named ``series`` in the tooltip), its 95% interval as a band. One series draws no
    legend (the card says what it is); several get a legend with solid symbols."""
    x_title = x_title or translate(lang, "chart.month")
    series = series or translate(lang, "chart.series")
    data = alt.Data(values=rows)
    several = len({r["estimate"] for r in rows}) > 1
    legend = alt.Legend(orient="bottom", symbolOpacity=1, symbolType="circle") if several else None
    base = alt.Chart(data).encode(
        x=alt.X("key:O", title=x_title, axis=alt.Axis(labelAngle=0, labelOverlap=True)),
        color=alt.Color("estimate:N", title="", legend=legend),
    )
    band = base.mark_area(opacity=0.18).encode(
        y=alt.Y("low:Q", title=measure, scale=alt.Scale(domain=list(domain))), y2="high:Q"
    )
    line = base.mark_line(point=True).encode(
        y="value:Q",
        tooltip=[
            alt.Tooltip("key:O", title=x_title),
            alt.Tooltip("estimate:N", title=series),
            alt.Tooltip("value:Q", format=".1f", title=measure),
            alt.Tooltip("low:Q", format=".1f", title=translate(lang, "chart.ci_low")),
            alt.Tooltip("high:Q", format=".1f", title=translate(lang, "chart.ci_high")),
            alt.Tooltip("n:Q", title="n"),
        ],
    )
    chart = (band + line).properties(width=_WIDTH, description=title)
    spec: dict[str, Any] = chart.to_dict()
    return spec
