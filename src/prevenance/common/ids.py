"""Identifiers: opaque time-ordered ids and stable hashes of request bodies."""

from __future__ import annotations

import hashlib
import os
import secrets
import time
from dataclasses import asdict, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any

import orjson


def new_id(prefix: str) -> str:
    """An opaque identifier with a readable prefix (``evt_…``, ``case_…``): a version 7 UUID in hex.

    Its first 48 bits are the Unix time in milliseconds, the other 74 (version and variant aside)
    random (RFC 9562). Ids made in a later millisecond sort after earlier ones, so each table's
    unique index on them grows at its right edge, a page kept in cache, instead of touching a random
    page of an index that outgrows memory; a wall clock stepped back breaks the order, never the
    uniqueness. An id tells when it was made, to the millisecond, and never stands for a permission:
    survey links and sessions are signed, keys are ``new_secret``."""
    return f"{prefix}_{_uuid7_hex(time.time_ns() // 1_000_000, os.urandom(10))}"


def new_ids(prefix: str, count: int) -> list[str]:
    """``count`` values of ``new_id(prefix)``, from one read of the clock and of the random source
    (a batch's events): they share the millisecond and sort among themselves at random."""
    millis = time.time_ns() // 1_000_000
    raw = os.urandom(10 * count)
    return [f"{prefix}_{_uuid7_hex(millis, raw[start : start + 10])}" for start in range(0, 10 * count, 10)]


def _uuid7_hex(millis: int, random: bytes) -> str:
    """The 32 hex digits of a version 7 UUID: 48 bits of ``millis``, then the version (7), 12
    random bits, the variant (binary 10) and 62 random bits, taken from the 10 bytes ``random``."""
    rand_a = ((random[0] << 8) | random[1]) & 0x0FFF
    rand_b = int.from_bytes(random[2:], "big") & 0x3FFF_FFFF_FFFF_FFFF
    value = (millis & 0xFFFF_FFFF_FFFF) << 80 | 0x7 << 76 | rand_a << 64 | 0b10 << 62 | rand_b
    return f"{value:032x}"


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
    if moment is None:
        return None
    if moment.tzinfo is not UTC:
        moment = as_utc(moment)
    return moment.isoformat()[:-6] + "Z"  # "+00:00" off: a moment in UTC always ends with it
