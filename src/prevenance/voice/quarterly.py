"""Country comparison (raw and calibrated, with the market barometers) and the quarterly report's
data: both read answers only as counts by (country, stratum, score) from the database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import polars as pl
from sqlalchemy.orm import Session

from prevenance.common import inputs
from prevenance.common.ids import iso_z
from prevenance.common.problems import InvalidInput, as_invalid_input
from prevenance.common.rules import FieldError
from prevenance.desk import service as desk
from prevenance.voice import aggregates, calibration, repository, rules
from prevenance.voice.basics import METHODS, current_config
from prevenance.voice.errors import InvalidImport
from prevenance.voice.tables import Barometer


def _barometer_body(row: Barometer) -> dict[str, Any]:
    return {
        "source": row.source,
        "country": row.country,
        "quarter": row.quarter,
        "metric": row.metric,
        "value": row.value,
        "n": row.n,
        "imported_at": iso_z(row.imported_at),
    }


def import_barometers(
    session: Session, *, rows: Sequence[Mapping[str, str | None]], now: datetime
) -> dict[str, int]:
    """Store competitor and market figures, all lines or none; one row per (source, country, quarter,
    metric): the same figure again changes nothing, a new value corrects the stored one."""
    errors: list[dict[str, Any]] = []
    lines: dict[tuple[str, str, str, str], rules.BarometerLine] = {}
    for offset, raw in enumerate(rows):
        try:
            item = rules.parse_barometer_row(raw)
        except FieldError as error:
            errors.append({"line": offset + 2, "field": error.field, "reason": str(error)})
            continue
        lines[(item.source, item.country, item.quarter, item.metric)] = item
    if errors:
        raise InvalidImport(
            f"{len(errors)} faulty line(s), first on line {errors[0]['line']}: {errors[0]['reason']}",
            field=errors[0]["field"],
            errors=errors,
        )
    counts = {"inserted": 0, "updated": 0, "unchanged": 0}
    for key, item in lines.items():
        row = session.get(Barometer, key, with_for_update=True)
        if row is None:
            session.add(
                Barometer(
                    source=item.source,
                    country=item.country,
                    quarter=item.quarter,
                    metric=item.metric,
                    value=item.value,
                    n=item.n,
                    imported_at=now,
                )
            )
            counts["inserted"] += 1
        elif (row.value, row.n) != (item.value, item.n):
            row.value, row.n, row.imported_at = item.value, item.n, now
            counts["updated"] += 1
        else:
            counts["unchanged"] += 1
    session.flush()
    return counts


def list_barometers(
    session: Session, *, quarter: str | None = None, country: str | None = None
) -> list[dict[str, Any]]:
    """Stored barometer figures, by quarter, country, source and metric."""
    if quarter is not None:
        inputs.check_quarter(quarter)
        with as_invalid_input():
            rules.check_quarter(quarter)
    return [_barometer_body(row) for row in repository.barometers(session, quarter=quarter, country=country)]


def calibrated_countries(session: Session, *, quarter: str) -> dict[str, Any]:
    """The quarter's raw and calibrated scores per country, computed once with the shipped calibration
    settings: the API, the executive screen and the quarterly report all show these figures."""
    inputs.check_quarter(quarter)
    with as_invalid_input():
        months = rules.quarter_months(quarter)
    config = current_config()
    counts = aggregates.stratum_counts(session, months=months, strata=calibration.DEFAULT_STRATA)
    countries = calibration.country_scores(
        counts, reference=config.calibration_reference, fallback=config.calibration_fallback or None
    )
    return {
        "quarter": quarter,
        "reference": config.calibration_reference,
        "n": aggregates.total_answers(counts),
        "min_answers": calibration.MIN_ANSWERS,
        "countries": countries,
    }


def country_comparison(session: Session, *, quarter: str) -> dict[str, Any]:
    """Raw and calibrated RTF per country for a quarter, with the barometers of that quarter beside."""
    found = calibrated_countries(session, quarter=quarter)
    outside = list_barometers(session, quarter=quarter)
    for item in found["countries"]:
        code = item.get("country") or item.get("key")
        item["barometers"] = [b for b in outside if b["country"] == code]
    return {
        **found,
        "barometers": outside,
        "method": f"{METHODS}#culture-aware-country-comparison-calibration",
    }


def report_data(session: Session, *, quarter: str, language: str, now: datetime) -> dict[str, Any]:
    """Everything ``report.build_quarterly_report`` needs for a quarter (and the quarters before it,
    for the trends): answers, FCR by month and country, top reasons, card promise kept, barometers.

    The history starts no earlier than the accepted window (``common.inputs``): for 2000's quarters
    it reached 1999, which the desk's figures refuse, and the report of an accepted quarter was a 422.
    """
    inputs.check_quarter(quarter)
    with as_invalid_input():
        history = rules.previous_quarters(quarter, current_config().report_history_quarters)
    quarters = [q for q in history if inputs.quarter_error(q) is None]
    if language not in rules.LANGUAGES:
        raise InvalidInput("language must be fr or en", field="language")
    months = [month for q in quarters for month in rules.quarter_months(q)]
    fcr_rows: list[dict[str, Any]] = []
    for month in months:
        report = desk.fcr_report(session, by="country", month=month, now=now)
        fcr_rows += [
            {"month": month, "country": r["key"], "fcr_resolved": int(r["successes"]), "fcr_n": int(r["n"])}
            for r in report["rows"]
        ]
    reasons: dict[str, dict[str, Any]] = {}
    for month in rules.quarter_months(quarter):
        for item in desk.reason_report(session, month=month)["reasons"]:
            entry = reasons.setdefault(
                item["reason"],
                {"reason": item["reason"], "label": item[f"label_{language}"], "count": 0},
            )
            entry["count"] += int(item["contacts"])
    card_promise = []
    for month in months:
        kept = desk.card_replacement_report(session, month=month, now=now)["within_promise"]
        card_promise.append({"month": month, "share_within_promise": kept["value"], "n": int(kept["n"])})
    outside = repository.barometers_for_quarters(session, quarters)
    barometers = pl.DataFrame(
        {
            "source": [b.source for b in outside],
            "country": [b.country for b in outside],
            "quarter": [b.quarter for b in outside],
            "metric": [b.metric for b in outside],
            "value": [b.value for b in outside],
            "n": [b.n for b in outside],
        },
        schema={
            "source": pl.Utf8,
            "country": pl.Utf8,
            "quarter": pl.Utf8,
            "metric": pl.Utf8,
            "value": pl.Float64,
            "n": pl.Int64,
        },
    )
    calibrated = calibrated_countries(session, quarter=quarter)
    return {
        "quarter": quarter,
        "language": language,
        "answers": aggregates.country_month_counts(session, months=months),
        "countries": calibrated["countries"],
        "reference_country": calibrated["reference"],
        "fcr": pl.DataFrame(
            fcr_rows,
            schema={"month": pl.Utf8, "country": pl.Utf8, "fcr_resolved": pl.Int64, "fcr_n": pl.Int64},
        ),
        "reasons": sorted(reasons.values(), key=lambda r: (-r["count"], r["reason"]))[:10],
        "card_promise": card_promise,
        "barometers": barometers,
    }
