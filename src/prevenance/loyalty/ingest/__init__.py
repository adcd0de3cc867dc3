"""Bulk loads: members and settlement files of card transactions (CSV or Parquet).

A file is read in chunks and each chunk is one unit of work: one database transaction that
commits its rows, their idempotency keys and their outbox events together. A run killed at any
point has committed a prefix of whole chunks and nothing else; running the file again replays
that prefix from its idempotency keys (writing nothing) and posts the rest, in file order, so the
ledger ends exactly as after one clean run.

Transactions obey the rules of ``POST /v1/transactions`` (``service.record_transaction``) exactly:
the same body validation, the same points, postings, idempotency keys (scope ``transaction``, the
body's fingerprint, the stored answer), the same outbox events and referral bonuses, and the same
transaction hooks (offers) unless ``hooks`` is false (``--no-hooks``, for back-filling history).
Two paths do that work:

* ``rowwise``: the service function row by row, each row inside a SAVEPOINT so a refused row does
  not abort its chunk. The reference behaviour; slow.
* ``batch`` (the default): the chunk goes through the earn engine every door uses
  (``loyalty.earning.apply_earns``): one query per chunk for its members, idempotency keys and
  pending referrals, the rules in Python, the rows written with ``executemany`` (``COPY`` on
  PostgreSQL), balances computed in file order from the locked account rows. A test ingests the
  same file both ways and compares the ledgers row for row.

A refused row is written to the rejects file with its line number and why; the rest land.
"""

from prevenance.loyalty.ingest.constants import (
    DEFAULT_CHUNK_SIZE,
    MEMBER_COLUMNS,
    MEMBER_OPTIONAL_COLUMNS,
    REJECT_COLUMNS,
    TRANSACTION_COLUMNS,
    Method,
    json_text,
    transaction_fingerprint,
)
from prevenance.loyalty.ingest.files import (
    ChunkStats,
    FileError,
    LoadStopped,
    Record,
    Reject,
    Report,
    count_records,
    default_rejects_path,
    file_format,
    open_parquet,
    read_chunks,
    verify_file,
)
from prevenance.loyalty.ingest.members import ingest_members
from prevenance.loyalty.ingest.runner import tune_for_bulk
from prevenance.loyalty.ingest.transactions import ingest_transactions, parse_transaction

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MEMBER_COLUMNS",
    "MEMBER_OPTIONAL_COLUMNS",
    "REJECT_COLUMNS",
    "TRANSACTION_COLUMNS",
    "ChunkStats",
    "FileError",
    "LoadStopped",
    "Method",
    "Record",
    "Reject",
    "Report",
    "count_records",
    "default_rejects_path",
    "file_format",
    "ingest_members",
    "ingest_transactions",
    "json_text",
    "open_parquet",
    "parse_transaction",
    "read_chunks",
    "transaction_fingerprint",
    "tune_for_bulk",
    "verify_file",
]
