"""Errors of the rewards programme; each maps to one problem ``type``."""

from __future__ import annotations

from prevenance.common.problems import Conflict, InvalidInput, NotFound, PrevenanceError


class InsufficientPoints(Conflict):
    type_slug = "insufficient-points"
    title = "Not enough points"


class OutOfStock(Conflict):
    type_slug = "out-of-stock"
    title = "Not enough stock"


class NoCodesLeft(Conflict):
    type_slug = "no-codes-left"
    title = "No e-code left in the pool"


class HoldNotPending(Conflict):
    type_slug = "hold-not-pending"
    title = "The hold is no longer pending"


class UnknownTransaction(NotFound):
    type_slug = "unknown-transaction"
    title = "Unknown transaction"


class UnknownRedemption(NotFound):
    type_slug = "unknown-redemption"
    title = "Unknown redemption"


class UnknownPartner(NotFound):
    type_slug = "unknown-partner"
    title = "Unknown partner"


class UnknownPartnerInBody(InvalidInput):
    type_slug = "unknown-partner"
    title = "Unknown partner"


class UnknownSku(InvalidInput):
    type_slug = "unknown-sku"
    title = "Unknown catalogue item"


class RefundTooLarge(InvalidInput):
    type_slug = "refund-exceeds-amount"
    title = "Refunds exceed the transaction amount"


class InvalidReferral(InvalidInput):
    type_slug = "invalid-referral"
    title = "Referral not allowed"


class InvalidReferralCode(InvalidReferral):
    """A referral code refused, for whatever reason: the answer says no more (see the service)."""

    type_slug = "invalid-referral-code"
    title = "Referral code not accepted"


class BalanceLimitExceeded(InvalidInput):
    """A posting would take an account past the ledger's bound (``ledger_bounds``): refused whole."""

    type_slug = "balance-limit"
    title = "Balance limit reached"


class InvalidProgramme(InvalidInput):
    type_slug = "invalid-programme"
    title = "Invalid programme document"


class LedgerBroken(PrevenanceError):
    """The audit found a broken invariant: never expected, always loud."""

    type_slug = "ledger-invariant-broken"
    title = "Ledger invariant broken"
    status = 500
