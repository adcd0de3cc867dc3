"""Use cases of the offers domain: the catalogue, the decision on every transaction (with the
holdout), activation, the reward exactly once, and training the propensity model.

Never commits: the request, CLI command, consumer or earn transaction around it does. Offers may
not import the desk (contact preferences, communications log, benefits): the composition layer
(``wiring.install_offer_hook``) passes those in as callables to ``make_transaction_hook``.

The use cases live in ``cache`` (live offers and the current model, per engine), ``catalogue``,
``decision`` (and the earn hook), ``member_offers`` and ``training``; this module is the surface the
API, the console, the views and the wiring call.
"""

from __future__ import annotations

from prevenance.offers.cache import (
    ACTIVE_TTL_SECONDS,
    MODEL_TTL_SECONDS,
    current_model,
    invalidate_caches,
    live_offers,
    spec_of,
)
from prevenance.offers.catalogue import (
    get_offer,
    get_offer_row,
    list_offers,
    offer_body,
    put_offer,
    set_status,
)
from prevenance.offers.decision import (
    HOOK_NAME,
    MayContact,
    OfferNote,
    RecordNote,
    decide,
    install,
    make_transaction_hook,
)
from prevenance.offers.holdout import (
    HoldoutPeriod,
    programme_holdout_in_force,
    programme_holdout_periods,
    start_programme_holdout,
)
from prevenance.offers.member_offers import (
    activate,
    list_active_member_offers,
    member_offers,
)
from prevenance.offers.training import (
    list_models,
    model_body,
    train_model,
)

__all__ = [
    "ACTIVE_TTL_SECONDS",
    "HOOK_NAME",
    "MODEL_TTL_SECONDS",
    "HoldoutPeriod",
    "MayContact",
    "OfferNote",
    "RecordNote",
    "activate",
    "current_model",
    "decide",
    "get_offer",
    "get_offer_row",
    "install",
    "invalidate_caches",
    "list_active_member_offers",
    "list_models",
    "list_offers",
    "live_offers",
    "make_transaction_hook",
    "member_offers",
    "model_body",
    "offer_body",
    "programme_holdout_in_force",
    "programme_holdout_periods",
    "put_offer",
    "set_status",
    "spec_of",
    "start_programme_holdout",
    "train_model",
]
