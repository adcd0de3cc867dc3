"""``loyalty/INVARIANTS.md`` says what is true: every test it names exists, and what the migrations
hold in the database (the append-only triggers on ``postings``) is not listed as unheld."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
DOCUMENT = ROOT / "src" / "prevenance" / "loyalty" / "INVARIANTS.md"
MIGRATIONS = ROOT / "src" / "prevenance" / "migrations" / "versions"


def _text() -> str:
    return DOCUMENT.read_text(encoding="utf-8")


def _test_file(name: str, abbreviations: dict[str, str]) -> Path:
    if name in abbreviations:
        return ROOT / abbreviations[name]
    if name.startswith("tests/"):
        return ROOT / name
    return ROOT / "tests" / "integration" / f"{name}.py"  # e.g. offers/test_concurrency


def test_every_test_the_invariants_name_exists() -> None:
    text = _text()
    abbreviations = dict(re.findall(r"`(\w+)` = `(tests/[^`]+\.py)`", text))
    named = re.findall(r"`([\w/.]+)::(test_\w+)`", text)
    assert len(named) > 30
    missing = [
        f"{file}::{test}"
        for file, test in named
        if not (path := _test_file(file, abbreviations)).exists()
        or not re.search(rf"^def {test}\(", path.read_text(encoding="utf-8"), re.MULTILINE)
    ]
    assert missing == []


def test_append_only_is_said_to_be_held_by_the_triggers_the_migrations_install() -> None:
    migrations = "\n".join(path.read_text(encoding="utf-8") for path in MIGRATIONS.glob("*.py"))
    assert re.search(r"CREATE TRIGGER \w+ BEFORE UPDATE OR DELETE ON postings", migrations)
    text = _text()
    guarantee = next(line for line in text.splitlines() if line.startswith("- Postings are append-only"))
    assert "triggers refuse every `UPDATE` and `DELETE` on `postings`, on SQLite and PostgreSQL" in guarantee
    assert (
        "append_only::test_an_update_or_delete_of_any_posting_column_is_refused_by_the_database" in guarantee
    )
    flattened = " ".join(text.split())
    assert "not by a trigger" not in flattened
    assert "not held by a trigger" not in flattened
