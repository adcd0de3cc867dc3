"""API keys are revoked for good and at once: ``prevenance keys revoke`` makes every API process answer
401 from the next request on (no process keeps a stale copy), and a member key is only made for a
member that exists. On SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, create_engine, func, select
from typer.testing import CliRunner

from prevenance.app import create_app
from prevenance.cli import app as cli
from prevenance.common.auth import ApiKey, create_key, revoke_member_keys
from prevenance.common.clock import FrozenClock
from prevenance.db import read_session, unit_of_work
from tests.conftest import member_body


def _key(
    engine: Engine, clock: FrozenClock, role: str = "agent", member_ref: str | None = None
) -> tuple[str, str]:
    with unit_of_work(engine) as session:
        row, secret = create_key(
            session, role=role, name=f"test-{role}", member_ref=member_ref, now=clock.now()
        )
        return row.id, secret


def _key_count(engine: Engine) -> int:
    with read_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(ApiKey)) or 0)


def test_a_revoked_key_is_refused_at_once_by_every_api_process(cli_env: Engine, clock: FrozenClock) -> None:
    engine = cli_env
    key_id, secret = _key(engine, clock)
    headers = {"Authorization": f"Bearer {secret}"}
    # Two applications over one database: two worker processes, each with its own memory.
    workers = [TestClient(create_app(engine=engine, clock=clock)) for _ in range(2)]
    assert [w.get("/v1/members/nobody", headers=headers).status_code for w in workers] == [404, 404]

    result = CliRunner().invoke(cli, ["keys", "revoke", key_id])
    assert result.exit_code == 0, result.output
    assert f"revoked key {key_id}" in result.output

    refused = [w.get("/v1/members/nobody", headers=headers) for w in workers]
    assert [r.status_code for r in refused] == [401, 401]
    assert refused[0].json()["type"].endswith("/unauthenticated")
    again = CliRunner().invoke(cli, ["keys", "revoke", key_id])
    assert again.exit_code == 0  # revoking twice is harmless
    with read_session(engine) as session:
        assert session.get(ApiKey, key_id).revoked_at is not None  # type: ignore[union-attr]


def test_revoking_an_unknown_key_exits_2_naming_it(cli_env: Engine) -> None:
    result = CliRunner().invoke(cli, ["keys", "revoke", "key_does_not_exist"])
    assert result.exit_code == 2 and "key_does_not_exist" in result.output


def test_keys_list_shows_ids_and_which_are_revoked_never_the_secret(
    cli_env: Engine, clock: FrozenClock
) -> None:
    live_id, live_secret = _key(cli_env, clock)
    dead_id, _ = _key(cli_env, clock, role="integrator")
    assert CliRunner().invoke(cli, ["keys", "revoke", dead_id]).exit_code == 0
    listing = CliRunner().invoke(cli, ["keys", "list"])
    assert listing.exit_code == 0
    lines = {line.split()[0]: line for line in listing.output.splitlines()}
    assert lines[live_id].endswith("live") and "revoked" in lines[dead_id]
    assert live_secret not in listing.output


def test_no_member_key_for_a_ref_that_does_not_exist(cli_env: Engine, clock: FrozenClock) -> None:
    before = _key_count(cli_env)
    result = CliRunner().invoke(
        cli, ["keys", "create", "--role", "member", "--name", "x", "--member-ref", "nope"]
    )
    assert result.exit_code == 2
    assert "member_ref" in result.output and "nope" in result.output
    assert _key_count(cli_env) == before  # nothing written


def test_a_member_key_for_an_existing_member_acts_for_it(cli_env: Engine, clock: FrozenClock) -> None:
    engine = cli_env
    _, admin = _key(engine, clock, role="admin")
    client = TestClient(create_app(engine=engine, clock=clock))
    assert (
        client.put(
            "/v1/members/M1", json=member_body(), headers={"Authorization": f"Bearer {admin}"}
        ).status_code
        == 201
    )
    result = CliRunner().invoke(
        cli, ["keys", "create", "--role", "member", "--name", "camille", "--member-ref", "M1"]
    )
    assert result.exit_code == 0, result.output
    secret = result.output.strip().splitlines()[-1]
    assert client.get("/v1/members/M1", headers={"Authorization": f"Bearer {secret}"}).status_code == 200


def test_a_staff_key_bound_to_a_member_is_refused(cli_env: Engine) -> None:
    result = CliRunner().invoke(
        cli, ["keys", "create", "--role", "agent", "--name", "x", "--member-ref", "M1"]
    )
    assert result.exit_code == 2 and "member_ref" in result.output


def test_revoking_a_members_keys_leaves_other_keys_working(engine: Engine, clock: FrozenClock) -> None:
    """The service erasure calls: every live key bound to the member is revoked, once."""
    _, admin = _key(engine, clock, role="admin")
    client = TestClient(create_app(engine=engine, clock=clock))
    for ref in ("M1", "M2"):
        assert (
            client.put(
                f"/v1/members/{ref}", json=member_body(), headers={"Authorization": f"Bearer {admin}"}
            ).status_code
            == 201
        )
    first = _key(engine, clock, role="member", member_ref="M1")[1]
    second = _key(engine, clock, role="member", member_ref="M1")[1]
    other = _key(engine, clock, role="member", member_ref="M2")[1]
    with unit_of_work(engine) as session:
        assert revoke_member_keys(session, member_ref="M1", now=clock.now()) == 2
    with unit_of_work(engine) as session:
        assert revoke_member_keys(session, member_ref="M1", now=clock.now()) == 0
    codes = {
        secret: client.get(f"/v1/members/{ref}", headers={"Authorization": f"Bearer {secret}"}).status_code
        for secret, ref in ((first, "M1"), (second, "M1"), (other, "M2"), (admin, "M1"))
    }
    assert codes == {first: 401, second: 401, other: 200, admin: 200}


def test_the_per_request_lookup_answers_the_stored_key(engine: Engine, clock: FrozenClock) -> None:
    """The request path reads keys on the driver's connection: the stored key's principal for a live
    key, None for a revoked or unknown one, and nothing written (the connection goes back with no
    transaction)."""
    from prevenance.common.auth import Principal, Role, lookup_principal

    staff_id, staff = _key(engine, clock, role="supervisor")
    revoked_id, revoked = _key(engine, clock, role="integrator")
    with unit_of_work(engine) as session:
        row = session.get(ApiKey, revoked_id)
        assert row is not None
        row.revoked_at = clock.now()
    expected = Principal(key_id=staff_id, name="test-supervisor", role=Role.SUPERVISOR, member_ref=None)
    assert lookup_principal(engine, staff) == expected
    assert lookup_principal(engine, revoked) is None
    assert lookup_principal(engine, "pv_unknown_key_0123456789abcdef") is None
    with unit_of_work(engine) as session:  # the pool lent no connection left inside a transaction
        assert session.scalar(select(func.count()).select_from(ApiKey)) == 2


def test_the_sqlite_key_reader_can_never_write(engine: Engine, clock: FrozenClock) -> None:
    import sqlite3

    from prevenance.common.auth import sqlite_key_reader

    reader = sqlite_key_reader(engine)
    if engine.dialect.name != "sqlite":
        assert reader is None
        return
    assert reader is not None
    with pytest.raises(sqlite3.OperationalError, match=r"readonly|read-only|query_only"):
        reader.execute("DELETE FROM api_keys")


def test_the_key_lookup_survives_a_server_restart_and_sees_a_revocation_at_once(
    engine: Engine, clock: FrozenClock
) -> None:
    """Outside the API's event loop (``common.key_lookup`` serves the API's requests) a server
    database's key is read on a pooled connection: one the server has dropped is replaced instead
    of failing the lookup, and a revocation committed elsewhere is seen by the next lookup."""
    from sqlalchemy import text

    from prevenance.common.auth import lookup_principal, sqlite_key_reader

    key_id, secret = _key(engine, clock, role="supervisor")
    assert lookup_principal(engine, secret) is not None
    if engine.dialect.name == "sqlite":  # a SQLite file is read directly, by this thread's reader
        assert sqlite_key_reader(engine) is not None
        return
    with engine.connect() as connection:
        own = connection.exec_driver_sql("SELECT pg_backend_pid()").scalar()
    killer = create_engine(engine.url)  # another pool: the test engine's connections are the victims
    with killer.begin() as connection:  # without waiting: the server may still be ending them
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    killer.dispose()
    assert lookup_principal(engine, secret) is not None  # on a fresh connection, not a 503
    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT pg_backend_pid()").scalar() != own
    with unit_of_work(engine) as session:
        row = session.get(ApiKey, key_id)
        assert row is not None
        row.revoked_at = clock.now()
    assert lookup_principal(engine, secret) is None


@pytest.mark.parametrize(
    "name",
    ["N" * 121, "", "   ", "ops\n key_forged  admin      root", "ops\x1b[2Jcleared", "a\udcffb"],
    ids=["too-long", "empty", "blank", "line-break", "escape", "not-utf8"],
)
def test_a_key_name_that_cannot_be_stored_or_shown_is_refused_naming_it(cli_env: Engine, name: str) -> None:
    """A key's name is listed by ``keys list`` and recorded as the actor of every request the key
    makes. Over 120 characters it crashed the command with a traceback on PostgreSQL (and was kept
    whole on SQLite); an empty one was kept; a line break or an escape sequence forged lines of
    ``keys list``; bytes that are not UTF-8 (the shell hands them over as surrogates) crashed the
    command on both databases. Each is now exit 2 with one line naming ``name``, and no key."""
    result = CliRunner().invoke(cli, ["keys", "create", "--role", "agent", "--name", name])
    assert result.exit_code == 2, (result.output, result.exception)
    assert isinstance(result.exception, SystemExit)
    assert result.output.startswith("error: name: ") and result.output.count("\n") == 1, result.output
    with read_session(cli_env) as session:
        assert session.scalar(select(func.count()).select_from(ApiKey)) == 0


def test_revoking_an_id_that_cannot_be_a_key_says_so_without_a_traceback(cli_env: Engine) -> None:
    """``keys revoke`` with bytes that are not UTF-8 crashed with a traceback on both databases."""
    for key_id in ["key_\udcff", "x" * 500, "key_\x1b[2J"]:
        result = CliRunner().invoke(cli, ["keys", "revoke", key_id])
        assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
        assert result.output.startswith("error: no API key ") and "\x1b" not in result.output


def test_a_member_ref_that_is_not_utf8_is_no_member_without_a_traceback(cli_env: Engine) -> None:
    """``--member-ref`` with bytes the shell could not decode crashed with a traceback."""
    args = ["keys", "create", "--role", "member", "--name", "x", "--member-ref", "M\udcff"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 2 and isinstance(result.exception, SystemExit), result.output
    assert result.output.startswith("error: member_ref: no member with ref ")
