"""Identifiers: opaque random ids and stable hashes of request bodies."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from dataclasses import asdict, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any

import orjson


def new_id(prefix: str) -> str:
    """A random, sortable-enough identifier with a readable prefix (``evt_…``, ``key_…``)."""
    return f"{prefix}_{uuid.uuid4().hex}"


def new_secret(prefix: str = "pv") -> str:
    """A high-entropy secret (API keys): 256 bits, URL-safe."""
    return f"{prefix}_{secrets.token_urlsafe(32)}"


def fingerprint(payload: Any) -> str:
    """SHA-256 of the canonical JSON of a request body: equal bodies, equal fingerprints."""
    canonical = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS, default=str)
    return hashlib.sha256(canonical).hexdigest()


def as_utc(moment: datetime) -> datetime:
    """Timezone-aware UTC; a naive time on the wire is read as UTC, as everywhere in the API."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def fingerprint_of(record: Any) -> str:
    """Fingerprint of a request dataclass, its times normalised to UTC so that equal instants written
    with different offsets are the same request."""
    assert is_dataclass(record) and not isinstance(record, type)
    body = {spec.name: getattr(record, spec.name) for spec in fields(record)}
    if any(isinstance(value, _NESTED) or is_dataclass(value) for value in body.values()):
        body = asdict(record)  # nested values: converted (and copied) as ``asdict`` does
    for name, value in body.items():
        if isinstance(value, datetime):
            body[name] = as_utc(value).isoformat()
    return fingerprint(body)


_NESTED = (list, tuple, dict, set, frozenset)
"""Values ``asdict`` converts; a record without any (most requests) is read field by field, the same
dict without ``asdict``'s recursive deep copy."""


def iso_z(moment: datetime | None) -> str | None:
    """A moment in UTC as every answer writes it (``2026-01-31T09:00:00Z``), so a POST's raw answer
    and a GET of the same resource agree; None stays None."""
    return as_utc(moment).isoformat().replace("+00:00", "Z") if moment is not None else None
