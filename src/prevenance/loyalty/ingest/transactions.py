"""Loading a settlement file: each chunk through the earn engine every door uses."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from prevenance.common.clock import Clock, SystemClock
from prevenance.common.problems import PrevenanceError
from prevenance.loyalty import earn_rows, earning, service
from prevenance.loyalty.ingest.constants import (
    DEFAULT_CHUNK_SIZE,
    TRANSACTION_COLUMNS,
    Method,
    transaction_fingerprint,
)
from prevenance.loyalty.ingest.files import (
    ChunkStats,
    Record,
    Reject,
    Report,
    nul_reject,
    problem_reject,
    text_of,
    validation_reject,
)
from prevenance.loyalty.ingest.runner import run_file, with_retries
from prevenance.loyalty.schemas import TransactionCreate


@dataclass(slots=True)
class _TxRow:
    line: int
    key: str
    tx: service.TransactionInput | None
    fingerprint: str
    reject: Reject | None


def parse_transaction(record: Record) -> _TxRow:
    """Validate a record as the API validates the body of ``POST /v1/transactions``."""
    line, values, problem = record
    if values is None:
        return _TxRow(line, "", None, "", Reject(line, "", 422, "invalid-input", None, problem or ""))
    key = text_of(values.get("id"))
    # A CSV row is text only: one search of its joined fields proves it free of NUL characters
    # (a Parquet row may hold other values: ``join`` refuses them, and each field is searched).
    try:
        clean = "\x00" not in "".join(values.values())
    except TypeError:
        clean = False
    if not clean:
        nul = nul_reject(values, line, key)
        if nul is not None:
            return _TxRow(line, key, None, "", nul)
    try:
        body = TransactionCreate.model_validate(values)
    except ValidationError as error:
        return _TxRow(line, key, None, "", validation_reject(error, line, key))
    tx = service.TransactionInput(
        id=body.id,
        member_ref=body.member_ref,
        amount=body.amount,
        currency=body.currency,
        merchant=body.merchant,
        category=body.category,
        occurred_at=body.occurred_at,
    )
    return _TxRow(line, key, tx, transaction_fingerprint(tx), None)


def _apply_transactions_rowwise(
    session: Session, rows: list[_TxRow], now: datetime
) -> tuple[dict[str, int], list[Reject]]:
    """The reference path: ``service.record_transaction`` per row, each inside a SAVEPOINT."""
    rejects: list[Reject] = []
    posted = replayed = 0
    for row in rows:
        if row.reject is not None:
            rejects.append(row.reject)
            continue
        assert row.tx is not None
        try:
            with session.begin_nested():
                outcome = service.record_transaction(session, tx=row.tx, now=now)
        except PrevenanceError as error:
            rejects.append(problem_reject(error, row.line, row.key))
            continue
        if outcome.replayed:
            replayed += 1
        else:
            posted += 1
    return {"posted": posted, "replayed": replayed}, rejects


def _apply_transactions_batch(
    session: Session,
    rows: list[_TxRow],
    now: datetime,
    *,
    hooks: bool = True,
    refused: dict[int, PrevenanceError] | None = None,
) -> tuple[dict[str, int], list[Reject]]:
    """The chunk through the earn engine (``earning.apply_earns``): the rows of
    ``service.record_transaction``, written in bulk. ``refused`` holds the rows a hook refused in
    an earlier attempt (answered with that refusal, left out of the batch)."""
    refused = refused or {}
    rejects: list[Reject] = []
    requests: list[earning.EarnRequest] = []
    owners: list[int] = []
    for position, row in enumerate(rows):
        if row.reject is not None:
            rejects.append(row.reject)
        elif position in refused:
            rejects.append(problem_reject(refused[position], row.line, row.key))
        else:
            assert row.tx is not None
            requests.append(earning.EarnRequest(row.tx, row.fingerprint))
            owners.append(position)
    try:
        results = earning.apply_earns(session, requests, now=now, hooks=hooks)
    except earning.EarnRefused as refusal:
        raise earning.EarnRefused(owners[refusal.index], refusal.error) from refusal
    posted = replayed = 0
    for position, result in zip(owners, results, strict=True):
        if isinstance(result, PrevenanceError):
            row = rows[position]
            rejects.append(problem_reject(result, row.line, row.key))
        elif result.replayed:
            replayed += 1
        else:
            posted += 1
    return {"posted": posted, "replayed": replayed}, rejects


def ingest_transactions(
    engine: Engine,
    path: Path,
    *,
    chunk_size: int = DEFAULT_CHUNK_SIZE,
    rejects_path: Path | None = None,
    clock: Clock | None = None,
    method: Method = "batch",
    on_chunk: Callable[[ChunkStats], None] | None = None,
    hooks: bool = True,
) -> Report:
    """Earn points for every transaction of a settlement file, exactly as the API would: the same
    rows and, unless ``hooks`` is false (back-filling history), the same transaction hooks (offers)."""
    clock = clock or SystemClock()

    def apply(records: list[Record]) -> ChunkStats:
        started = time.perf_counter()
        parsed = [parse_transaction(r) for r in records]
        refused: dict[int, PrevenanceError] = {}
        retries = 0
        while True:
            try:
                if method == "batch":
                    (counts, rejects), tried = with_retries(
                        engine,
                        lambda s: _apply_transactions_batch(
                            s, parsed, clock.now(), hooks=hooks, refused=refused
                        ),
                    )
                else:
                    (counts, rejects), tried = with_retries(
                        engine, lambda s: _apply_transactions_rowwise(s, parsed, clock.now())
                    )
            except earning.EarnRefused as refusal:  # run the chunk again without that row
                refused[refusal.index] = refusal.error
                retries += 1
                continue
            retries += tried
            break
        rejects.sort(key=lambda r: r.line)
        return ChunkStats(len(records), time.perf_counter() - started, counts, rejects, retries)

    return run_file(
        "transactions",
        path,
        columns=TRANSACTION_COLUMNS,
        chunk_size=chunk_size,
        rejects_path=rejects_path,
        apply=apply,
        on_chunk=on_chunk,
        engine=engine,
        tables=(
            earn_rows.CARD_TRANSACTIONS,
            earn_rows.POSTINGS,
            earn_rows.ACCOUNTS,
            earn_rows.KEYS,
            earn_rows.EVENTS,
        ),
    )
