"""``fingerprint_of`` reads a flat request field by field: the same fingerprint as from ``asdict``
(stored idempotency records keep matching their replays across the change), nested ones too."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from prevenance.common.ids import as_utc, fingerprint, fingerprint_of


@dataclass
class Line:
    sku: str
    at: datetime


@dataclass
class Flat:
    id: str
    amount: Decimal
    at: datetime
    note: str | None = None


@dataclass
class Nested:
    id: str
    lines: list[Line] = field(default_factory=list)
    tags: dict[str, int] = field(default_factory=dict)
    at: datetime = datetime(2026, 1, 1, tzinfo=UTC)


def _reference(record: object) -> str:
    """The definition: ``asdict``, top-level times in UTC, canonical JSON."""
    body = asdict(record)  # type: ignore[call-overload]
    for name, value in body.items():
        if isinstance(value, datetime):
            body[name] = as_utc(value).isoformat()
    return fingerprint(body)


def test_a_flat_request_has_the_fingerprint_asdict_gives() -> None:
    paris = timezone(timedelta(hours=1))
    record = Flat("T1", Decimal("12.50"), datetime(2026, 3, 1, 10, tzinfo=paris))
    assert fingerprint_of(record) == _reference(record)
    same_instant = Flat("T1", Decimal("12.50"), datetime(2026, 3, 1, 9, tzinfo=UTC))
    assert fingerprint_of(same_instant) == fingerprint_of(record)
    assert fingerprint_of(Flat("T1", Decimal("12.51"), record.at)) != fingerprint_of(record)


def test_a_nested_request_has_the_fingerprint_asdict_gives() -> None:
    record = Nested("N1", [Line("a", datetime(2026, 1, 2, tzinfo=UTC))], {"x": 1})
    assert fingerprint_of(record) == _reference(record)
    assert fingerprint_of(Nested("N1", [Line("b", record.lines[0].at)], {"x": 1})) != fingerprint_of(record)
