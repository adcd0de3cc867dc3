"""The executive's quarterly page: countries compared raw and culture-calibrated (with 95% intervals),
RTF and excellence by country over the last quarters, the market barometers beside, and the
self-contained HTML report to download.

The comparison is ``voice.service.country_comparison`` (``voice.calibration.country_scores``: ordinal
linking to the reference country's answer scale, bootstrap intervals); the trend is
``voice.service.scores_over`` each quarter (counted by the database). The page computes nothing of its own.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import Query
from fastapi.responses import FileResponse, Response
from starlette.background import BackgroundTask

from prevenance.common.problems import PrevenanceError, as_invalid_input
from prevenance.console import charts
from prevenance.console.web import (
    EXECUTIVE,
    Page,
    PageDep,
    console_router,
    problem_errors,
    render,
    screens_for,
    script_json,
)
from prevenance.db import read_session
from prevenance.voice import calibration, report
from prevenance.voice import rules as voice_rules
from prevenance.voice import service as voice

router = console_router()
TREND_QUARTERS = 4


def method_label(p: Page, method: str) -> str:
    """The calibration method in the page's language (``exec.method.<code>``; an unknown sentence
    is shown as it is)."""
    code = calibration.METHOD_CODES.get(method)
    return p.t(f"exec.method.{code}") if code else method


def _quarter_or_now(p: Page, quarter: str) -> str:
    try:
        return voice_rules.check_quarter(quarter.strip().upper())
    except voice_rules.FieldError:
        return voice_rules.quarter_of(p.now.strftime("%Y-%m"))


def country_trend(p: Page, quarter: str) -> list[dict[str, Any]]:
    """RTF and excellence by country for each of the last quarters (``key`` = country, ``quarter``)."""
    found: list[dict[str, Any]] = []
    with read_session(p.engine) as session:
        for q in voice_rules.previous_quarters(quarter, TREND_QUARTERS):
            items = voice.scores_over(session, by="country", months=voice_rules.quarter_months(q))
            found += [{**item, "quarter": q} for item in items]
    return found


def _trend_rows(trend: list[dict[str, Any]], metric: str) -> list[dict[str, Any]]:
    """Trend chart rows: x is the quarter, one series per country."""
    rows = []
    for item in trend:
        score = item[metric]
        if score.get("value") is None or not score.get("n"):
            continue
        rows.append(
            {
                "key": item["quarter"],
                "estimate": item["key"],
                "value": score["value"],
                "low": score["ci_low"],
                "high": score["ci_high"],
                "n": score["n"],
            }
        )
    return rows


@router.get("/console/executive")
def executive_page(p: PageDep, quarter: Annotated[str, Query(max_length=6)] = "") -> Response:
    """Countries compared raw and calibrated, their trend, the barometers, the report to download."""
    p.require(*EXECUTIVE)
    quarter = _quarter_or_now(p, quarter)
    errors: dict[str, str] = {}
    try:
        with read_session(p.engine) as session:
            comparison = voice.country_comparison(session, quarter=quarter)
        trend = country_trend(p, quarter)
    except PrevenanceError as error:
        errors = problem_errors(p, error, None, {"quarter"})
        comparison, trend = {"countries": [], "barometers": [], "n": 0, "reference": ""}, []
    countries = [{**c, "method_label": method_label(p, c["method"])} for c in comparison["countries"]]
    raw, calibrated = p.t("exec.raw"), p.t("exec.calibrated")
    rtf_rows = [
        row
        for c in countries
        for row in charts.score_rows([{"key": c["country"], "s": c["raw"]}], "s", raw)
        + charts.score_rows([{"key": c["country"], "s": c["calibrated"]}], "s", calibrated)
    ]
    exc_rows = [
        row
        for c in countries
        for row in charts.score_rows([{"key": c["country"], "s": c["excellence_raw"]}], "s", raw)
        + charts.score_rows([{"key": c["country"], "s": c["excellence_calibrated"]}], "s", calibrated)
    ]
    country_axis = p.t("voice.by.country")
    specs = {
        "countries_rtf": charts.interval_chart(
            rtf_rows,
            p.lang,
            axis=country_axis,
            measure=p.t("voice.rtf"),
            domain=(-100, 100),
            title=p.t("exec.compare"),
        ),
        "countries_excellence": charts.interval_chart(
            exc_rows,
            p.lang,
            axis=country_axis,
            measure=p.t("voice.excellence_pct"),
            domain=(0, 100),
            title=p.t("exec.compare"),
        ),
        "trend_rtf": charts.trend_chart(
            _trend_rows(trend, "rtf"),
            p.lang,
            measure=p.t("voice.rtf"),
            domain=(-100, 100),
            title=p.t("exec.trend"),
            x_title=p.t("chart.quarter"),
            series=country_axis,
        ),
        "trend_excellence": charts.trend_chart(
            _trend_rows(trend, "excellence"),
            p.lang,
            measure=p.t("voice.excellence_pct"),
            domain=(0, 100),
            title=p.t("exec.trend"),
            x_title=p.t("chart.quarter"),
            series=country_axis,
        ),
    }
    return render(
        p,
        "executive.html",
        422 if errors else 200,
        screens=screens_for(p),
        quarter=quarter,
        comparison=comparison,
        countries=countries,
        barometers=comparison["barometers"],
        drawn={"rtf": bool(rtf_rows), "excellence": bool(exc_rows), "trend": bool(trend)},
        specs={name: script_json(spec) for name, spec in specs.items()},
        errors=errors,
    )


@router.get("/console/executive/report.html")
def quarterly_report(p: PageDep, quarter: Annotated[str, Query(max_length=6)], lang: str = "") -> Response:
    """The self-contained quarterly report (``voice.report``), built in a temporary directory and sent
    as a download; the directory goes once the file is sent."""
    p.require(*EXECUTIVE)
    language = lang if lang in ("fr", "en") else p.lang
    with as_invalid_input(field="quarter"):
        voice_rules.check_quarter(quarter)
    with read_session(p.engine) as session:
        data = voice.report_data(session, quarter=quarter, language=language, now=p.now)
    directory = Path(tempfile.mkdtemp(prefix="prevenance-report-"))
    target = directory / f"prevenance-{quarter}-{language}.html"
    try:
        report.build_quarterly_report(data, target, None)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    return FileResponse(
        target,
        media_type="text/html; charset=utf-8",
        filename=target.name,
        background=BackgroundTask(shutil.rmtree, directory, ignore_errors=True),
    )
