"""Pure rules of the voice domain: who is invited, what a valid answer is, months and quarters,
how an imported line or a barometer line is read. No I/O here."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from prevenance.common.inputs import INT32_MAX, OUT_OF_WINDOW, in_window, quarter_error
from prevenance.common.rules import FieldError

LANGUAGES = ("fr", "en")
SCORE_DIMENSIONS = ("agent", "team", "channel", "reason", "country", "product", "month")
API_DIMENSIONS = ("agent", "team", "channel", "reason", "country")
SUGGESTION_STATUSES = ("new", "under_review", "adopted", "declined")
CHANNELS = ("phone", "email", "chat", "social", "web", "letter")
# The five points of the interaction question, 1 (poor) to 5 (excellent): only 5 counts as excellent
# (their words are the ``voice.interaction.<point>`` keys of the catalogue).
INTERACTION_POINTS = (1, 2, 3, 4, 5)
_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
_QUARTER = re.compile(r"^(\d{4})Q([1-4])$")
_COUNTRY = re.compile(r"^[A-Z]{2}$")
MAX_TEXT = 4000
SUGGESTION_LINK_MAX = 2000
"""The longest link (a URL or a backlog's name) staff attach to a suggestion (``SuggestionUpdate``
says the same; the console's test checks both doors agree)."""
SUGGESTION_NOTE_MAX = 4000
"""The longest note staff attach to a suggestion (shown again with every suggestion listed)."""


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sampling:
    """Which closed contacts get a survey: a share (deterministic per contact) and an optional cap of
    one invitation per member per ``cap_days``."""

    rate: float = 1.0
    cap_days: int | None = None


@dataclass(frozen=True)
class VoiceConfig:
    """The voice configuration in force (``voice_config.json``)."""

    sampling: Sampling
    payout_grid: dict[str, Any]
    calibration_reference: str
    calibration_fallback: dict[str, float]
    report_history_quarters: int = 4
    extra: dict[str, Any] = field(default_factory=dict)


def parse_config(document: dict[str, Any]) -> VoiceConfig:
    """Read and check the configuration document; a bad document fails at start-up, not mid-month."""
    sampling = document.get("sampling", {})
    rate = float(sampling.get("rate", 1.0))
    if not 0.0 <= rate <= 1.0:
        raise FieldError("sampling.rate must be between 0 and 1", "sampling.rate")
    cap = sampling.get("cap_days")
    if cap is not None and (not isinstance(cap, int) or cap < 1):
        raise FieldError("sampling.cap_days must be a positive whole number or null", "sampling.cap_days")
    grid = document["payout_grid"]
    for key in ("target_rtf", "min_answers", "bands"):
        if key not in grid:
            raise FieldError(f"payout_grid.{key} is required", f"payout_grid.{key}")
    calibration = document.get("calibration", {})
    return VoiceConfig(
        sampling=Sampling(rate=rate, cap_days=cap),
        payout_grid=grid,
        calibration_reference=str(calibration.get("reference", "FR")),
        calibration_fallback={str(k): float(v) for k, v in calibration.get("fallback", {}).items()},
        report_history_quarters=int(document.get("report_history_quarters", 4)),
    )


# --- invitations ---------------------------------------------------------------------------------


def sampled(contact_id: str, rate: float) -> bool:
    """Whether a contact falls in the sample: a hash of its id, so a re-delivered event decides the
    same way and the sample is reproducible."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    bucket = int.from_bytes(hashlib.sha256(contact_id.encode()).digest()[:8], "big") / 2**64
    return bucket < rate


def invitation_decision(
    *,
    contact_id: str,
    ended_at: datetime,
    opted_out: bool,
    last_invited_at: datetime | None,
    sampling: Sampling,
) -> str | None:
    """Why a contact is not surveyed (``opted_out``, ``sampled_out``, ``capped``), or None to invite.

    The cap counts from the member's last invitation actually queued, so a member with two contacts a
    day under a 30-day cap gets one survey a month, not none.
    """
    if opted_out:
        return "opted_out"
    if not sampled(contact_id, sampling.rate):
        return "sampled_out"
    if (
        sampling.cap_days is not None
        and last_invited_at is not None
        and ended_at - last_invited_at < timedelta(days=sampling.cap_days)
    ):
        return "capped"
    return None


# --- months and quarters -------------------------------------------------------------------------


def check_month(month: str, field_name: str = "month") -> str:
    """``YYYY-MM`` or a FieldError."""
    if not _MONTH.fullmatch(month or ""):
        raise FieldError(f"{field_name} must look like YYYY-MM, not {month!r}", field_name)
    return month


def check_quarter(quarter: str, field_name: str = "quarter") -> str:
    """``YYYYQn`` or a FieldError."""
    if not _QUARTER.match(quarter or ""):
        raise FieldError(f"{field_name} must look like 2026Q3, not {quarter!r}", field_name)
    return quarter


def quarter_months(quarter: str) -> list[str]:
    """The three months of a quarter."""
    match = _QUARTER.match(check_quarter(quarter))
    assert match
    year, number = int(match.group(1)), int(match.group(2))
    return [f"{year}-{m:02d}" for m in range(3 * number - 2, 3 * number + 1)]


def quarter_of(month: str) -> str:
    """The quarter a month belongs to."""
    check_month(month)
    return f"{month[:4]}Q{(int(month[5:]) - 1) // 3 + 1}"


def previous_quarters(quarter: str, count: int) -> list[str]:
    """``count`` quarters ending with ``quarter``, oldest first."""
    match = _QUARTER.match(check_quarter(quarter))
    assert match
    index = int(match.group(1)) * 4 + int(match.group(2)) - 1
    return [f"{i // 4}Q{i % 4 + 1}" for i in range(index - count + 1, index + 1)]


# --- answers -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AnswerForm:
    """What a customer submitted on the survey page, already read as numbers where it can be."""

    recommend: int | None
    interaction: int | None
    comment: str | None
    suggestion: str | None


def _int_or_error(
    raw: str | None, field_name: str, low: int, high: int, errors: dict[str, str]
) -> int | None:
    text = (raw or "").strip()
    if not text:
        return None
    try:
        value = int(text)
    except ValueError:
        errors[field_name] = "range"
        return None
    if not low <= value <= high:
        errors[field_name] = "range"
        return None
    return value


def _text(raw: str | None) -> str | None:
    text = (raw or "").strip()
    return text or None


def read_form(
    *, recommend: str | None, interaction: str | None, comment: str | None, suggestion: str | None
) -> tuple[AnswerForm, dict[str, str]]:
    """Read the survey form; the second value maps each faulty field to an error code
    (``required``, ``range``, ``too_long``) the page shows next to it."""
    errors: dict[str, str] = {}
    score = _int_or_error(recommend, "recommend", 0, 10, errors)
    if score is None and "recommend" not in errors:
        errors["recommend"] = "required"
    rating = _int_or_error(interaction, "interaction", 1, 5, errors)
    texts = {"comment": _text(comment), "suggestion": _text(suggestion)}
    for name, value in texts.items():
        if value is not None and len(value) > MAX_TEXT:
            errors[name] = "too_long"
    return AnswerForm(score, rating, texts["comment"], texts["suggestion"]), errors


# --- imports -------------------------------------------------------------------------------------

IMPORT_REQUIRED = ("id", "member_ref", "answered_at", "agent", "team", "channel", "reason")
IMPORT_OPTIONAL = (
    "recommend",
    "interaction",
    "comment",
    "suggestion",
    "language",
    "contact_id",
    "product",
    "country",
)


@dataclass(frozen=True)
class ImportedAnswer:
    """One line of an answers CSV, checked (member, product and country are resolved by the service)."""

    id: str
    member_ref: str
    answered_at: datetime
    agent: str
    team: str
    channel: str
    reason: str
    recommend: int | None
    interaction: int | None
    comment: str | None
    suggestion: str | None
    language: str | None
    contact_id: str | None
    product: str | None
    country: str | None


def _parse_time(text: str, field_name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise FieldError(f"{field_name} must be an ISO 8601 time, not {text!r}", field_name)
    if not in_window(moment):  # before converting: a far instant would overflow
        raise FieldError(f"{field_name} {OUT_OF_WINDOW}, not {text!r}", field_name)
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _score(text: str | None, field_name: str, low: int, high: int) -> int | None:
    if text is None or not text.strip():
        return None
    try:
        value = int(text.strip())
    except ValueError:
        raise FieldError(f"{field_name} must be a whole number {low}-{high}, not {text!r}", field_name)
    if not low <= value <= high:
        raise FieldError(f"{field_name} must be between {low} and {high}, not {value}", field_name)
    return value


IMPORT_LENGTHS = {"agent": 120, "team": 120, "reason": 80, "contact_id": 200, "product": 40}
"""The stored width of each attribution column: a longer value is a faulty line, not a database error."""


def parse_import_row(row: Mapping[str, str | None]) -> ImportedAnswer:
    """Check one CSV line; raises FieldError naming the column at fault."""
    # One pass over the line: each text stripped, the first one holding a NUL noted (a missing required
    # column is still reported first).
    values: dict[str, Any] = {}
    with_nul: str | None = None
    for name, raw in row.items():
        if isinstance(raw, str):
            if with_nul is None and "\x00" in raw:
                with_nul = str(name)
            values[name] = raw.strip()
        else:
            values[name] = raw
    for name in IMPORT_REQUIRED:
        required = values.get(name)
        if not required or not isinstance(required, str):
            raise FieldError(f"{name} is required", name)
    if with_nul is not None:
        raise FieldError(f"{with_nul} must not contain a NUL character", with_nul)
    for name, limit in IMPORT_LENGTHS.items():
        if len(values.get(name) or "") > limit:
            raise FieldError(f"{name} is longer than {limit} characters", name)
    channel = str(values["channel"])
    if channel not in CHANNELS:
        raise FieldError(f"channel must be one of {', '.join(CHANNELS)}, not {channel!r}", "channel")
    recommend = _score(values.get("recommend"), "recommend", 0, 10)
    interaction = _score(values.get("interaction"), "interaction", 1, 5)
    if recommend is None and interaction is None:
        raise FieldError("an answer needs recommend or interaction", "recommend")
    language = values.get("language") or None
    if language is not None and language not in LANGUAGES:
        raise FieldError(f"language must be fr or en, not {language!r}", "language")
    country = (values.get("country") or "").upper() or None
    if country is not None and not _COUNTRY.match(country):
        raise FieldError(f"country must be an ISO 3166 alpha-2 code, not {country!r}", "country")
    texts = {name: (values.get(name) or None) for name in ("comment", "suggestion")}
    for name, text in texts.items():
        if text is not None and len(text) > MAX_TEXT:
            raise FieldError(f"{name} is longer than {MAX_TEXT} characters", name)
    external = str(values["id"])
    if len(external) > 200:
        raise FieldError("id is longer than 200 characters", "id")
    return ImportedAnswer(
        id=external,
        member_ref=str(values["member_ref"]),
        answered_at=_parse_time(str(values["answered_at"]), "answered_at"),
        agent=str(values["agent"]),
        team=str(values["team"]),
        channel=channel,
        reason=str(values["reason"]),
        recommend=recommend,
        interaction=interaction,
        comment=texts["comment"],
        suggestion=texts["suggestion"],
        language=language,
        contact_id=values.get("contact_id") or None,
        product=values.get("product") or None,
        country=country,
    )


@dataclass(frozen=True)
class BarometerLine:
    """One external figure: a source's metric for a country and quarter, with n when known."""

    source: str
    country: str
    quarter: str
    metric: str
    value: float
    n: int | None


BAROMETER_COLUMNS = ("source", "country", "quarter", "metric", "value", "n")
BAROMETER_LENGTHS = {"source": 120, "metric": 40}
"""The stored width of the barometer's text keys: a longer value is a faulty line, not a database error."""
MAX_INT32 = INT32_MAX


def parse_barometer_row(row: Mapping[str, str | None]) -> BarometerLine:
    """Check one barometer CSV line; raises FieldError naming the column at fault.

    What the table cannot hold is a faulty line like any other, on either database: a text with a
    NUL (PostgreSQL refuses it), wider than its column, an ``n`` past the 32-bit column, a quarter
    outside the accepted window (``common.inputs``: no query may ask for it)."""
    for name in ("source", "country", "quarter", "metric", "value"):
        if not (row.get(name) or "").strip():
            raise FieldError(f"{name} is required", name)
    for name in BAROMETER_COLUMNS:
        if "\x00" in (row.get(name) or ""):
            raise FieldError(f"{name} must not contain a NUL character", name)
    for name, limit in BAROMETER_LENGTHS.items():
        if len(str(row[name]).strip()) > limit:
            raise FieldError(f"{name} is longer than {limit} characters", name)
    country = str(row["country"]).strip().upper()
    if not _COUNTRY.match(country):
        raise FieldError(f"country must be an ISO 3166 alpha-2 code, not {country!r}", "country")
    quarter = check_quarter(str(row["quarter"]).strip())
    if (outside := quarter_error(quarter)) is not None:
        raise FieldError(f"quarter {outside}", "quarter")
    try:
        value = float(str(row["value"]).strip())
    except ValueError:
        raise FieldError(f"value must be a number, not {row['value']!r}", "value")
    if value != value or value in (float("inf"), float("-inf")):
        raise FieldError("value must be a finite number", "value")
    raw_n = (row.get("n") or "").strip()
    n: int | None = None
    if raw_n:
        try:
            n = int(raw_n)
        except ValueError:
            raise FieldError(f"n must be a whole number, not {raw_n!r}", "n")
        if not 1 <= n <= MAX_INT32:
            raise FieldError(f"n must be a whole number from 1 to {MAX_INT32}", "n")
    return BarometerLine(
        source=str(row["source"]).strip(),
        country=country,
        quarter=quarter,
        metric=str(row["metric"]).strip(),
        value=value,
        n=n,
    )
