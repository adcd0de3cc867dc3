"""The offer rules as plain functions: eligibility, segments, holdout assignment, expected value and
the reward a qualifying transaction earns. No I/O: the service feeds them facts."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from prevenance.common.rules import FieldError

REWARD_KINDS = ("bonus_points", "category_multiplier", "ecode")
SEGMENTS = ("new", "active", "lapsing")
STATUSES = ("active", "paused", "ended")
# A member whose last card payment is older than this is "lapsing"; younger than NEW_DAYS of
# history, "new". Simple, explainable thresholds that marketing can read off a statement.
LAPSING_AFTER_DAYS = 45
NEW_FOR_DAYS = 90
MAX_POINTS = 10**9


class RuleViolation(FieldError):
    """A definition that cannot be accepted; ``field`` names the culprit (dotted path)."""


def parse_decimal(value: Any, *, field: str, low: Decimal, high: Decimal | None = None) -> Decimal:
    try:
        number = Decimal(str(value))
    except (InvalidOperation, ValueError):
        raise RuleViolation(f"{field} must be a decimal number written as text", field=field)
    if not number.is_finite() or number < low or (high is not None and number > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise RuleViolation(f"{field} must be {bound}", field=field)
    return number


def _int(value: Any, *, field: str, low: int, high: int = MAX_POINTS) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise RuleViolation(f"{field} must be an integer between {low} and {high}", field=field)
    return value


def _words(value: Any, *, field: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise RuleViolation(f"{field} must be a list of non-blank strings", field=field)
    return frozenset(v.strip().casefold() for v in value)


@dataclass(frozen=True)
class Eligibility:
    """Who may receive an offer; an empty set does not restrict."""

    products: frozenset[str] = frozenset()
    tiers: frozenset[str] = frozenset()
    countries: frozenset[str] = frozenset()
    segments: frozenset[str] = frozenset()
    categories: frozenset[str] = frozenset()
    min_spend_eur: Decimal = Decimal(0)

    def as_json(self) -> dict[str, Any]:
        return {
            "products": sorted(self.products),
            "tiers": sorted(self.tiers),
            "countries": sorted(c.upper() for c in self.countries),
            "segments": sorted(self.segments),
            "categories": sorted(self.categories),
            "min_spend_eur": str(self.min_spend_eur),
        }


ELIGIBILITY_KEYS = ("products", "tiers", "countries", "segments", "categories", "min_spend_eur")


def parse_eligibility(raw: Mapping[str, Any]) -> Eligibility:
    """Validate an eligibility object; unknown keys are refused so a typo cannot widen an offer."""
    unknown = sorted(set(raw) - set(ELIGIBILITY_KEYS))
    if unknown:
        raise RuleViolation(f"unknown eligibility key {unknown[0]!r}", field=f"eligibility.{unknown[0]}")
    segments = _words(raw.get("segments"), field="eligibility.segments")
    bad = sorted(segments - set(SEGMENTS))
    if bad:
        raise RuleViolation(
            f"segment {bad[0]!r} is not one of {', '.join(SEGMENTS)}", field="eligibility.segments"
        )
    return Eligibility(
        products=_words(raw.get("products"), field="eligibility.products"),
        tiers=_words(raw.get("tiers"), field="eligibility.tiers"),
        countries=_words(raw.get("countries"), field="eligibility.countries"),
        segments=segments,
        categories=_words(raw.get("categories"), field="eligibility.categories"),
        min_spend_eur=parse_decimal(
            raw.get("min_spend_eur", "0"), field="eligibility.min_spend_eur", low=Decimal(0)
        ),
    )


@dataclass(frozen=True)
class Reward:
    """What a member gets on the next qualifying transaction after activating the offer."""

    kind: str
    points: int = 0  # bonus_points; for an e-code, its face value in points (what the budget counts)
    category: str | None = None  # category_multiplier
    multiplier: Decimal = Decimal(1)
    max_points: int | None = None
    sku: str | None = None  # ecode
    min_spend_eur: Decimal = Decimal(0)

    def as_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"min_spend_eur": str(self.min_spend_eur)}
        if self.kind == "bonus_points":
            body["points"] = self.points
        elif self.kind == "category_multiplier":
            body.update(category=self.category, multiplier=str(self.multiplier), max_points=self.max_points)
        else:
            body.update(sku=self.sku, points=self.points)
        return body

    def nominal_points(self) -> int:
        """Points one reward is expected to cost the budget (the cap for a multiplier)."""
        if self.kind == "category_multiplier":
            return self.max_points or 0
        return self.points


def parse_reward(kind: str, raw: Mapping[str, Any]) -> Reward:
    """Validate the reward object of a reward kind."""
    if kind not in REWARD_KINDS:
        raise RuleViolation(f"reward_kind must be one of {', '.join(REWARD_KINDS)}", field="reward_kind")
    allowed = {
        "bonus_points": {"points", "min_spend_eur"},
        "category_multiplier": {"category", "multiplier", "max_points", "min_spend_eur"},
        "ecode": {"sku", "points", "min_spend_eur"},
    }[kind]
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise RuleViolation(f"unknown key {unknown[0]!r} for a {kind} reward", field=f"reward.{unknown[0]}")
    min_spend = parse_decimal(raw.get("min_spend_eur", "0"), field="reward.min_spend_eur", low=Decimal(0))
    if kind == "bonus_points":
        return Reward(
            kind, points=_int(raw.get("points"), field="reward.points", low=1), min_spend_eur=min_spend
        )
    if kind == "category_multiplier":
        category = raw.get("category")
        if not isinstance(category, str) or not category.strip():
            raise RuleViolation("a multiplier names its merchant category", field="reward.category")
        multiplier = parse_decimal(
            raw.get("multiplier"), field="reward.multiplier", low=Decimal(1), high=Decimal(20)
        )
        if multiplier == 1:
            raise RuleViolation("reward.multiplier must be above 1", field="reward.multiplier")
        max_points = raw.get("max_points")
        return Reward(
            kind,
            category=category.strip().casefold(),
            multiplier=multiplier,
            max_points=None if max_points is None else _int(max_points, field="reward.max_points", low=1),
            min_spend_eur=min_spend,
        )
    sku = raw.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        raise RuleViolation("an e-code reward names the e-code sku", field="reward.sku")
    return Reward(
        kind,
        sku=sku.strip(),
        points=_int(raw.get("points", 0), field="reward.points", low=0),
        min_spend_eur=min_spend,
    )


@dataclass(frozen=True)
class OfferSpec:
    """An offer as the decision sees it (parsed once, cached in-process)."""

    id: str
    partner_merchant: str
    partner_category: str | None
    reward: Reward
    eligibility: Eligibility
    cap_per_member: int
    budget_points: int | None
    unit_cost_eur: Decimal
    margin_rate: Decimal
    expected_spend_eur: Decimal
    holdout_share: Decimal
    decision_days: int
    valid_from: datetime
    valid_until: datetime
    status: str = "active"
    texts: Mapping[str, str] = field(default_factory=dict)  # title_fr, title_en, text_fr, text_en

    @property
    def merchant_key(self) -> str:
        return self.partner_merchant.strip().casefold()


@dataclass(frozen=True)
class TransactionFacts:
    """What the decision knows of the triggering transaction and its member."""

    member_ref: str
    product: str
    tier: str
    country: str
    segment: str
    merchant: str
    category: str
    amount_eur: Decimal
    points_earned: int
    occurred_at: datetime


def segment_of(*, recency_days: float | None, history_days: float | None) -> str:
    """'new' (no or little history), 'lapsing' (quiet for a while) or 'active'."""
    if recency_days is None or history_days is None:
        return "new"
    if recency_days > LAPSING_AFTER_DAYS:
        return "lapsing"
    if history_days < NEW_FOR_DAYS:
        return "new"
    return "active"


def ineligibility(offer: OfferSpec, facts: TransactionFacts, now: datetime) -> str | None:
    """Why the offer cannot go to this member on this transaction (None: it can)."""
    rules = offer.eligibility
    if offer.status != "active":
        return "status"
    if not offer.valid_from <= now < offer.valid_until:
        return "dates"
    if rules.products and facts.product.casefold() not in rules.products:
        return "product"
    if rules.tiers and facts.tier.casefold() not in rules.tiers:
        return "tier"
    if rules.countries and facts.country.casefold() not in rules.countries:
        return "country"
    if rules.segments and facts.segment not in rules.segments:
        return "segment"
    if rules.categories and facts.category.casefold() not in rules.categories:
        return "category"
    if facts.amount_eur < rules.min_spend_eur:
        return "min_spend"
    return None


def is_eligible(offer: OfferSpec, facts: TransactionFacts, now: datetime) -> bool:
    """Whether every eligibility rule admits this member on this transaction."""
    return ineligibility(offer, facts, now) is None


def holdout_bucket(member_ref: str, offer_id: str) -> float:
    """A uniform number in [0, 1) fixed by (member, campaign): SHA-256, so any system can recompute it."""
    digest = hashlib.sha256(f"{member_ref}\x1f{offer_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def arm_of(member_ref: str, offer_id: str, holdout_share: Decimal) -> str:
    """'control' for the held-out share of members of a campaign, 'treatment' for the others."""
    return "control" if holdout_bucket(member_ref, offer_id) < float(holdout_share) else "treatment"


PROGRAMME_HOLDOUT_MIN_DAYS = 150
PROGRAMME_HOLDOUT_MAX_SHARE = Decimal("0.2")


def programme_holdout_bucket(member_ref: str, salt: str) -> float:
    """Where a member falls in [0, 1) for the programme-wide holdout of the period salted ``salt``:
    independent of every campaign's own hash (which uses the campaign id, not the salt)."""
    digest = hashlib.sha256(f"programme\x1f{salt}\x1f{member_ref}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def in_programme_holdout(member_ref: str, salt: str, share: Decimal) -> bool:
    """True for the members the programme-wide holdout keeps away from every marketing offer."""
    return programme_holdout_bucket(member_ref, salt) < float(share)


def expected_value(propensity: float, offer: OfferSpec) -> float:
    """EUR the brand expects from making the offer: p × (incremental margin − reward cost).

    The reward's cost is only paid when the member responds, hence both terms scale with p.
    """
    value = float(offer.expected_spend_eur * offer.margin_rate)
    return propensity * (value - float(offer.unit_cost_eur))


def reward_points(offer: OfferSpec, facts: TransactionFacts) -> int | None:
    """Points this transaction earns under an activated offer; None when it does not qualify.

    Bonus points and e-codes need a payment at the partner merchant; a multiplier, a payment in its
    category (the extra earn is ``points_earned × (multiplier − 1)``, capped by ``max_points``).
    """
    reward = offer.reward
    if facts.amount_eur < reward.min_spend_eur:
        return None
    if reward.kind == "category_multiplier":
        if facts.category.casefold() != reward.category:
            return None
        extra = int(Decimal(facts.points_earned) * (reward.multiplier - 1))
        if reward.max_points is not None:
            extra = min(extra, reward.max_points)
        return extra if extra > 0 else None
    if facts.merchant.strip().casefold() != offer.merchant_key:
        return None
    return reward.points


def best_offer(candidates: Sequence[tuple[OfferSpec, float]]) -> tuple[OfferSpec, float] | None:
    """The candidate with the highest expected value; ties go to the smaller id (deterministic)."""
    best: tuple[OfferSpec, float] | None = None
    for offer, value in candidates:
        if best is None or value > best[1] or (value == best[1] and offer.id < best[0].id):
            best = (offer, value)
    return best


@dataclass(frozen=True)
class LogisticModel:
    """A fitted logistic regression on standardised features; scores in pure Python (8 numbers)."""

    version: int | None
    features: tuple[str, ...]
    intercept: float
    weights: tuple[float, ...]
    means: tuple[float, ...]
    scales: tuple[float, ...]
    metrics: Mapping[str, Any] = field(default_factory=dict)

    def score(self, values: Sequence[float]) -> float:
        z = self.intercept
        for x, w, m, s in zip(values, self.weights, self.means, self.scales, strict=True):
            z += w * (x - m) / s
        if z < -35:
            return math.exp(z)
        return 1.0 / (1.0 + math.exp(-z))


def prior_model(features: Sequence[str], base_rate: float = 0.1) -> LogisticModel:
    """Before any training: every member gets the same propensity (``model_version`` None)."""
    n = len(features)
    return LogisticModel(
        version=None,
        features=tuple(features),
        intercept=math.log(base_rate / (1 - base_rate)),
        weights=(0.0,) * n,
        means=(0.0,) * n,
        scales=(1.0,) * n,
    )
