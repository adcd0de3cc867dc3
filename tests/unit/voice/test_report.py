"""The quarterly executive report on synthetic data: self-contained HTML with offline SVG charts, FR and
EN, and a PDF printed by headless chromium."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from prevenance.voice import analytics, report
from tests.conftest import missing_server

SECTIONS = (
    "headline",
    "rtf-trend",
    "excellence-trend",
    "countries",
    "fcr",
    "reasons",
    "card-promise",
    "barometers",
)


def answers(n: int = 4000, seed: int = 5) -> pl.DataFrame:
    """Nine months over three countries; GB rates 1.5 points higher for the same experience."""
    rng = np.random.default_rng(seed)
    months = np.array([f"2026-{m:02d}" for m in range(1, 10)])
    month_i = rng.integers(0, 9, n)
    country_i = rng.integers(0, 3, n)
    reason_i = rng.integers(0, 3, n)
    latent = 6.8 + 0.5 * reason_i + 0.05 * month_i + rng.normal(0, 1.8, n)
    recommend = np.clip(np.rint(latent + np.array([0.0, 1.5, 0.3])[country_i]), 0, 10)
    interaction = np.clip(np.rint((latent - 2) / 1.5), 1, 5)
    return pl.DataFrame(
        {
            "answer_id": [f"a{i}" for i in range(n)],
            "contact_id": [f"c{i}" for i in range(n)],
            "member_id": rng.integers(1, 500, n),
            "agent": [f"agent-{i % 40}" for i in range(n)],
            "team": [f"team-{i % 4}" for i in range(n)],
            "channel": np.array(["phone", "email"])[rng.integers(0, 2, n)],
            "reason": np.array(["lost_card", "statement", "points"])[reason_i],
            "product": "gold",
            "country": np.array(["FR", "GB", "DE"])[country_i],
            "month": months[month_i],
            "answered_at": [datetime(2026, int(months[m][5:]), 3, tzinfo=UTC) for m in month_i],
            "recommend": recommend,
            "interaction": interaction,
            "language": "fr",
        }
    ).cast(analytics.ANSWER_SCHEMA)  # type: ignore[arg-type]


def data(language: str = "fr") -> dict[str, Any]:
    return {
        "quarter": "2026Q3",
        "language": language,
        "answers": answers(),
        "fcr": pl.DataFrame(
            {
                "month": ["2026-07", "2026-08", "2026-09", "2026-08", "2026-04"],
                "country": ["FR", "FR", "GB", "DE", "FR"],
                "fcr_resolved": [80, 70, 60, 10, 5],
                "fcr_n": [100, 90, 80, 12, 50],
            }
        ),
        "reasons": [
            {
                "reason": "lost_card",
                "label": "Carte perdue" if language == "fr" else "Lost card",
                "count": 120,
            },
            {"reason": "points", "label": "Points", "count": 80},
            {"reason": "statement", "label": "Relevé" if language == "fr" else "Statement", "count": 45},
        ],
        "card_promise": [
            {"month": "2026-07", "share_within_promise": 0.93, "n": 50},
            {"month": "2026-08", "share_within_promise": 0.97, "n": 61},
            {"month": "2026-09", "share_within_promise": 0.90, "n": 40},
        ],
        "barometers": pl.DataFrame(
            {
                "source": ["Baro", "Baro", "Other", "Old"],
                "country": ["FR", "GB", "FR", "FR"],
                "quarter": ["2026Q3", "2026Q3", "2026Q3", "2026Q2"],
                "metric": ["rtf", "rtf", "excellence", "rtf"],
                "value": [10.0, 40.0, 30.0, -50.0],
                "n": [1000, None, 500, 100],
            }
        ),
    }


def section(html: str, section_id: str) -> str:
    match = re.search(rf'<section id="{section_id}">(.*?)</section>', html, re.S)
    assert match, section_id
    return match.group(1)


def test_the_html_is_self_contained_with_every_section_and_offline_svg_charts(tmp_path: Path) -> None:
    html_path = tmp_path / "q3.html"
    report.build_quarterly_report(data("fr"), html_path, None)
    html = html_path.read_text("utf-8")
    for section_id in SECTIONS:
        assert f'id="{section_id}"' in html
    for section_id in ("rtf-trend", "excellence-trend", "countries", "fcr", "reasons", "card-promise"):
        assert "<svg" in section(html, section_id), section_id
    # Nothing to fetch: no script, no stylesheet link, no remote URL apart from the SVG namespaces.
    assert "<script" not in html and "<link" not in html
    remote = {u for u in re.findall(r"https?://[^\s\"'<>)]+", html) if not u.startswith("http://www.w3.org/")}
    assert remote == set()
    assert "Voix du client" in html and "Comparaison des pays" in html and "IC 95 %" in html
    assert "2026Q3" in html


def test_the_report_states_n_and_intervals_and_keeps_only_the_quarters_barometers(tmp_path: Path) -> None:
    html = report.render_html(data("en"))
    countries = section(html, "countries")
    assert "GB" in countries and "(ref.)" in countries and "Calibrated" in countries
    barometers = section(html, "barometers")
    assert "n unknown" in barometers and "Baro" in barometers and "Other" in barometers
    assert "Old" not in barometers  # 2026Q2 barometer is not this quarter's
    assert "95% CI" in html and "n = " in section(html, "headline")
    assert "Recommend to a friend" in html and "Voix du client" not in html


def test_the_trend_covers_the_previous_quarters_and_not_the_future() -> None:
    context = report.build_context(data("en") | {"quarter": "2026Q2"})
    quarters = {row["quarter"] for row in context["sections"]["rtf_trend"]["rows"]}
    assert quarters == {"2026Q1", "2026Q2"}


def test_the_headline_figures_are_the_quarters() -> None:
    d = data("en")
    context = report.build_context(d)
    q3 = d["answers"].filter(pl.col("month").is_in(["2026-07", "2026-08", "2026-09"]))
    assert context["headline"]["rtf"].n == q3["recommend"].is_not_null().sum()
    assert context["headline"]["fcr"].n == 282
    assert context["headline"]["fcr"].value == pytest.approx(100 * 220 / 282)


def test_the_calibrated_gb_score_is_close_to_france_in_the_report() -> None:
    rows = {r["country"]: r for r in report.build_context(data("en"))["sections"]["countries"]["rows"]}
    assert rows["GB"]["raw"]["value"] - rows["FR"]["raw"]["value"] > 25
    assert abs(rows["GB"]["calibrated"]["value"] - rows["FR"]["raw"]["value"]) < 10


def test_an_empty_quarter_still_renders_with_no_data_notes() -> None:
    html = report.render_html(
        {
            "quarter": "2027Q1",
            "language": "fr",
            "answers": analytics.empty_answers(),
            "fcr": pl.DataFrame(),
            "reasons": [],
            "card_promise": [],
            "barometers": pl.DataFrame(),
        }
    )
    assert html.count("Aucune donnée pour cette section.") >= 6


@pytest.mark.parametrize("quarter", ["2026Q5", "2026-Q3", "Q3 2026"])
def test_a_malformed_quarter_is_refused(quarter: str) -> None:
    with pytest.raises(ValueError):
        report.build_context(data() | {"quarter": quarter})


def test_quarter_months() -> None:
    assert report.quarter_months("2026Q3") == ["2026-07", "2026-08", "2026-09"]
    assert report.quarter_months("2027q1") == ["2027-01", "2027-02", "2027-03"]


def test_the_pdf_is_printed_by_headless_chromium(tmp_path: Path) -> None:
    if not Path(report.CHROMIUM).exists() and shutil.which("chromium") is None:
        missing_server("chromium is not installed (it prints the quarterly report)")
    html_path, pdf_path = tmp_path / "q3.html", tmp_path / "out" / "q3.pdf"
    report.build_quarterly_report(data("en"), html_path, pdf_path)
    content = pdf_path.read_bytes()
    assert content.startswith(b"%PDF")
    assert len(content) > 10_000
