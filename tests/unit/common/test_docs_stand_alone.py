"""The project's own documentation stands alone: nothing points outside the repository, every
relative link resolves, and the README leads to the architecture page."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)#\s]+)[^)]*\)")


def test_no_page_points_outside_the_repository() -> None:
    outside = [
        (page.name, found.group(0))
        for page in PAGES
        for found in re.finditer(r"(\.\./shared|/work/|\.\./\.\./)[^\s`)]*", page.read_text(encoding="utf-8"))
    ]
    assert outside == []


def test_every_relative_link_resolves() -> None:
    broken = [
        (page.name, target)
        for page in PAGES
        for target in LINK.findall(page.read_text(encoding="utf-8"))
        if "://" not in target and not target.startswith("mailto:") and not (page.parent / target).exists()
    ]
    assert broken == []


def test_the_readme_leads_to_the_architecture_page() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    architecture = ROOT / "docs" / "architecture.md"
    assert "docs/architecture.md" in readme and architecture.exists()
    text = architecture.read_text(encoding="utf-8")
    assert "## Layout" in text and "## One picture" in text and "```mermaid" in text
    for package in ("customers", "loyalty", "desk", "voice", "offers", "views", "console", "stream"):
        assert f"  {package}/" in text and (ROOT / "src" / "prevenance" / package).is_dir()
