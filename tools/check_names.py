"""Two rules of DESIGN.md that import-linter cannot see, checked over src/, tests/ and benchmarks/:

- no module imports another module's ``_private`` name (``from prevenance.x import _y``, or
  ``x._y`` on an imported ``prevenance`` module);
- a table is declared once, in its domain's ``tables.py``: no ``table("members", …)`` /
  ``Table("members", …)`` re-declaration elsewhere (a domain reads another's data through its service).

Prints one line per violation and exits 1 when there is any. ``KNOWN`` lists the violations left on
purpose, each with the reason; remove a line when its reason goes.

    .venv/bin/python tools/check_names.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("src", "tests", "benchmarks", "tools")
# (file, name): why it is still there.
KNOWN: dict[tuple[str, str], str] = {
    ("src/prevenance/loyalty/ingest.py", "prevenance.db._is_retryable"): "ingest: its retry loop goes",
    ("src/prevenance/loyalty/ingest.py", "prevenance.loyalty.service._check_currency"): "ingest rework",
    ("src/prevenance/loyalty/ingest.py", "prevenance.loyalty.service._parse_amount"): "ingest rework",
    ("src/prevenance/loyalty/ingest.py", "prevenance.loyalty.service._utc"): "ingest rework",
    ("benchmarks/ingest.py", "prevenance.loyalty.ingest._Writer"): "times the ingest's writer",
    (
        "src/prevenance/offers/roi/service.py",
        "table:offers",
    ): "ROI windows: one set-based query over every member of a campaign",
    (
        "src/prevenance/offers/roi/service.py",
        "table:offer_decisions",
    ): "ROI windows: one set-based query over every member of a campaign",
    (
        "src/prevenance/offers/roi/service.py",
        "table:members",
    ): "ROI windows: one set-based query over every member of a campaign",
    (
        "src/prevenance/offers/roi/service.py",
        "table:card_transactions",
    ): "ROI windows: one set-based query over every member of a campaign",
}


def _module_name(path: Path) -> str:
    if not path.is_relative_to(ROOT):
        return path.stem
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "src":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def violations(path: Path) -> list[tuple[int, str]]:
    """The violations in one file, as (line, what)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    here = _module_name(path)
    found: list[tuple[int, str]] = []
    modules: dict[str, str] = {}  # local name -> the prevenance module it is bound to
    table_makers: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("prevenance"):
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if _is_private(alias.name) and node.module != here:
                        found.append((node.lineno, target))
                    modules[alias.asname or alias.name] = target
            elif node.module == "sqlalchemy":
                table_makers |= {a.asname or a.name for a in node.names if a.name in ("table", "Table")}
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("prevenance"):
                    modules[alias.asname or alias.name.split(".")[0]] = (
                        alias.asname and alias.name
                    ) or "prevenance"
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and _is_private(node.attr):
            value = node.value
            if isinstance(value, ast.Name) and value.id in modules and modules[value.id] != here:
                found.append((node.lineno, f"{modules[value.id]}.{node.attr}"))
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in table_makers
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
            and path.name != "tables.py"
            and here.startswith("prevenance")
            and "migrations" not in path.parts
        ):
            found.append((node.lineno, f"table:{node.args[0].value}"))
    return found


def main() -> int:
    failed = 0
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT).as_posix()
            for line, what in violations(path):
                if (relative, what) in KNOWN:
                    continue
                kind = "re-declares table" if what.startswith("table:") else "imports private name"
                print(f"{relative}:{line}: {kind} {what.removeprefix('table:')}")
                failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
