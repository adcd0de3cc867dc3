"""Tables of the offers domain (filled in by the offers work)."""

from __future__ import annotations
