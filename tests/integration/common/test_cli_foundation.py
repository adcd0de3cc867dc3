"""The foundation's command line: migrate, create keys (printed alone on the last line)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from typer.testing import CliRunner

from prevenance.app import create_app
from prevenance.cli import app as cli
from prevenance.db import make_engine
from prevenance.metadata import include_name, metadata
from prevenance.settings import get_settings


@pytest.fixture
def sqlite_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("PREVENANCE_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_db_upgrade_installs_schema_and_programme_once(sqlite_url: str) -> None:
    runner = CliRunner()
    first = runner.invoke(cli, ["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert "programme installed" in first.output
    second = runner.invoke(cli, ["db", "upgrade"])
    assert second.exit_code == 0 and "already present" in second.output


def test_keys_create_prints_the_key_alone_on_the_last_line_and_it_works(sqlite_url: str) -> None:
    runner = CliRunner()
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(cli, ["keys", "create", "--role", "agent", "--name", "desk-1"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("pv_") and " " not in key
    engine = make_engine(sqlite_url)
    with TestClient(create_app(engine=engine)) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.get("/v1/members/nobody", headers=headers).status_code == 404
        assert client.post("/v1/transactions", json={}, headers=headers).status_code == 403
    engine.dispose()


def test_keys_are_stored_hashed(sqlite_url: str) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["db", "upgrade"])
    key = (
        runner.invoke(cli, ["keys", "create", "--role", "admin", "--name", "ops"])
        .output.strip()
        .splitlines()[-1]
    )
    raw = Path(sqlite_url.removeprefix("sqlite:///")).read_bytes()
    engine = make_engine(sqlite_url)
    engine.dispose()
    assert key.encode() not in raw


def test_unknown_role_is_refused(sqlite_url: str) -> None:
    runner = CliRunner()
    runner.invoke(cli, ["db", "upgrade"])
    result = runner.invoke(cli, ["keys", "create", "--role", "wizard", "--name", "x"])
    assert result.exit_code == 2


def test_migrations_match_the_models(engine: Engine) -> None:
    """The Alembic history produces exactly the schema the models declare (on both backends)."""
    with engine.connect() as connection:
        diff = compare_metadata(
            MigrationContext.configure(connection, opts={"include_name": include_name}), metadata
        )
    assert diff == []


def test_openapi_lists_the_contract(engine: Engine) -> None:
    with TestClient(create_app(engine=engine)) as client:
        paths = client.get("/openapi.json").json()["paths"]
        assert client.get("/docs").status_code == 200
    for path in ["/v1/members/{ref}", "/v1/transactions", "/v1/transactions/{id}/refunds",
                 "/v1/members/{ref}/balance", "/v1/members/{ref}/movements", "/v1/catalogue/{sku}",
                 "/v1/catalogue", "/v1/partners/{code}", "/v1/partners/{code}/ecodes",
                 "/v1/members/{ref}/redemptions", "/v1/redemptions/{id}/confirm", "/v1/redemptions/{id}/void",
                 "/v1/referrals", "/v1/ledger/audit"]:  # fmt: skip
        assert path in paths, path
