"""The rewards programme's public surface: what the API, the CLI, the views and the domains above
loyalty (offers, through ``prevenance.wiring``) call. Each use case lives in its module —
``transactions`` (earn and refund one payment), ``earning`` (the same earns in batches),
``balances``, ``catalogue`` (items, partners, e-codes), ``redemptions``, ``referrals``,
``miles_export`` (miles owed to airlines, point liability) and ``hooks`` (what higher domains run on
each earn) — and runs inside the caller's unit of work: none commits, each write claims its
idempotency key first (see ``common.idempotency``)."""

from __future__ import annotations

from prevenance.loyalty.balances import get_balance, list_latest_movements, list_movements
from prevenance.loyalty.catalogue import (
    find_catalogue_item,
    list_catalogue,
    list_partners,
    load_ecodes,
    put_catalogue_item,
    put_partner,
)
from prevenance.loyalty.expiry import expire, send_pending_warnings
from prevenance.loyalty.hooks import (
    OFFER_REWARD,
    EarnedTransaction,
    TransactionHook,
    award_bonus,
    register_transaction_hook,
    transaction_hooks,
    unregister_transaction_hook,
)
from prevenance.loyalty.miles_export import export_miles, list_member_ids_at_merchant, point_liability
from prevenance.loyalty.redemptions import (
    get_redemption,
    list_member_redemption_states,
    redeem,
    release_expired_holds,
    resolve_hold,
)
from prevenance.loyalty.referrals import (
    create_referral,
    get_referral_code,
    list_member_referrals,
    list_referrals,
    redeem_referral_code,
)
from prevenance.loyalty.referrals import monthly_report as referral_report
from prevenance.loyalty.rules import MAX_AMOUNT, check_currency, parse_amount_field, product_rule
from prevenance.loyalty.transactions import TransactionInput, record_transaction, refund_transaction

__all__ = [
    "MAX_AMOUNT",
    "OFFER_REWARD",
    "EarnedTransaction",
    "TransactionHook",
    "TransactionInput",
    "award_bonus",
    "check_currency",
    "create_referral",
    "expire",
    "export_miles",
    "find_catalogue_item",
    "get_balance",
    "get_redemption",
    "get_referral_code",
    "list_catalogue",
    "list_latest_movements",
    "list_member_ids_at_merchant",
    "list_member_redemption_states",
    "list_member_referrals",
    "list_movements",
    "list_partners",
    "list_referrals",
    "load_ecodes",
    "parse_amount_field",
    "point_liability",
    "product_rule",
    "put_catalogue_item",
    "put_partner",
    "record_transaction",
    "redeem",
    "redeem_referral_code",
    "referral_report",
    "refund_transaction",
    "register_transaction_hook",
    "release_expired_holds",
    "resolve_hold",
    "send_pending_warnings",
    "transaction_hooks",
    "unregister_transaction_hook",
]
