"""The layering rules are checked, not hoped for: the tree keeps them, and a module that breaks one
makes the check (``make lint``, ``make test``) fail, naming the contract."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports(src: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / ".importlinter")],
        cwd=src.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _copy_of_src(tmp_path: Path) -> Path:
    src = tmp_path / "src"
    shutil.copytree(ROOT / "src", src, ignore=shutil.ignore_patterns("__pycache__", "static", "*.db*"))
    return src


def test_the_source_tree_keeps_every_layering_contract() -> None:
    result = _lint_imports(ROOT / "src")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_domain_importing_the_app_breaks_the_entry_point_contract(tmp_path: Path) -> None:
    src = _copy_of_src(tmp_path)
    rules = src / "prevenance" / "customers" / "rules.py"
    rules.write_text(rules.read_text(encoding="utf-8") + "\nfrom prevenance.app import create_app  # noqa\n")
    result = _lint_imports(src)
    assert result.returncode == 1
    assert "prevenance.customers.rules -> prevenance.app" in result.stdout


def test_offers_reading_the_desk_breaks_the_domain_contract(tmp_path: Path) -> None:
    src = _copy_of_src(tmp_path)
    api = src / "prevenance" / "offers" / "api.py"
    api.write_text(
        api.read_text(encoding="utf-8") + "\nfrom prevenance.desk import service as _desk  # noqa\n"
    )
    result = _lint_imports(src)
    assert result.returncode == 1
    assert "prevenance.offers.api -> prevenance.desk.service" in result.stdout


def test_a_private_name_imported_from_another_module_is_reported(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        import check_names
    finally:
        sys.path.remove(str(ROOT / "tools"))
    module = tmp_path / "module.py"
    module.write_text("from prevenance.db import _WRITE_LOCKS\nfrom prevenance import db\ndb._READ_ONLY\n")
    assert [what for _, what in check_names.violations(module)] == [
        "prevenance.db._WRITE_LOCKS",
        "prevenance.db._READ_ONLY",
    ]
