"""What pure rules of every domain share (no I/O here either)."""

from __future__ import annotations


class FieldError(ValueError):
    """A value a rule refuses; ``field`` names the offending input or document path, so the
    service layer can turn it into a problem response that points at it."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field
