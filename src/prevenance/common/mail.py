"""What every mail relay shares: the SMTP connection from ``PREVENANCE_SMTP_URL`` and the stable
key that names one message on every (re)send, so a crash between send and commit never makes a
second, different message (the receiving side can deduplicate on the Message-ID)."""

from __future__ import annotations

import hashlib
import smtplib
from urllib.parse import urlsplit


def connect(smtp_url: str) -> smtplib.SMTP:
    """An SMTP connection to ``smtp://host:port`` (port 25 when absent)."""
    parts = urlsplit(smtp_url)
    if parts.scheme != "smtp" or not parts.hostname:
        raise ValueError(f"PREVENANCE_SMTP_URL must look like smtp://host:port, not {smtp_url!r}")
    return smtplib.SMTP(parts.hostname, parts.port or 25, timeout=30)


def stable_key(prefix: str, source_id: str) -> str:
    """``<prefix>_<32 hex>``: the same for the same source row, whatever process sends it."""
    return f"{prefix}_" + hashlib.sha256(source_id.encode()).hexdigest()[:32]
