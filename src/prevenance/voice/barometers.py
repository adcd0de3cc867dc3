"""Our country figures beside the market barometers: ours minus theirs with a 95% interval
(method in ``docs/methods.md#calibration``). Pure Python/Polars, no I/O."""

from __future__ import annotations

import math
from typing import Any

import polars as pl

from prevenance.voice import stats


def _our_figure(item: dict[str, Any], metric: str) -> tuple[float | None, int, float | None]:
    """(value, n, standard error) of one of our rows for a metric; accepts country_scores rows or flat rows."""
    if metric == "top_box":
        metric = "excellence"
    if metric in ("rtf", "nps") and isinstance(item.get("raw"), dict):
        score = item["raw"]
    elif isinstance(item.get(metric), dict):
        score = item[metric]
    elif item.get("metric", "rtf") == metric or (metric == "nps" and item.get("metric", "rtf") == "rtf"):
        score = item
    else:
        return None, 0, None
    value = score.get("value")
    low, high = score.get("ci_low"), score.get("ci_high")
    se = (high - low) / (2 * stats.Z95) if low is not None and high is not None else None
    return value, int(score.get("n") or 0), se


def _barometer_se(metric: str, value: float, n: int) -> float:
    """Sampling error of a published figure: binomial for a percentage, the largest trinomial variance for an RTF.

    A barometer gives its RTF without the promoter/passive split; 1 - RTF^2 is the variance when
    nobody is passive, the worst case, so the interval is conservative.
    """
    if metric in ("rtf", "nps"):
        share = max(-1.0, min(1.0, value / 100.0))
        return 100.0 * math.sqrt(max(1.0 - share * share, 1e-12) / n)
    share = max(0.0, min(1.0, value / 100.0))
    return 100.0 * math.sqrt(max(share * (1.0 - share), 1e-12) / n)


def compare_with_barometers(ours: list[dict[str, Any]], barometers: pl.DataFrame) -> list[dict[str, Any]]:
    """Each barometer figure beside ours for the same country (and quarter when both say), ours minus theirs with a 95% CI.

    ``ours``: rows of ``country_scores`` (their raw RTF is compared: a barometer surveys the same
    culture) or flat rows ``{country, quarter?, metric?, value, n, ci_low, ci_high}`` or rows holding
    Score dicts under the metric's name (e.g. ``"excellence"``). A barometer without n is compared
    without interval and flagged ``n unknown``.
    """
    rows: list[dict[str, Any]] = []
    for bar in barometers.sort(["country", "quarter", "source", "metric"]).iter_rows(named=True):
        country = str(bar["country"]).upper()
        metric = str(bar["metric"]).lower()
        candidates = [o for o in ours if str(o.get("country") or o.get("key") or "").upper() == country]
        same_quarter = [o for o in candidates if o.get("quarter") == bar["quarter"]]
        if same_quarter:
            candidates = same_quarter
        elif any(o.get("quarter") is not None for o in candidates):
            candidates = [o for o in candidates if o.get("quarter") is None]
        ours_value, ours_n, ours_se = None, 0, None
        for item in candidates:
            ours_value, ours_n, ours_se = _our_figure(item, metric)
            if ours_value is not None:
                break
        bar_n = bar.get("n")
        bar_n = (
            int(bar_n) if bar_n is not None and not (isinstance(bar_n, float) and math.isnan(bar_n)) else None
        )
        row: dict[str, Any] = {
            "source": bar["source"],
            "country": country,
            "quarter": bar["quarter"],
            "metric": metric,
            "barometer": None if bar["value"] is None else float(bar["value"]),
            "barometer_n": bar_n,
            "ours": ours_value,
            "ours_n": ours_n,
            "difference": None,
            "ci_low": None,
            "ci_high": None,
            "significant": None,
            "flag": None,
        }
        if row["barometer"] is None:
            row["flag"] = "no barometer value"
        elif ours_value is None:
            row["flag"] = "no comparable figure of ours"
        else:
            row["difference"] = ours_value - float(bar["value"])
            if bar_n is None or bar_n <= 0:
                row["flag"] = "n unknown"
            elif ours_se is not None:
                se = math.sqrt(ours_se**2 + _barometer_se(metric, float(bar["value"]), bar_n) ** 2)
                row["ci_low"] = row["difference"] - stats.Z95 * se
                row["ci_high"] = row["difference"] + stats.Z95 * se
                row["significant"] = row["ci_low"] > 0 or row["ci_high"] < 0
        rows.append(row)
    return rows
