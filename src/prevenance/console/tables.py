"""Tables of the console (staff users)."""

from __future__ import annotations
