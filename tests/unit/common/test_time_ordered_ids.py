"""Ids are version 7 UUIDs: their time prefix orders them, so their unique indexes grow at one edge."""

from __future__ import annotations

import time
import uuid

from prevenance.common.ids import new_id, new_ids


def _parsed(identifier: str, prefix: str) -> uuid.UUID:
    head, _, tail = identifier.partition("_")
    assert head == prefix and len(tail) == 32 and tail == tail.lower()
    return uuid.UUID(hex=tail)


def test_an_id_is_a_version_7_uuid_holding_the_millisecond_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = _parsed(new_id("evt"), "evt")
    after = time.time_ns() // 1_000_000
    assert made.version == 7 and made.variant == uuid.RFC_4122
    assert before <= made.int >> 80 <= after


def test_ids_made_in_later_milliseconds_sort_after_earlier_ones() -> None:
    earlier = new_id("case")
    millis = int(earlier[5:17], 16)
    while time.time_ns() // 1_000_000 <= millis:  # the clock's next millisecond, not a sleep
        pass
    later = [new_id("case") for _ in range(50)]
    assert all(earlier < other for other in later)
    assert sorted([*later, earlier])[0] == earlier


def test_a_batch_of_ids_shares_its_millisecond_and_keeps_74_random_bits() -> None:
    batch = new_ids("evt", 20_000)
    assert len(set(batch)) == len(batch)
    parsed = [_parsed(identifier, "evt") for identifier in batch]
    assert all(p.version == 7 and p.variant == uuid.RFC_4122 for p in parsed)
    assert len({p.int >> 80 for p in parsed}) == 1
    # The random part varies in every one of its 74 bits across the batch (none stuck at 0 or 1).
    random_mask = (0x0FFF << 64) | 0x3FFF_FFFF_FFFF_FFFF
    ored, anded = 0, random_mask
    for p in parsed:
        ored |= p.int & random_mask
        anded &= p.int
    assert ored == random_mask and anded & random_mask == 0
    assert new_ids("evt", 0) == []
