"""The quarterly executive report: one self-contained HTML file (and its PDF), FR or EN.

Charts are Altair specs rendered offline by vl-convert to inline SVG, the CSS is inline, nothing is
fetched: the file can be mailed, archived and opened in ten years. The PDF is printed by headless
Debian chromium from that same file. Every figure carries its n and 95% interval (docs/methods.md).
"""

from __future__ import annotations

import math
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import altair as alt
import jinja2
import numpy as np
import polars as pl
import vl_convert

from prevenance.common.i18n import LANGUAGES, section, translate
from prevenance.voice import analytics, calibration, stats

CHROMIUM = "/usr/bin/chromium"
TREND_QUARTERS = 6
QUARTER_RE = re.compile(r"^(\d{4})Q([1-4])$")


def _labels(language: str) -> dict[str, str]:
    """The report's words in ``language`` (the ``voice.report.*`` keys of the one catalogue)."""
    return section(language, "voice.report.")


def _method_label(language: str, method: str) -> str:
    """A calibration method's description in ``language`` (unknown text shown as it is)."""
    code = calibration.METHOD_CODES.get(method)
    return translate(language, f"voice.method.{code}") if code else method


def parse_quarter(quarter: str) -> tuple[int, int]:
    """``"2026Q3"`` -> (2026, 3); anything else is refused."""
    match = QUARTER_RE.match(quarter.strip().upper())
    if not match:
        raise ValueError(f"quarter must look like 2026Q3, got {quarter!r}")
    return int(match.group(1)), int(match.group(2))


def quarter_months(quarter: str) -> list[str]:
    """The three ``YYYY-MM`` months of a quarter."""
    year, q = parse_quarter(quarter)
    return [f"{year}-{3 * (q - 1) + i:02d}" for i in (1, 2, 3)]


def _quarter_expr(column: str = "month") -> pl.Expr:
    year = pl.col(column).str.slice(0, 4)
    q = ((pl.col(column).str.slice(5, 2).cast(pl.Int32) - 1) // 3 + 1).cast(pl.String)
    return pl.concat_str([year, pl.lit("Q"), q]).alias("quarter")


def _fmt(value: float | None, language: str, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    text = f"{value:.{digits}f}"
    return text.replace(".", ",").replace("-", "−") if language == "fr" else text.replace("-", "−")


def _svg(chart: alt.TopLevelMixin) -> str:
    """Render an Altair chart offline to an SVG string (no browser, no network)."""
    svg: str = vl_convert.vegalite_to_svg(chart.to_dict())
    return svg


def _trend(answers: pl.DataFrame, quarters: list[str], kind: str) -> pl.DataFrame:
    """Per country and quarter: value, n and CI of RTF or excellence."""
    counts = analytics.sufficient_statistics(
        answers.filter(pl.col("quarter").is_in(quarters)), ["country", "quarter"]
    )
    counts = counts.sort(["country", "quarter"])
    if kind == "rtf":
        n = counts["n_rtf"].to_numpy()
        value, low, high = stats.rtf_from_counts(
            counts["promoters"].to_numpy(), counts["detractors"].to_numpy(), n
        )
    else:
        n = counts["n_excellence"].to_numpy()
        value, low, high = stats.excellence_from_counts(counts["top_box"].to_numpy(), n)
    return pl.DataFrame(
        {
            "country": counts["country"],
            "quarter": counts["quarter"],
            "value": value,
            "ci_low": low,
            "ci_high": high,
            "n": n,
        }
    ).filter(pl.col("n") > 0)


def _headline(current: pl.DataFrame) -> tuple[stats.Score, stats.Score]:
    """The quarter's RTF and excellence over all answers, from rows or from a frame of counts."""
    if analytics.WEIGHT_COLUMN not in current.columns:
        return stats.rtf(current["recommend"].to_list()), stats.excellence(current["interaction"].to_list())
    counts = analytics.sufficient_statistics(current.with_columns(pl.lit(1).alias("_all")), ["_all"])
    if not counts.height:
        return stats.rtf_score(0, 0, 0), stats.excellence_score(0, 0)
    row = counts.row(0, named=True)
    return (
        stats.rtf_score(int(row["promoters"]), int(row["detractors"]), int(row["n_rtf"])),
        stats.excellence_score(int(row["top_box"]), int(row["n_excellence"])),
    )


def _interval_chart(
    frame: pl.DataFrame,
    x: str,
    x_title: str,
    y_title: str,
    color: str | None = "country",
    order: list[str] | None = None,
) -> str:
    """Points with 95% error bars, dodged by colour: the chart shape used throughout the report."""
    base = alt.Chart(frame)
    enc: dict[str, Any] = {"x": alt.X(f"{x}:O", title=x_title, axis=alt.Axis(labelAngle=0))}
    if color:
        enc["color"] = alt.Color(f"{color}:N", title=None, sort=order or "ascending")
        enc["xOffset"] = alt.XOffset(f"{color}:N", sort=order or "ascending")
    points = base.mark_point(filled=True, size=60).encode(y=alt.Y("value:Q", title=y_title), **enc)
    bars = base.mark_errorbar(ticks={"size": 14}, thickness=1.5).encode(
        y=alt.Y("ci_low:Q", title=y_title), y2="ci_high:Q", **enc
    )
    return _svg((bars + points).properties(width=520, height=240))


def _wilson_rows(rows: list[dict[str, Any]], num: str, den: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    k = np.array([float(r[num]) for r in rows])
    n = np.array([float(r[den]) for r in rows])
    return stats.excellence_from_counts(k, n)


def _fcr_section(fcr: pl.DataFrame, months: list[str], language: str) -> dict[str, Any]:
    if fcr is None or fcr.height == 0:
        return {"rows": [], "svg": None}
    quarter_rows = (
        fcr.filter(pl.col("month").is_in(months))
        .group_by("country")
        .agg(pl.col("fcr_resolved").sum(), pl.col("fcr_n").sum())
        .sort("country")
        .to_dicts()
    )
    if not quarter_rows:
        return {"rows": [], "svg": None}
    value, low, high = _wilson_rows(quarter_rows, "fcr_resolved", "fcr_n")
    rows = [
        {"country": r["country"], "value": v, "ci_low": lo, "ci_high": hi, "n": int(r["fcr_n"])}
        for r, v, lo, hi in zip(quarter_rows, value, low, high, strict=True)
    ]
    frame = pl.DataFrame(rows).with_columns(pl.lit(_labels(language)["quarter"]).alias("period"))
    svg = _interval_chart(frame, "country", _labels(language)["country"], "%", color=None)
    return {"rows": rows, "svg": svg}


def _reasons_section(reasons: list[dict[str, Any]], language: str) -> dict[str, Any]:
    top = sorted(reasons, key=lambda r: (-int(r["count"]), str(r["reason"])))[:10]
    if not top:
        return {"rows": [], "svg": None}
    total = sum(int(r["count"]) for r in reasons) or 1
    rows = [{**r, "share": 100.0 * int(r["count"]) / total} for r in top]
    frame = pl.DataFrame(
        {"label": [str(r.get("label") or r["reason"]) for r in top], "count": [int(r["count"]) for r in top]}
    )
    chart = (
        alt.Chart(frame)
        .mark_bar()
        .encode(
            x=alt.X("count:Q", title=_labels(language)["count"]),
            y=alt.Y("label:N", sort="-x", title=None),
        )
        .properties(width=480, height=22 * len(top))
    )
    return {"rows": rows, "svg": _svg(chart)}


def _card_section(card: list[dict[str, Any]], language: str) -> dict[str, Any]:
    """Share of emergency cards delivered within the promise, per month, Wilson interval from n."""
    kept = [r for r in card if int(r.get("n") or 0) > 0 and r.get("share_within_promise") is not None]
    if not kept:
        return {"rows": [], "svg": None}
    kept = sorted(kept, key=lambda r: str(r["month"]))
    shares = np.array([float(r["share_within_promise"]) for r in kept])
    if shares.max() > 1.0:  # the caller gave percentages
        shares = shares / 100.0
    n = np.array([int(r["n"]) for r in kept])
    successes = np.array(
        [
            int(r["successes"]) if r.get("successes") is not None else round(s * k)
            for r, s, k in zip(kept, shares, n, strict=True)
        ]
    )
    value, low, high = stats.excellence_from_counts(successes, n)
    rows = [
        {"month": r["month"], "value": v, "ci_low": lo, "ci_high": hi, "n": int(k)}
        for r, v, lo, hi, k in zip(kept, value, low, high, n, strict=True)
    ]
    svg = _interval_chart(pl.DataFrame(rows), "month", _labels(language)["month"], "%", color=None)
    return {"rows": rows, "svg": svg}


def build_context(data: dict[str, Any]) -> dict[str, Any]:
    """Every figure of the report, computed once (the template only lays them out)."""
    quarter = str(data["quarter"]).upper()
    language = str(data.get("language", "fr")).lower()
    if language not in LANGUAGES:
        raise ValueError(f"language must be fr or en, got {language!r}")
    labels = _labels(language)
    year, q = parse_quarter(quarter)
    months = quarter_months(quarter)
    answers: pl.DataFrame = data.get("answers", analytics.empty_answers())
    answers = answers.with_columns(_quarter_expr())
    earlier = [f"{year + (q - 1 - i) // 4}Q{(q - 1 - i) % 4 + 1}" for i in range(TREND_QUARTERS)]
    quarters = sorted(earlier)
    current = answers.filter(pl.col("quarter") == quarter)

    headline_rtf, headline_exc = _headline(current)
    fcr_frame: pl.DataFrame = data.get("fcr", pl.DataFrame())
    fcr_q = fcr_frame.filter(pl.col("month").is_in(months)) if fcr_frame.height else fcr_frame
    if fcr_q.height:
        resolved, total = int(fcr_q["fcr_resolved"].sum()), int(fcr_q["fcr_n"].sum())
        headline_fcr = stats.excellence_score(resolved, total)
    else:
        headline_fcr = stats.excellence_score(0, 0)

    rtf_trend = _trend(answers, quarters, "rtf")
    exc_trend = _trend(answers, quarters, "excellence")
    sections: dict[str, Any] = {}
    sections["rtf_trend"] = {
        "rows": rtf_trend.to_dicts(),
        "svg": _interval_chart(rtf_trend, "quarter", labels["quarter"], "RTF") if rtf_trend.height else None,
    }
    sections["excellence_trend"] = {
        "rows": exc_trend.to_dicts(),
        "svg": _interval_chart(exc_trend, "quarter", labels["quarter"], "%") if exc_trend.height else None,
    }
    reference = str(data.get("reference_country", "FR"))
    # The calibrated figures are the ones the API and the executive screen show (computed once by
    # ``voice.service.calibrated_countries``); only a caller handing raw answers gets them computed here.
    given = data.get("countries")
    countries = (
        list(given)
        if given is not None
        else calibration.country_scores(
            current, reference=reference, fallback=data.get("calibration_fallback")
        )
    )
    if countries:
        frame = pl.DataFrame(
            [
                {
                    "country": c["country"],
                    "kind": labels[kind],
                    "value": c[kind]["value"],
                    "ci_low": c[kind]["ci_low"],
                    "ci_high": c[kind]["ci_high"],
                }
                for c in countries
                for kind in ("raw", "calibrated")
                if c[kind]["value"] is not None and not (kind == "calibrated" and c.get("too_few"))
            ]
        )
        countries_svg = (
            _interval_chart(
                frame,
                "country",
                labels["country"],
                "RTF",
                color="kind",
                order=[labels["raw"], labels["calibrated"]],
            )
            if frame.height
            else None
        )
    else:
        countries_svg = None
    sections["countries"] = {"rows": countries, "svg": countries_svg, "reference": reference}
    sections["fcr"] = _fcr_section(fcr_frame, months, language)
    sections["reasons"] = _reasons_section(list(data.get("reasons", [])), language)
    sections["card_promise"] = _card_section(
        [
            r
            for r in data.get("card_promise", [])
            if str(r["month"]) in months or str(r["month"]) <= months[-1]
        ],
        language,
    )
    barometers: pl.DataFrame = data.get("barometers", pl.DataFrame())
    if barometers.height:
        barometers = barometers.filter(pl.col("quarter").cast(pl.String).str.to_uppercase() == quarter)
        exc_by_country = {r["key"]: r for r in analytics.scores_by(current, "country")}
        ours = [
            {**c, "quarter": quarter, "excellence": exc_by_country[c["country"]]["excellence"]}
            for c in countries
            if c["country"] in exc_by_country
        ]
        comparison = calibration.compare_with_barometers(ours, barometers)
    else:
        comparison = []
    sections["barometers"] = {"rows": comparison}
    return {
        "quarter": quarter,
        "language": language,
        "labels": labels,
        "months": months,
        "as_of": data.get("as_of"),
        "headline": {"rtf": headline_rtf, "excellence": headline_exc, "fcr": headline_fcr},
        "sections": sections,
    }


def _environment(language: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("prevenance.voice", "report_templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    fmt: Callable[..., str] = lambda value, digits=1: _fmt(value, language, digits)  # noqa: E731
    env.filters["num"] = fmt
    env.filters["method"] = lambda text: _method_label(language, text)
    return env


def render_html(data: dict[str, Any]) -> str:
    """The report as one HTML string."""
    context = build_context(data)
    template = _environment(context["language"]).get_template("quarterly.html")
    return template.render(**context)


def print_pdf(html_path: Path, pdf_path: Path, *, chromium: str = CHROMIUM, timeout: float = 180.0) -> None:
    """Print the HTML file to PDF with headless chromium, in a throwaway profile; fail loudly if no PDF comes out."""
    binary = chromium if Path(chromium).exists() else shutil.which("chromium")
    if binary is None:
        raise RuntimeError(f"chromium not found at {chromium}: cannot print the PDF")
    pdf_path = pdf_path.resolve()
    pdf_path.parent.mkdir(parents=True, exist_ok=True)
    if pdf_path.exists():
        pdf_path.unlink()
    with tempfile.TemporaryDirectory(prefix="prevenance-chromium-") as profile:
        command = [
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            "--no-pdf-header-footer",
            f"--user-data-dir={profile}",
            f"--print-to-pdf={pdf_path}",
            f"file://{html_path.resolve()}",
        ]
        env = {**os.environ, "HOME": profile}
        completed = subprocess.run(command, capture_output=True, timeout=timeout, env=env, check=False)
    if not pdf_path.exists() or pdf_path.read_bytes()[:4] != b"%PDF":
        raise RuntimeError(
            f"chromium did not print a PDF (exit {completed.returncode}): {completed.stderr.decode(errors='replace')[-500:]}"
        )


def build_quarterly_report(data: dict[str, Any], html_path: Path, pdf_path: Path | None) -> None:
    """Write the self-contained HTML report and, when asked, its PDF."""
    html_path = Path(html_path)
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(render_html(data), encoding="utf-8")
    if pdf_path is not None:
        print_pdf(html_path, Path(pdf_path))
