"""The programme in force: stored as versioned JSON documents, parsed once per version."""

from __future__ import annotations

import json
import threading
from datetime import datetime
from importlib import resources
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from prevenance.common.ids import fingerprint
from prevenance.common.problems import InvalidInput
from prevenance.customers import service as customers
from prevenance.db import forget, transaction_memo
from prevenance.loyalty import goodwill_rules, ledger
from prevenance.loyalty.errors import InvalidProgramme
from prevenance.loyalty.rules import Programme, ProgrammeError, parse_programme
from prevenance.loyalty.tables import MilesExport, ProgrammeVersion

_parsed: dict[str, Programme] = {}
_lock = threading.Lock()
_VERSIONS: Table = ProgrammeVersion.__table__  # type: ignore[assignment]
# Built once: ``current`` runs on every earn, and a Core statement skips the ORM's per-call work.
_MEMO_KEY = "programme"
_CURRENT_FINGERPRINT = select(_VERSIONS.c.fingerprint).order_by(_VERSIONS.c.id.desc()).limit(1)


def default_document() -> dict[str, Any]:
    """The programme file shipped with the package."""
    text = resources.files("prevenance.loyalty").joinpath("default_programme.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def current_document(session: Session) -> tuple[int, dict[str, Any], str] | None:
    """The newest programme version: id, document and fingerprint."""
    row = session.execute(
        select(ProgrammeVersion.id, ProgrammeVersion.document, ProgrammeVersion.fingerprint)
        .order_by(ProgrammeVersion.id.desc())
        .limit(1)
    ).first()
    return (row[0], row[1], row[2]) if row else None


def current(session: Session) -> Programme:
    """The programme in force (parsed once per version, then served from memory; read once per
    transaction, so a batch of transactions earns under one version)."""
    return transaction_memo(session, _MEMO_KEY, lambda: _current(session))


def _current(session: Session) -> Programme:
    return _programme_of(session, session.execute(_CURRENT_FINGERPRINT).scalar_one_or_none())


def current_with_fingerprint(session: Session, newest: str | None) -> Programme:
    """``current`` when the caller has read the newest version's fingerprint itself in this
    transaction (the earn engine reads it in the statement that reads its idempotency keys)."""
    return transaction_memo(session, _MEMO_KEY, lambda: _programme_of(session, newest))


def _programme_of(session: Session, newest: str | None) -> Programme:
    if newest is None:
        raise InvalidProgramme("no programme installed: run 'prevenance db upgrade'")
    cached = _parsed.get(newest)
    if cached is not None:
        return cached
    found = current_document(session)
    assert found is not None
    parsed = parse_programme(found[1], strict=False)
    with _lock:
        _parsed[found[2]] = parsed
    return parsed


def _length(column: Any) -> int:
    length: int = column.type.length
    return length


# Where a product's texts are written: the card products (``customers.sync_products``) and the miles
# export's partner. Read from the columns, so a longer one is a 422 naming it, not PostgreSQL
# refusing the whole version (a 500) or, for the partner, every later miles export.
_PRODUCT_LIMITS = (
    ("name", customers.PRODUCT_TEXT_LENGTHS["name"]),
    ("tier", customers.PRODUCT_TEXT_LENGTHS["tier"]),
    ("miles_partner", _length(MilesExport.__table__.c.partner_code)),
)
_PRODUCT_CODE_LIMIT = customers.PRODUCT_TEXT_LENGTHS["code"]


def _check_lengths(parsed: Programme) -> None:
    for code, rule in parsed.products.items():
        path = f"products.{code}"
        if len(code) > _PRODUCT_CODE_LIMIT:
            raise InvalidProgramme(f"a product code has at most {_PRODUCT_CODE_LIMIT} characters", field=path)
        for name, limit in _PRODUCT_LIMITS:
            value = getattr(rule, name)
            if value is not None and len(value) > limit:
                raise InvalidProgramme(
                    f"{path}.{name} has at most {limit} characters", field=f"{path}.{name}"
                )


def install(session: Session, *, document: dict[str, Any], now: datetime, by: str) -> tuple[int, bool]:
    """Validate and store a programme version (a no-op when identical to the one in force).

    Returns the version id and whether a new version was written. Card products named by the
    programme are created or updated in the customer record.
    """
    try:
        parsed = parse_programme(document)
    except ProgrammeError as error:
        raise InvalidProgramme(str(error), field=error.field or None)
    _check_lengths(parsed)
    try:
        goodwill_rules.parse(document.get("goodwill"))
    except goodwill_rules.GoodwillError as error:
        raise InvalidProgramme(str(error), field=error.field)
    digest = fingerprint(document)
    latest = current_document(session)
    if latest is not None and latest[2] == digest:
        return latest[0], False
    customers.sync_products(
        session, products=[(p.code, p.name, p.tier, p.premium) for p in parsed.products.values()]
    )
    ledger.ensure_system_accounts(session)
    version = ProgrammeVersion(document=document, fingerprint=digest, created_at=now, created_by=by)
    session.add(version)
    session.flush()
    forget(session, _MEMO_KEY)
    return version.id, True


def set_fx_rate(
    session: Session, *, currency: str, rate: str, now: datetime, by: str
) -> tuple[int, dict[str, Any]]:
    """Set the euro rate of a currency: a new programme version (earlier transactions keep the rate
    they were converted at). Returns the version and the document in force."""
    if currency == "EUR":
        raise InvalidInput("EUR is the base currency; its rate is always 1", field="currency")
    found = current_document(session)
    if found is None:
        raise InvalidInput("no programme installed")
    document = {**found[1], "fx_rates": {**found[1].get("fx_rates", {}), currency: rate}}
    try:
        version, _ = install(session, document=document, now=now, by=by)
    except InvalidProgramme as error:
        # The only value this request changed is the rate: name the field the caller sent.
        field = "rate" if error.field == f"fx_rates.{currency}" else error.field
        raise InvalidProgramme(error.detail, field=field)
    return version, document


def install_default_if_missing(session: Session, *, now: datetime) -> bool:
    """Load the shipped programme file when no programme is installed yet."""
    if current_document(session) is not None:
        return False
    install(session, document=default_document(), now=now, by="db upgrade")
    return True
