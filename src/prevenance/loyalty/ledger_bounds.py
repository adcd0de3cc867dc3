"""The ledger's bounds: how far any balance and any one posting may go. Pure, no I/O.

Balances and amounts are ``BIGINT`` (64-bit) columns, and nothing in SQL stopped
``balance = balance + :amount`` from passing 2^63 - 1: PostgreSQL then refused the statement (an
answer 500, a batch's retry path) and SQLite silently turned the sum into a REAL, a float balance
no audit trusted. So every balance the ledger keeps stays within ±``LEDGER_BALANCE_LIMIT`` and every
posting moves at most ``POSTING_AMOUNT_LIMIT``: far below 2^63, so no sum of a balance and a posting
can overflow, and below 2^53, so a balance read by a JSON client as a double (JavaScript) is exact.
No real member comes near: the largest programmes count balances in the millions.
"""

from __future__ import annotations

from prevenance.loyalty.errors import BalanceLimitExceeded

LEDGER_BALANCE_LIMIT = 10**15
"""No account's balance may leave [-limit, +limit] (``accounts.ck_accounts_balance_within_limit``)."""
POSTING_AMOUNT_LIMIT = LEDGER_BALANCE_LIMIT
"""No posting moves more: a balance at one bound plus a posting stays far inside a 64-bit integer."""


def within_limit(balance: int) -> bool:
    """True when a balance is one the ledger may keep."""
    return -LEDGER_BALANCE_LIMIT <= balance <= LEDGER_BALANCE_LIMIT


def refusal(amount: int, unit: str, *, field: str | None = "amount") -> BalanceLimitExceeded:
    """The answer to a posting the bounds refuse (a 422 problem naming ``field``)."""
    return BalanceLimitExceeded(
        f"moving {amount:,} {unit} would take a balance beyond the ledger's limit of "
        f"±{LEDGER_BALANCE_LIMIT:,} {unit}, or is more than one posting may move",
        field=field,
        limit=LEDGER_BALANCE_LIMIT,
    )


def check_amount(amount: int, unit: str, *, field: str | None = "amount") -> None:
    """Refuse a posting larger than one posting may move."""
    if amount > POSTING_AMOUNT_LIMIT:
        raise refusal(amount, unit, field=field)
