"""With CI=true a test whose server (PostgreSQL, NATS, Redis, chromium) is missing fails; only a
developer's machine without CI may skip it, naming what is missing."""

from __future__ import annotations

import pytest

from tests.conftest import missing_server


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_a_missing_server_fails_in_ci(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.fail.Exception, match="every test must run in CI"):
        missing_server("PostgreSQL tests need PREVENANCE_TEST_POSTGRES_URL")


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_outside_ci_a_missing_server_is_a_skip_that_names_it(
    monkeypatch: pytest.MonkeyPatch, value: str | None
) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    with pytest.raises(pytest.skip.Exception, match="NATS"):
        missing_server("NATS is not reachable")
