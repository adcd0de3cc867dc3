"""Training the propensity model on the history, storing it as the next version, and listing the
stored versions."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from prevenance.offers import propensity as modelling
from prevenance.offers import repository as repo
from prevenance.offers.cache import invalidate_caches
from prevenance.offers.decision import training_benefits
from prevenance.offers.errors import (
    NoTrainingData,
)
from prevenance.offers.tables import OfferModel


def train_model(
    session: Session, *, now: datetime, progress: modelling.Progress | None = None, l2: float = 1.0
) -> dict[str, Any]:
    """Build the training set from the history, fit, store the next model version and use it."""
    targets = [
        modelling.Target(row.partner_merchant.strip().casefold(), row.partner_category)
        for row in repo.offers(session)
    ]
    try:
        data = modelling.build_training_set(
            session, targets=targets, now=now, progress=progress, benefit_events=training_benefits[0]
        )
        fitted, metrics = modelling.train(data, l2=l2)
    except ValueError as error:
        raise NoTrainingData(str(error))
    if progress:
        progress("fit", 1, 1)
    version = repo.next_model_version(session)
    row = OfferModel(
        version=version,
        created_at=now,
        features=list(fitted.features),
        coefficients={
            "intercept": fitted.intercept,
            "weights": list(fitted.weights),
            "means": list(fitted.means),
            "scales": list(fitted.scales),
        },
        metrics=metrics,
    )
    session.add(row)
    session.flush()
    invalidate_caches(session)
    return model_body(row)


def model_body(row: OfferModel) -> dict[str, Any]:
    return {
        "version": row.version,
        "created_at": row.created_at.isoformat(),
        "features": row.features,
        "coefficients": row.coefficients,
        "metrics": row.metrics,
    }


def list_models(session: Session) -> list[dict[str, Any]]:
    """Every stored model version, newest first."""
    return [model_body(row) for row in repo.models(session)]
