"""The supervisor's voice-of-the-customer screen: RTF and excellence by agent, team, channel and month
with their 95% intervals and n, the monthly scorecard (download), and the customers' suggestions.

Every figure is read from ``voice.service`` in-process; the page adds no statistics of its own. For
agents the raw RTF is drawn beside the shrunk one (empirical Bayes toward the team), so a small
agent's lucky month is not read as a star.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import Response

from prevenance.common.inputs import FIRST_MONTH
from prevenance.common.problems import PrevenanceError
from prevenance.console import charts
from prevenance.console.web import (
    DASHBOARD,
    Page,
    PageDep,
    actor,
    console_router,
    problem_errors,
    redirect,
    render,
    safe_next,
    screens_for,
    script_json,
)
from prevenance.db import read_session, run_in_transaction
from prevenance.voice import rules as voice_rules
from prevenance.voice import service as voice
from prevenance.voice import spreadsheets, topics

router = console_router()
VOICE_DIMENSIONS = ("agent", "team", "channel")
TREND_MONTHS = 6
RTF_DOMAIN = (-100.0, 100.0)
PERCENT_DOMAIN = (0.0, 100.0)


def months_back(month: str, count: int) -> list[str]:
    """``count`` months ending with ``month`` (oldest first)."""
    year, number = int(month[:4]), int(month[5:7])
    found = []
    for _ in range(count):
        found.append(f"{year:04d}-{number:02d}")
        year, number = (year - 1, 12) if number == 1 else (year, number - 1)
    return found[::-1]


def _month_or_now(p: Page, month: str) -> str:
    return (
        month
        if len(month) == 7 and month[4] == "-" and month.replace("-", "").isdigit()
        else (p.now.strftime("%Y-%m"))
    )


def _trend(p: Page, month: str) -> list[dict[str, Any]]:
    """The month's overall RTF and excellence for the months up to ``month`` (one item per month).

    The trend starts no earlier than the accepted window (``common.inputs.FIRST_MONTH``): for its
    first months the six months back reached 1999, which the scores refuse, and the whole screen
    was refused with them. ``month`` itself is checked by the scores as before."""
    items: list[dict[str, Any]] = []
    with read_session(p.engine) as session:
        for m in months_back(month, TREND_MONTHS):
            if m < FIRST_MONTH <= month:
                continue
            found = voice.scores(session, by="month", month=m)["items"]
            items += [{**item, "key": m} for item in found]
    return items


@router.get("/console/voice")
def voice_page(
    p: PageDep,
    month: Annotated[str, Query(max_length=7)] = "",
    by: Annotated[str, Query(max_length=10)] = "agent",
    status: Annotated[str, Query(max_length=20)] = "",
) -> Response:
    """RTF and excellence with their intervals, the scorecard of the month, the suggestions."""
    p.require(*DASHBOARD)
    month = _month_or_now(p, month)
    by = by if by in VOICE_DIMENSIONS else "agent"
    status = status if status in voice_rules.SUGGESTION_STATUSES else ""
    errors: dict[str, str] = {}
    try:
        with read_session(p.engine) as session:
            report = voice.scores(session, by=by, month=month)
            suggestions = voice.list_suggestions(session, status=status or None, limit=100)
            try:
                published: dict[str, Any] | None = voice.get_scorecard(session, month=month)
            except PrevenanceError:
                published = None
        trend = _trend(p, month)
    except PrevenanceError as error:
        errors = problem_errors(p, error, None, {"month", "by"})
        report, suggestions, published, trend = {"n": 0, "items": []}, [], None, []
    items = report["items"]
    axis = p.t(f"voice.by.{by}")
    rtf_rows = charts.score_rows(items, "rtf", p.t("voice.raw"))
    if by == "agent":
        rtf_rows += charts.score_rows(items, "rtf_shrunk", p.t("voice.shrunk"))
    specs = {
        "rtf": charts.interval_chart(
            rtf_rows, p.lang, axis=axis, measure=p.t("voice.rtf"), domain=RTF_DOMAIN, title=p.t("voice.rtf")
        ),
        "excellence": charts.interval_chart(
            charts.score_rows(items, "excellence", p.t("voice.raw")),
            p.lang,
            axis=axis,
            measure=p.t("voice.excellence_pct"),
            domain=PERCENT_DOMAIN,
            title=p.t("voice.excellence"),
        ),
        "trend_rtf": charts.trend_chart(
            charts.score_rows(trend, "rtf", p.t("voice.rtf")),
            p.lang,
            measure=p.t("voice.rtf"),
            domain=RTF_DOMAIN,
            title=p.t("voice.trend"),
            series=p.t("chart.indicator"),
        ),
        "trend_excellence": charts.trend_chart(
            charts.score_rows(trend, "excellence", p.t("voice.excellence")),
            p.lang,
            measure=p.t("voice.excellence_pct"),
            domain=PERCENT_DOMAIN,
            title=p.t("voice.trend"),
            series=p.t("chart.indicator"),
        ),
    }
    return render(
        p,
        "voice.html",
        422 if errors else 200,
        screens=screens_for(p),
        month=month,
        by=by,
        dimensions=[(d, p.t(f"voice.by.{d}")) for d in VOICE_DIMENSIONS],
        report=report,
        items=items,
        trend=trend,
        published=published,
        suggestions=suggestions,
        topic_labels={code: label.get(p.lang, code) for code, label in topics.load_rules().labels.items()},
        status=status,
        statuses=[(s, p.t(f"suggestion.{s}")) for s in voice_rules.SUGGESTION_STATUSES],
        specs={name: script_json(spec) for name, spec in specs.items()},
        drawn={"rtf": bool(rtf_rows), "excellence": any(i["excellence"]["n"] for i in items)},
        errors=errors,
    )


# --- the scorecard as a file ----------------------------------------------------------------------


def scorecard_rows(p: Page, month: str, draft: bool) -> tuple[list[dict[str, Any]], str]:
    """The rows of the month's published scorecard (latest version), or of the draft computed now."""
    with read_session(p.engine) as session:
        if draft:
            return voice.compute_scorecard(session, month=month, now=p.now), "draft"
        card = voice.get_scorecard(session, month=month)
        return list(card["rows"]), f"v{card['version']}"


@router.get("/console/voice/scorecard.{fmt}")
def scorecard_file(
    p: PageDep, fmt: str, month: Annotated[str, Query(max_length=7)], draft: bool = False
) -> Response:
    """Download the month's scorecard (CSV or XLSX): the published version, or the draft with ``draft=1``.
    The files never hold a formula an agent's name could smuggle in (``voice.spreadsheets``)."""
    p.require(*DASHBOARD)
    if fmt not in ("csv", "xlsx"):
        return Response(status_code=404)
    rows, version = scorecard_rows(p, month, draft)
    name = f"scorecard-{month}-{version}.{fmt}"
    if fmt == "csv":
        return Response(
            spreadsheets.to_csv(rows),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{name}"'},
        )
    return Response(
        spreadsheets.to_xlsx(rows, f"{month} {version}"),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


# --- suggestions ----------------------------------------------------------------------------------


@router.post("/console/voice/suggestions/{suggestion_id}")
def move_suggestion(p: PageDep, suggestion_id: str) -> Response:
    """Change a suggestion's status, link and note (a PUT in effect: the same form twice changes nothing)."""
    user = p.require(*DASHBOARD)
    form = p.form
    back = safe_next(form.get("next"), "/console/voice")
    link = form.get("link", "").strip()
    note = form.get("note", "").strip()
    if link and not link.startswith(("https://", "http://", "/")):
        return _suggestion_refused(p, suggestion_id, {"link": p.t("err.link")})
    try:
        run_in_transaction(
            p.engine,
            lambda s: voice.update_suggestion(
                s,
                suggestion_id=suggestion_id,
                status=form.get("status") or None,
                link=link or None,
                note=note or None,
                by=actor(user),
                now=p.now,
            ),
        )
    except PrevenanceError as error:
        return _suggestion_refused(p, suggestion_id, problem_errors(p, error, None, {"status", "link"}))
    separator = "&" if "?" in back else "?"
    return redirect(p, f"{back}{separator}done=suggestion#s-{suggestion_id}")


def _suggestion_refused(p: Page, suggestion_id: str, errors: dict[str, str]) -> Response:
    message = "; ".join(errors.values())
    return render(
        p,
        "error.html",
        422,
        title=p.t("error.refused.title"),
        detail=f"{suggestion_id}: {message}",
        screens=screens_for(p),
    )
