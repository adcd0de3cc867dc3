"""Topic tagging of comments and suggestions: keyword rules FR/EN, configurable, no model."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from prevenance.voice import topics

EXPECTED_TOPICS = {
    "waiting_time",
    "staff_courtesy",
    "app_website",
    "card_delivery",
    "points_rewards",
    "fees",
    "travel",
    "concierge",
    "fraud_security",
}


def test_the_shipped_rules_cover_the_expected_topics_in_both_languages() -> None:
    rules = topics.load_rules()
    assert set(rules.topics) == EXPECTED_TOPICS
    for topic in EXPECTED_TOPICS:
        assert rules.labels[topic]["fr"] and rules.labels[topic]["en"]


@pytest.mark.parametrize(
    ("text", "language", "expected"),
    [
        (
            "Délai d'attente TROP LONG, mais conseillère très aimable",
            "fr",
            ["staff_courtesy", "waiting_time"],
        ),
        ("DELAI D'ATTENTE trop long", "fr", ["waiting_time"]),
        ("The app crashed and I waited on hold for ages", "en", ["app_website", "waiting_time"]),
        ("Ma nouvelle carte a été livrée en 24 h", "fr", ["card_delivery"]),
        ("Frais annuels trop chers pour ce que c'est", "fr", ["fees"]),
        ("Lovely lounge at the airport, booked by the concierge", "en", ["concierge", "travel"]),
        ("Mes points de fidélité ont disparu", "fr", ["points_rewards"]),
        ("Suspicious payment, I think it is fraud", "en", ["fraud_security"]),
        ("Rien à signaler, parfait", "fr", []),
        ("", "en", []),
    ],
)
def test_comments_are_tagged_by_keyword(text: str, language: str, expected: list[str]) -> None:
    assert topics.tag(text, language) == expected


def test_matching_respects_word_boundaries() -> None:
    assert topics.tag("The waitress was lovely", "en") == []  # not "wait"
    assert topics.tag("apparently fine", "en") == []  # not "app"
    assert topics.tag("I had to wait", "en") == ["waiting_time"]


def test_stems_match_inflections() -> None:
    assert topics.tag("Très bien remboursé", "fr") == ["fees"]
    assert topics.tag("Les délais sont longs", "fr") == ["waiting_time"]


def test_the_longest_keyword_wins_so_card_theft_is_not_a_flight() -> None:
    assert topics.tag("Vol de carte à Rome, opposition faite", "fr") == ["fraud_security"]
    assert topics.tag("Mon vol pour Rome était annulé", "fr") == ["travel"]


def test_an_unknown_language_uses_both_rule_sets() -> None:
    assert topics.tag("Attente trop longue, app crashed", "de") == ["app_website", "waiting_time"]


def test_rules_are_configurable_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        json.dumps(
            {
                "topics": {
                    "parking": {
                        "label": {"fr": "Parking", "en": "Parking"},
                        "fr": ["stationnement*"],
                        "en": ["car park"],
                    }
                }
            }
        ),
        encoding="utf-8",
    )
    rules = topics.load_rules(path)
    assert topics.tag("Pas de stationnements", "fr", rules) == ["parking"]
    assert topics.tag("The CAR   PARK was full", "en", rules) == ["parking"]
    assert topics.tag("attente", "fr", rules) == []


def test_count_by_month_counts_an_answer_once_per_topic() -> None:
    frame = pl.DataFrame(
        {
            "month": ["2026-07", "2026-07", "2026-07", "2026-08"],
            "language": ["fr", "en", "fr", "en"],
            "comment": ["Attente interminable", "Long wait, rude agent", None, "Great app"],
            "suggestion": ["Moins d'attente svp", None, "Baisser les frais", "Add travel insurance"],
        }
    )
    assert topics.count_by_month(frame) == [
        {"month": "2026-07", "topic": "fees", "count": 1},
        {"month": "2026-07", "topic": "staff_courtesy", "count": 1},
        {"month": "2026-07", "topic": "waiting_time", "count": 2},
        {"month": "2026-08", "topic": "app_website", "count": 1},
        {"month": "2026-08", "topic": "travel", "count": 1},
    ]


def test_count_by_month_needs_a_text_column() -> None:
    with pytest.raises(ValueError):
        topics.count_by_month(pl.DataFrame({"month": ["2026-07"]}))
