"""In-process caches of the live offers and the current model, per engine: the decision runs on
every earning payment and must not query when nothing changed."""

from __future__ import annotations

import threading
import time
import weakref
from decimal import Decimal
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session

from prevenance.offers import features as feats
from prevenance.offers import repository as repo
from prevenance.offers import rules
from prevenance.offers.tables import Offer, OfferModel

ACTIVE_TTL_SECONDS = 5.0
MODEL_TTL_SECONDS = 30.0


class _PerEngine:
    """A value per engine, kept ``ttl`` seconds: the hot path must not query when nothing changed.

    Keyed weakly by the engine object, so a disposed test database never lends its offers to the
    next one; writers in this process invalidate at once, other processes see changes within ``ttl``.
    """

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._lock = threading.Lock()
        self._values: weakref.WeakKeyDictionary[Engine, tuple[float, Any]] = weakref.WeakKeyDictionary()

    def get(self, engine: Engine) -> tuple[bool, Any]:
        with self._lock:
            hit = self._values.get(engine)
        if hit is not None and hit[0] > time.monotonic():
            return True, hit[1]
        return False, None

    def put(self, engine: Engine, value: Any) -> None:
        with self._lock:
            self._values[engine] = (time.monotonic() + self.ttl, value)

    def clear(self, engine: Engine | None = None) -> None:
        with self._lock:
            if engine is None:
                self._values.clear()
            else:
                self._values.pop(engine, None)


_ACTIVE = _PerEngine(ACTIVE_TTL_SECONDS)
_MODEL = _PerEngine(MODEL_TTL_SECONDS)
HOLDOUT = _PerEngine(ACTIVE_TTL_SECONDS)  # the programme holdout in force (offers.holdout)


def engine_of(session: Session) -> Engine:
    bind = session.get_bind()
    return bind if isinstance(bind, Engine) else bind.engine


def _clear(engine: Engine | None) -> None:
    _ACTIVE.clear(engine)
    _MODEL.clear(engine)
    HOLDOUT.clear(engine)


def invalidate_caches(session: Session | None = None) -> None:
    """Forget the cached active offers, model and holdout (of one session's engine, or all).

    A writer calls this inside its transaction, so it is done again when that transaction commits:
    a reader in between (a payment's decision) reads the state before the write and would cache it
    for a whole ``ttl`` — an ended offer still paying, a new holdout period not yet keeping its
    members from offers.
    """
    engine = engine_of(session) if session is not None else None
    _clear(engine)
    if session is not None:
        event.listen(session, "after_commit", lambda _: _clear(engine), once=True)


def spec_of(row: Offer) -> rules.OfferSpec:
    """An offer row parsed for the decision."""
    return rules.OfferSpec(
        id=row.id,
        partner_merchant=row.partner_merchant,
        partner_category=row.partner_category,
        reward=rules.parse_reward(row.reward_kind, row.reward),
        eligibility=rules.parse_eligibility(row.eligibility),
        cap_per_member=row.cap_per_member,
        budget_points=row.budget_points,
        unit_cost_eur=Decimal(row.unit_cost_eur),
        margin_rate=Decimal(row.margin_rate),
        expected_spend_eur=Decimal(row.expected_spend_eur),
        holdout_share=Decimal(row.holdout_share),
        decision_days=row.decision_days,
        valid_from=row.valid_from,
        valid_until=row.valid_until,
        status=row.status,
        texts={
            "title_fr": row.title_fr,
            "title_en": row.title_en,
            "text_fr": row.text_fr,
            "text_en": row.text_en,
        },
    )


def live_offers(session: Session) -> list[rules.OfferSpec]:
    """The active and paused offers, from the in-process cache (one query per ``ACTIVE_TTL_SECONDS``
    at most): paused ones still pay the activations made before the pause."""
    engine = engine_of(session)
    found, value = _ACTIVE.get(engine)
    if found:
        return list(value)
    specs = [spec_of(row) for row in repo.live_offers(session)]
    _ACTIVE.put(engine, tuple(specs))
    return specs


def current_model(session: Session) -> rules.LogisticModel:
    """The newest trained model (cached), or the prior when none was trained yet."""
    engine = engine_of(session)
    found, value = _MODEL.get(engine)
    if found:
        model: rules.LogisticModel = value
        return model
    row = repo.latest_model(session)
    loaded = _model_of(row) if row is not None else rules.prior_model(feats.FEATURES)
    _MODEL.put(engine, loaded)
    return loaded


def _model_of(row: OfferModel) -> rules.LogisticModel:
    c = row.coefficients
    return rules.LogisticModel(
        version=row.version,
        features=tuple(row.features),
        intercept=float(c["intercept"]),
        weights=tuple(float(w) for w in c["weights"]),
        means=tuple(float(m) for m in c["means"]),
        scales=tuple(float(s) for s in c["scales"]),
        metrics=row.metrics,
    )
