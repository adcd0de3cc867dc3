"""Errors of the offers domain; each maps to one problem ``type``."""

from __future__ import annotations

from prevenance.common.problems import Conflict, NotFound


class UnknownOffer(NotFound):
    type_slug = "unknown-offer"
    title = "Unknown offer"


class OfferEnded(Conflict):
    type_slug = "offer-ended"
    title = "The offer has ended"


class OfferNotAvailable(Conflict):
    """Activation of an offer that was not made to this member, or no longer can be used."""

    type_slug = "offer-not-available"
    title = "This offer is not available to this member"


class BudgetBelowSpent(Conflict):
    type_slug = "offer-budget-below-spent"
    title = "The budget is below what the offer already spent"


class NoTrainingData(Conflict):
    type_slug = "no-training-data"
    title = "Not enough history to train the propensity model"


class HoldoutStillRunning(Conflict):
    """A new programme holdout period may not start before the current one has run its minimum."""

    type_slug = "holdout-still-running"
    title = "The programme holdout period is still running"
