"""``prevenance offers train`` / ``list`` / ``models`` against the test database."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine
from typer.testing import CliRunner

from prevenance.cli import app as cli
from prevenance.common.clock import FrozenClock
from tests.conftest import Api
from tests.integration.offers.conftest import offer_def
from tests.integration.offers.test_training import _history


@pytest.fixture
def cli_on_test_db(cli_env: Engine) -> CliRunner:
    """A command-line runner on the test database."""
    return CliRunner()


def test_train_prints_the_auc_with_its_ci_and_lists_show_the_versions(
    api: Api, engine: Engine, clock: FrozenClock, cli_on_test_db: CliRunner
) -> None:
    refused = cli_on_test_db.invoke(cli, ["offers", "train"])
    assert refused.exit_code == 2 and "error:" in refused.output
    _history(engine, clock, members=40)
    api.put("/v1/offers/books", offer_def(), role="marketing")
    trained = cli_on_test_db.invoke(cli, ["offers", "train"])
    assert trained.exit_code == 0, trained.output
    assert (
        "model version 1" in trained.output
        and "held-out AUC" in trained.output
        and "95% CI" in trained.output
    )
    listed = cli_on_test_db.invoke(cli, ["offers", "models"])
    assert listed.exit_code == 0 and listed.output.startswith("v1")
    offers = cli_on_test_db.invoke(cli, ["offers", "list"])
    assert "books" in offers.output and "active" in offers.output
