"""Which language the member's offers are shown in, from ``Accept-Language``."""

from __future__ import annotations

import pytest

from prevenance.offers.api import preferred_language


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, None),
        ("", None),
        ("en-GB,en;q=0.9", "en"),
        ("fr-FR,fr;q=0.9,en;q=0.8", "fr"),
        ("de-DE,en;q=0.5,fr;q=0.7", "fr"),
        ("de, it", None),
        ("en;q=0.1, fr;q=bad", "en"),
    ],
)
def test_the_preferred_supported_language_wins(header: str | None, expected: str | None) -> None:
    assert preferred_language(header) == expected
