"""Identifiers: opaque random ids and stable hashes of request bodies."""

from __future__ import annotations

import hashlib
import secrets
import uuid
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
