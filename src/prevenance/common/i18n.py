"""French and English for every word the product shows or sends — console pages, the survey page,
mails to members, the quarterly report: one catalogue per language, read from ``locales/fr.json`` and
``locales/en.json`` plus any ``locales/<area>.fr.json`` / ``locales/<area>.en.json`` that a feature
brings (so features add their words without touching one shared file). Keys are namespaced by where
they are used (``mail.incident.*``, ``voice.report.*``, …); the same key in two files of one language
is an error, and both languages have the same keys (tested).

The language of a page is, in order: the switcher's cookie, the signed-in user's language (a member's
own language in the portal), the browser's ``Accept-Language``, then French.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

LANGUAGES = ("fr", "en")
DEFAULT = "fr"
_DIR = Path(__file__).parent / "locales"


def catalogue_files(language: str) -> list[Path]:
    """The files that make up one language's catalogue: the main one first, then each area's."""
    return [_DIR / f"{language}.json", *sorted(_DIR.glob(f"*.{language}.json"))]


@cache
def catalogue(language: str) -> dict[str, str]:
    """The messages of one language (read once); a key defined twice is refused."""
    data: dict[str, str] = {}
    for path in catalogue_files(language):
        part: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
        twice = sorted(data.keys() & part.keys())
        if twice:
            raise ValueError(f"{path.name} defines keys already defined: {', '.join(twice[:5])}")
        data.update(part)
    return data


def translate(language: str, key: str, **values: Any) -> str:
    """The message ``key`` in ``language`` (falling back to French, then to the key itself)."""
    text = catalogue(language).get(key) or catalogue(DEFAULT).get(key) or key
    return text.format(**values) if values else text


def section(language: str, prefix: str) -> dict[str, str]:
    """Every message under ``prefix`` (``"voice.report."``) keyed by the rest of its key, for a
    template that reads them by name; French fills what the language lacks."""
    merged = {k: v for k, v in catalogue(DEFAULT).items() if k.startswith(prefix)}
    merged.update({k: v for k, v in catalogue(language).items() if k.startswith(prefix) and v})
    return {k[len(prefix) :]: v for k, v in merged.items()}


def from_accept_language(header: str | None) -> str | None:
    """The first of our languages in an ``Accept-Language`` header, by its q weight."""
    if not header:
        return None
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        if params.strip().startswith("q="):
            try:
                q = float(params.strip()[2:])
            except ValueError:
                q = 0.0
        weighted.append((-q, position, tag.strip().lower()[:2]))
    for _, _, tag in sorted(weighted):
        if tag in LANGUAGES:
            return tag
    return None


def choose(*, cookie: str | None, user_language: str | None, accept_language: str | None) -> str:
    """The language of a page (see the module docstring)."""
    for candidate in (cookie, user_language, from_accept_language(accept_language)):
        if candidate in LANGUAGES:
            return str(candidate)
    return DEFAULT
