"""The desk's rules as plain functions over frozen values. No I/O.

The configurable parts (reason taxonomy, first-contact-resolution window, city teams and delivery
promises) come from a JSON document shipped with the package (``desk_config.json``); these
functions read its parsed form.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import MappingProxyType
from typing import Any

from prevenance.common.rules import FieldError
from prevenance.common.stats import Z_95, wilson_bounds

CHANNELS = ("phone", "email", "chat", "social", "web", "letter")
DIRECTIONS = ("inbound", "outbound")
# What a contact ended with; only ``resolved`` resolves its case.
OUTCOMES = ("resolved", "pending", "transferred", "callback_scheduled", "escalated")
CASE_STATUSES = ("open", "resolved")
FCR_DIMENSIONS = ("agent", "team", "channel", "reason", "country", "month")
PREFERENCE_MODES = ("in_a_hurry", "has_time", "leave_me_alone")
COMMUNICATION_CHANNELS = ("email", "sms", "letter", "push", "phone", "in_app")
COMMUNICATION_KINDS = ("statement", "marketing", "incident", "survey", "service", "other")
LANGUAGES = ("fr", "en")
REPLACEMENT_STATUSES = ("ordered", "dispatched", "delivered")
REPLACEMENT_STATES = ("on_track", "at_risk", "breached", "delivered_on_time", "delivered_late")
# Where a case can be routed: a call-back is a phone contact the desk makes (outbound).
ROUTING_CHANNELS = ("chat", "callback", "phone", "web", "email", "letter", "social")
# Channels that answer while the member waits: what a member in a hurry is offered when one of them
# is measured (an e-mail or a letter waits for its reply, however quickly past matters were closed).


class ConfigError(FieldError):
    """The desk configuration document is not valid; ``field`` names the offending path."""


class RuleViolation(FieldError):
    """A request breaks a desk rule; ``field`` names the offending input."""


# --- configuration ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reason:
    """One leaf of the two-level reason taxonomy: ``card.lost_stolen``."""

    code: str
    group: str
    label_fr: str
    label_en: str
    group_label_fr: str
    group_label_en: str
    self_care: bool = False  # the answer is available in self-care: a contact on it was avoidable


@dataclass(frozen=True)
class CityTeam:
    city: str
    country: str


@dataclass(frozen=True)
class CardPolicy:
    """The emergency card promise: hours where a city team delivers, hours anywhere else."""

    city_team_hours: int
    elsewhere_hours: int
    at_risk_remaining_fraction: float
    city_teams: tuple[CityTeam, ...]


@dataclass(frozen=True)
class Benefit:
    """One benefit of the catalogue and the card products entitled to it."""

    code: str
    label_fr: str
    label_en: str
    products: frozenset[str]


@dataclass(frozen=True)
class BenefitPolicy:
    """The benefits catalogue and how long after an explanation a usage is credited to it."""

    catalogue: Mapping[str, Benefit]
    attribution_window: timedelta


@dataclass(frozen=True)
class RoutingPolicy:
    """How a channel is recommended: cases of the last ``window``, at least ``min_cases`` resolved
    cases for a channel's time to count, the preferred channel taken when its median is at most
    ``tolerance`` (a fraction) slower than the best, else ``default_order`` when nothing is measured."""

    window: timedelta
    min_cases: int
    tolerance: float
    default_order: tuple[str, ...]


DEFAULT_ROUTING = RoutingPolicy(
    window=timedelta(days=90),
    min_cases=20,
    tolerance=0.25,
    default_order=("chat", "callback", "phone", "web", "email", "letter", "social"),
)


@dataclass(frozen=True)
class DeskConfig:
    reasons: Mapping[str, Reason]
    fcr_window: timedelta
    card: CardPolicy
    benefits: BenefitPolicy
    routing: RoutingPolicy = DEFAULT_ROUTING
    recovery_due_hours: int = 24  # a recovery case is due this long after the answer that opened it


def _label(spec: Mapping[str, Any], path: str) -> tuple[str, str]:
    fr, en = spec.get("fr"), spec.get("en")
    if not isinstance(fr, str) or not fr or not isinstance(en, str) or not en:
        raise ConfigError(f"{path} needs non-empty 'fr' and 'en' labels", path)
    return fr, en


def _positive_int(value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"{path} must be a positive integer", path)
    return value


def parse_config(document: Mapping[str, Any]) -> DeskConfig:
    """Validate a desk configuration document and return its frozen form."""
    groups = document.get("reasons")
    if not isinstance(groups, Mapping) or not groups:
        raise ConfigError("reasons must be a non-empty object", "reasons")
    reasons: dict[str, Reason] = {}
    for group, spec in groups.items():
        path = f"reasons.{group}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{path} must be an object", path)
        group_fr, group_en = _label(spec, path)
        children = spec.get("children")
        if not isinstance(children, Mapping) or not children:
            raise ConfigError(f"{path}.children must be a non-empty object", f"{path}.children")
        for child, child_spec in children.items():
            child_path = f"{path}.children.{child}"
            if not isinstance(child_spec, Mapping):
                raise ConfigError(f"{child_path} must be an object", child_path)
            fr, en = _label(child_spec, child_path)
            self_care = child_spec.get("self_care", False)
            if not isinstance(self_care, bool):
                raise ConfigError(f"{child_path}.self_care must be true or false", f"{child_path}.self_care")
            code = f"{group}.{child}"
            reasons[code] = Reason(code, str(group), fr, en, group_fr, group_en, self_care)
    card = document.get("card_replacement")
    if not isinstance(card, Mapping):
        raise ConfigError("card_replacement must be an object", "card_replacement")
    fraction = card.get("at_risk_remaining_fraction", 0.25)
    if isinstance(fraction, bool) or not isinstance(fraction, int | float) or not 0 < fraction < 1:
        raise ConfigError(
            "at_risk_remaining_fraction must be between 0 and 1",
            "card_replacement.at_risk_remaining_fraction",
        )
    teams_doc = card.get("city_teams", [])
    if not isinstance(teams_doc, list):
        raise ConfigError("city_teams must be a list", "card_replacement.city_teams")
    teams = []
    for index, team in enumerate(teams_doc):
        if not (isinstance(team, Mapping) and isinstance(team.get("city"), str) and team.get("country")):
            raise ConfigError(
                "a city team needs a city and a country", f"card_replacement.city_teams.{index}"
            )
        teams.append(CityTeam(city=team["city"], country=str(team["country"]).upper()))
    return DeskConfig(
        benefits=_parse_benefits(document.get("benefits", {})),
        routing=_parse_routing(document.get("routing", {})),
        reasons=MappingProxyType(reasons),
        fcr_window=timedelta(days=_positive_int(document.get("fcr_window_days", 7), "fcr_window_days")),
        recovery_due_hours=_positive_int(document.get("recovery_due_hours", 24), "recovery_due_hours"),
        card=CardPolicy(
            city_team_hours=_positive_int(card.get("city_team_hours", 2), "card_replacement.city_team_hours"),
            elsewhere_hours=_positive_int(
                card.get("elsewhere_hours", 48), "card_replacement.elsewhere_hours"
            ),
            at_risk_remaining_fraction=float(fraction),
            city_teams=tuple(teams),
        ),
    )


def _parse_benefits(document: Any) -> BenefitPolicy:
    """The ``benefits`` section: ``attribution_window_days`` (90) and ``catalogue``, each benefit
    with FR/EN labels and a non-empty list of the product codes entitled to it."""
    if not isinstance(document, Mapping):
        raise ConfigError("benefits must be an object", "benefits")
    catalogue_doc = document.get("catalogue", {})
    if not isinstance(catalogue_doc, Mapping):
        raise ConfigError("benefits.catalogue must be an object", "benefits.catalogue")
    catalogue: dict[str, Benefit] = {}
    for code, spec in catalogue_doc.items():
        path = f"benefits.catalogue.{code}"
        if not isinstance(spec, Mapping):
            raise ConfigError(f"{path} must be an object", path)
        fr, en = _label(spec, path)
        products = spec.get("products")
        if (
            not isinstance(products, list)
            or not products
            or not all(isinstance(product, str) and product for product in products)
        ):
            raise ConfigError(
                f"{path}.products must be a non-empty list of product codes", f"{path}.products"
            )
        catalogue[str(code)] = Benefit(str(code), fr, en, frozenset(products))
    window = _positive_int(document.get("attribution_window_days", 90), "benefits.attribution_window_days")
    return BenefitPolicy(MappingProxyType(catalogue), timedelta(days=window))


def _parse_routing(document: Any) -> RoutingPolicy:
    """The ``routing`` section: ``window_days`` (90), ``min_cases`` (20), ``tolerance`` (0.25) and
    ``default_order`` (every routing channel, once)."""
    if not isinstance(document, Mapping):
        raise ConfigError("routing must be an object", "routing")
    tolerance = document.get("tolerance", DEFAULT_ROUTING.tolerance)
    if isinstance(tolerance, bool) or not isinstance(tolerance, int | float) or tolerance < 0:
        raise ConfigError("routing.tolerance must be a fraction >= 0", "routing.tolerance")
    order = document.get("default_order", list(DEFAULT_ROUTING.default_order))
    if not isinstance(order, list) or sorted(order) != sorted(ROUTING_CHANNELS):
        raise ConfigError(
            f"routing.default_order must list each of {', '.join(ROUTING_CHANNELS)} once",
            "routing.default_order",
        )
    return RoutingPolicy(
        window=timedelta(days=_positive_int(document.get("window_days", 90), "routing.window_days")),
        min_cases=_positive_int(document.get("min_cases", 20), "routing.min_cases"),
        tolerance=float(tolerance),
        default_order=tuple(order),
    )


# --- first-contact resolution -------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFacts:
    """What FCR needs to know of one case."""

    status: str
    contacts: int
    first_outcome: str
    first_started_at: datetime
    resolved_at: datetime | None


def first_contact_resolved(
    case: CaseFacts, *, same_reason_contacts: Iterable[datetime], window: timedelta, now: datetime
) -> bool | None:
    """Whether a case counts as resolved at the first contact; None while that cannot be known yet.

    FCR is computed, never declared: the case is resolved, its one and only contact ended
    ``resolved``, and the member made no new contact on the same reason (on any case) within
    ``window`` after it. ``same_reason_contacts`` are the start times of the member's *other*
    contacts on that reason. Until the window has passed with no repeat, the answer is None, so a
    report never counts as a success what may still turn into a repeat.
    """
    if case.contacts != 1 or case.first_outcome != "resolved" or case.status != "resolved":
        return False
    resolved_at = case.resolved_at or case.first_started_at
    deadline = resolved_at + window
    for started in same_reason_contacts:
        if case.first_started_at < started <= deadline:
            return False
    return None if now < deadline else True


@dataclass(frozen=True)
class Rate:
    """A proportion with its Wilson score 95% interval."""

    value: float | None
    n: int
    ci_low: float | None
    ci_high: float | None


def wilson(successes: int, n: int, *, z: float = Z_95) -> Rate:
    """The share of successes with a Wilson score interval (sound for small n and for 0% or 100%)."""
    if n < 0 or not 0 <= successes <= n:
        raise ValueError("need 0 <= successes <= n")
    if n == 0:
        return Rate(None, 0, None, None)
    low, high = wilson_bounds(successes, n, z=z)
    return Rate(successes / n, n, low, high)


# --- contact-reason analysis --------------------------------------------------------------------


def repeated(starts: Sequence[datetime], *, window: timedelta) -> list[bool]:
    """For one member's contacts on one reason, in time order: was each followed by another
    contact within ``window``? (The customer had to come back: the first contact did not settle it.)"""
    return [
        index + 1 < len(starts) and starts[index] < starts[index + 1] <= start + window
        for index, start in enumerate(starts)
    ]


def growth_z(current: int, previous: int, *, current_days: int, previous_days: int) -> float:
    """How many standard errors the daily contact rate moved from the previous period to this one.

    Contacts are counted events, so each count is treated as Poisson; the z statistic is that of
    the log rate ratio, with 0.5 added to each count so a reason absent last month still compares.
    Positive means more contacts per day than before.
    """
    a, b = current + 0.5, previous + 0.5
    log_ratio = math.log((a / current_days) / (b / previous_days))
    return log_ratio / math.sqrt(1 / a + 1 / b)


def is_growing(current: int, previous: int, *, current_days: int, previous_days: int) -> bool:
    """A reason grows when its daily rate rose significantly (one-sided, 2.5 % level)."""
    return growth_z(current, previous, current_days=current_days, previous_days=previous_days) > Z_95


# --- emergency card replacement -----------------------------------------------------------------


def normalise_city(city: str) -> str:
    """Compare city names without case, accents or surrounding blanks (``München`` ≠ ``Munich``)."""
    decomposed = unicodedata.normalize("NFKD", city.strip().casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c)).replace("-", " ")


def has_city_team(policy: CardPolicy, *, city: str, country: str) -> bool:
    """Whether a city team delivers in this city of this country."""
    wanted = (normalise_city(city), country.upper())
    return any((normalise_city(t.city), t.country) == wanted for t in policy.city_teams)


def promise_hours(policy: CardPolicy, *, city: str, country: str) -> int:
    """The delivery promise: 2 hours where a city team is, 48 hours anywhere else (configurable)."""
    return (
        policy.city_team_hours
        if has_city_team(policy, city=city, country=country)
        else policy.elsewhere_hours
    )


def replacement_state(
    *,
    ordered_at: datetime,
    due_at: datetime,
    delivered_at: datetime | None,
    now: datetime,
    policy: CardPolicy,
) -> str:
    """Where an order stands against its promise.

    An open order is ``at_risk`` once less than the configured share of its promise remains, and
    ``breached`` once past due; a delivered order was on time or late.
    """
    if delivered_at is not None:
        return "delivered_on_time" if delivered_at <= due_at else "delivered_late"
    if now > due_at:
        return "breached"
    remaining = (due_at - now) / (due_at - ordered_at)
    return "at_risk" if remaining < policy.at_risk_remaining_fraction else "on_track"


def case_status_after(outcome: str) -> str:
    """A case's status once a contact with ``outcome`` is filed in it, new or not: only a
    ``resolved`` contact resolves a case; any other leaves it open, or reopens a resolved one (the
    matter came back)."""
    return "resolved" if outcome == "resolved" else "open"


def next_status(current: str, action: str) -> str | None:
    """The status an action leads to from ``current``; None when it is not allowed.

    Repeating the action that led to the current status is allowed (a no-op), so retries are safe.
    """
    target = {"dispatch": "dispatched", "deliver": "delivered"}[action]
    if current == target:
        return target
    allowed = {("ordered", "dispatch"), ("dispatched", "deliver")}
    return target if (current, action) in allowed else None


# --- contact preference -------------------------------------------------------------------------


def may_send_marketing(preference: str | None) -> bool:
    """Whether outbound marketing may reach a customer: never one who asked to be left alone.

    Every loop that sends marketing must call this; a customer with no stated preference may be
    contacted (consent is checked separately).
    """
    return preference != "leave_me_alone"


# --- benefits -----------------------------------------------------------------------------------


def entitled_benefits(policy: BenefitPolicy, *, product: str) -> list[Benefit]:
    """The benefits a card product is entitled to, in catalogue order."""
    return [benefit for benefit in policy.catalogue.values() if product in benefit.products]


def check_entitled(policy: BenefitPolicy, *, product: str, benefit: str, field: str) -> Benefit:
    """The benefit when the product is entitled to it; a ``RuleViolation`` on ``field`` otherwise."""
    found = policy.catalogue.get(benefit)
    if found is None:
        raise RuleViolation(f"unknown benefit {benefit!r}; see GET /v1/benefits", field)
    if product not in found.products:
        raise RuleViolation(f"the {product} card is not entitled to {benefit}", field)
    return found


def twelve_months_before(now: datetime) -> datetime:
    """The same instant a calendar year earlier (29 February falls back to the 28th)."""
    try:
        return now.replace(year=now.year - 1)
    except ValueError:
        return now.replace(year=now.year - 1, day=28)


def unused_for_12_months(last_used_at: datetime | None, *, now: datetime) -> bool:
    """A benefit is unused when the member has not used it in the twelve months up to ``now``."""
    return last_used_at is None or last_used_at <= twelve_months_before(now)


@dataclass(frozen=True)
class Explanation:
    """An agent explained a benefit to the member at a contact."""

    contact_id: str
    agent: str
    explained_at: datetime


def attribute_usage(
    used_at: datetime, explanations: Iterable[Explanation], *, window: timedelta
) -> Explanation | None:
    """The explanation a usage is credited to: the latest one of that benefit to that member at or
    before the usage and no more than ``window`` before it (last touch); None when there is none."""
    candidates = [e for e in explanations if e.explained_at <= used_at <= e.explained_at + window]
    return max(candidates, key=lambda e: (e.explained_at, e.contact_id), default=None)


def explanation_outcome(
    explanation: Explanation, *, credited: bool, window: timedelta, now: datetime
) -> bool | None:
    """Whether an explanation was followed by a usage credited to it; None while its window is
    still open and nothing is credited yet (a report never counts as a miss what may still succeed)."""
    if credited:
        return True
    return None if now < explanation.explained_at + window else False


@dataclass(frozen=True)
class IncidentWindow:
    """An incident as the reason analysis sees it: when it was active and what it explains."""

    incident_id: str
    since: datetime
    resolved_at: datetime | None
    reasons: frozenset[str]  # the contact reasons it explains; empty: any


def notice_would_have_prevented(
    window: IncidentWindow, *, reason: str, contact_at: datetime, notice_sent_at: datetime | None
) -> bool:
    """An affected member's contact was avoidable by a proactive notice when it came while the
    incident was active, on a reason the incident explains, and before the notice reached them."""
    if contact_at < window.since or (window.resolved_at is not None and contact_at >= window.resolved_at):
        return False
    if window.reasons and reason not in window.reasons:
        return False
    return notice_sent_at is None or notice_sent_at > contact_at
