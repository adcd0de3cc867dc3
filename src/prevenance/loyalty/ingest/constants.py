"""The columns of the files a load reads and writes."""

from __future__ import annotations

from typing import Literal

from prevenance.loyalty import earn_rows, earning

MEMBER_COLUMNS = ("ref", "name", "email", "language", "country", "product")
# Read when the file has them; a file without the column leaves the stored value as it is.
MEMBER_OPTIONAL_COLUMNS = ("city", "phone")
TRANSACTION_COLUMNS = ("id", "member_ref", "amount", "currency", "merchant", "category", "occurred_at")
REJECT_COLUMNS = ("line", "key", "status", "problem", "field", "reason")
DEFAULT_CHUNK_SIZE = 10_000
Method = Literal["batch", "rowwise"]


# Shared with the earn engine (its JSON text and the body fingerprint).
json_text = earn_rows.json_text
transaction_fingerprint = earning.transaction_fingerprint
