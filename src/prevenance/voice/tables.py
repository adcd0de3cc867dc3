"""Tables of the voice domain (filled in by the voice work)."""

from __future__ import annotations
