"""Comments and suggestions tagged by topic with keyword rules (FR/EN), configurable in ``topics.json``.

No downloaded model: a supervisor can read, and change, why a comment was tagged. Matching ignores
case and accents, respects word boundaries, accepts stems (``delai*``) and phrases; when two keywords
overlap the longest wins, so "vol de carte" (card theft) is fraud, not a flight.
"""

from __future__ import annotations

import json
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

import polars as pl

LANGUAGES = ("fr", "en")
TEXT_COLUMNS = ("text", "comment", "suggestion")


def normalise(text: str) -> str:
    """Lower case without accents, apostrophes unified, so "Délai" and "delai" match the same rule."""
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.replace("\u2019", "'").replace("\u02bc", "'").replace("œ", "oe").replace("æ", "ae")


def _pattern(keyword: str) -> str:
    """A keyword as a regex: words separated by any whitespace, a trailing * for a stem, a word boundary
    after it (the one before it is checked once for all keywords, see ``compile_rules``)."""
    word = normalise(keyword.strip())
    stem = word.endswith("*")
    word = word.rstrip("*")
    body = r"\s+".join(re.escape(part) for part in word.split())
    return body + (r"\w*" if stem else "") + r"(?!\w)"


@dataclass(frozen=True)
class Rules:
    """Compiled keyword rules: one regex per language, a named group per keyword."""

    topics: tuple[str, ...]
    labels: dict[str, dict[str, str]]
    regexes: dict[str, re.Pattern[str]]
    group_topic: dict[str, str]


def compile_rules(document: dict[str, Any]) -> Rules:
    """Build the matchers from a rules document shaped like ``topics.json``."""
    topics = document["topics"]
    group_topic: dict[str, str] = {}
    regexes: dict[str, re.Pattern[str]] = {}
    for language in LANGUAGES:
        entries: list[tuple[str, str]] = []
        for topic, spec in topics.items():
            entries.extend((topic, keyword) for keyword in spec.get(language, []))
        # Longest keyword first: at one position the alternation takes the first that matches.
        entries.sort(key=lambda e: len(e[1].rstrip("*")), reverse=True)
        parts = []
        for topic, keyword in entries:
            name = f"k{len(group_topic)}"
            group_topic[name] = topic
            parts.append(f"(?P<{name}>{_pattern(keyword)})")
        # The start-of-word check stands once before the alternation: at a position inside a word the
        # search fails there, instead of in each of the hundreds of keywords.
        regexes[language] = re.compile(r"(?<!\w)(?:" + "|".join(parts) + ")" if parts else r"(?!x)x")
    labels = {topic: dict(spec.get("label", {})) for topic, spec in topics.items()}
    return Rules(tuple(sorted(topics)), labels, regexes, group_topic)


def load_rules(path: Path | None = None) -> Rules:
    """Rules from a JSON file, or the shipped ``topics.json``."""
    if path is None:
        return _shipped()
    return compile_rules(json.loads(path.read_text("utf-8")))


@lru_cache(maxsize=1)
def _shipped() -> Rules:
    text = resources.files("prevenance.voice").joinpath("topics.json").read_text("utf-8")
    return compile_rules(json.loads(text))


def tag(text: str, language: str, rules: Rules | None = None) -> list[str]:
    """Topics found in ``text`` (sorted, each once); rules of the answer's language, both if it is neither FR nor EN."""
    if not text or not text.strip():
        return []
    rules = rules or _shipped()
    language = (language or "").lower()[:2]
    languages = (language,) if language in LANGUAGES else LANGUAGES
    clean = normalise(text)
    found: set[str] = set()
    for lang in languages:
        for match in rules.regexes[lang].finditer(clean):
            if match.lastgroup is not None:
                found.add(rules.group_topic[match.lastgroup])
    return sorted(found)


def count_by_month(frame: pl.DataFrame, rules: Rules | None = None) -> list[dict[str, Any]]:
    """Answers mentioning each topic, per month: ``[{"month", "topic", "count"}]`` sorted by month then topic.

    ``frame`` has ``month``, ``language`` and one or more of ``text``, ``comment``, ``suggestion``; an
    answer whose comment and suggestion both mention a topic counts once for it.
    """
    columns = [c for c in TEXT_COLUMNS if c in frame.columns]
    if not columns:
        raise ValueError("count_by_month needs a text, comment or suggestion column")
    languages = frame["language"].to_list() if "language" in frame.columns else [""] * frame.height
    texts = [frame[c].to_list() for c in columns]
    counts: dict[tuple[str, str], int] = {}
    for i, month in enumerate(frame["month"].to_list()):
        topics: set[str] = set()
        for column in texts:
            value = column[i]
            if value:
                topics.update(tag(str(value), languages[i] or "", rules))
        for topic in topics:
            counts[(month, topic)] = counts.get((month, topic), 0) + 1
    return [{"month": m, "topic": t, "count": n} for (m, t), n in sorted(counts.items())]
