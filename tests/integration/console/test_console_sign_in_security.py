"""Sign-in and sessions under attack, on SQLite and PostgreSQL: the sign-in limit counts per user name
whatever address or forwarded header an attempt carries, and separately per client address;
forwarded headers are believed from the configured proxies only; cookies are Secure behind an https
public URL; signing out, or disabling the user, ends the session on the server (a copy of the cookie
is refused)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from prevenance.app import create_app
from prevenance.cli import app as cli
from prevenance.common.auth import create_key
from prevenance.common.clock import FrozenClock
from prevenance.console import users
from prevenance.console.tables import ConsoleUser
from prevenance.console.web import SESSION_COOKIE
from prevenance.db import read_session, unit_of_work
from prevenance.settings import Settings
from tests.conftest import member_body
from tests.integration.console.support import PASSWORD, csrf_of, make_user, sign_in

WRONG = "not the password at all"


def app_with(engine: Engine, clock: FrozenClock, **settings: Any) -> FastAPI:
    return create_app(Settings(**settings), engine=engine, clock=clock)


def client_at(app: FastAPI, address: str, **headers: str) -> TestClient:
    """A browser whose TCP connection comes from ``address`` (its own cookie jar)."""
    return TestClient(app, follow_redirects=False, client=(address, 40000), headers=headers)


def desk_status(app: FastAPI, cookie: str) -> int:
    """What the desk answers to a request carrying ``cookie`` (200 signed in, 303 to the sign-in)."""
    replay = client_at(app, "192.0.2.50")
    replay.cookies.set(SESSION_COOKIE, cookie)
    return replay.get("/console/desk").status_code


# --- the sign-in limit ---------------------------------------------------------------------------


def test_the_sign_in_limit_counts_per_user_name_whatever_address_or_forwarded_header_it_comes_from(
    engine: Engine, clock: FrozenClock
) -> None:
    make_user(engine, clock, "agent1", "agent")
    make_user(engine, clock, "sup1", "supervisor")
    app = app_with(engine, clock, rate_limit_sign_in="3/minute", rate_limit_sign_in_address="100/minute")
    codes = [
        sign_in(client_at(app, f"203.0.113.{n}", **{"X-Forwarded-For": f"198.51.100.{n}"}), "agent1", WRONG)
        for n in range(1, 4)
    ]
    assert [response.status_code for response in codes] == [401, 401, 401]
    # A fourth address, a fourth forged header, the right password: still the fourth try for this name.
    fourth = sign_in(client_at(app, "203.0.113.4", **{"X-Forwarded-For": "198.51.100.4"}), "AGENT1")
    assert fourth.status_code == 429 and int(fourth.headers["retry-after"]) >= 1
    # Another user name is not blocked by it.
    assert sign_in(client_at(app, "203.0.113.1"), "sup1").status_code == 303


def test_one_address_spraying_many_user_names_is_limited_however_it_rotates_forwarded_headers(
    engine: Engine, clock: FrozenClock
) -> None:
    """The peer is 127.0.0.1, the address uvicorn trusts by default: no proxy is configured here, so
    X-Forwarded-For, Forwarded and X-Real-IP are the caller's own words and count for nothing."""
    make_user(engine, clock, "agent1", "agent")
    app = app_with(engine, clock, rate_limit_sign_in="100/minute", rate_limit_sign_in_address="3/minute")
    forged = [
        {"X-Forwarded-For": "198.51.100.1"},
        {"Forwarded": "for=198.51.100.2"},
        {"X-Real-IP": "198.51.100.3"},
        {"X-Forwarded-For": "198.51.100.4, 198.51.100.5"},
    ]
    codes = [
        sign_in(client_at(app, "127.0.0.1", **h), f"user{n}", WRONG).status_code for n, h in enumerate(forged)
    ]
    assert codes == [401, 401, 401, 429]
    # Another address still signs in.
    assert sign_in(client_at(app, "203.0.113.9"), "agent1").status_code == 303


def test_behind_a_trusted_proxy_the_forwarded_address_is_the_one_counted(
    engine: Engine, clock: FrozenClock
) -> None:
    make_user(engine, clock, "agent1", "agent")
    app = app_with(
        engine,
        clock,
        trusted_proxies="10.0.0.0/8, 192.0.2.10",
        rate_limit_sign_in="100/minute",
        rate_limit_sign_in_address="2/minute",
    )

    def via_proxy(forwarded_for: str) -> int:
        proxy = client_at(app, "10.1.2.3", **{"X-Forwarded-For": forwarded_for})
        return int(sign_in(proxy, "nobody", WRONG).status_code)

    assert [via_proxy("198.51.100.7"), via_proxy("198.51.100.7")] == [401, 401]
    assert via_proxy("198.51.100.7") == 429
    # What the caller wrote left of the proxy's own entry proves nothing: still 198.51.100.7.
    assert via_proxy("203.0.113.200, 198.51.100.7") == 429
    # Two proxies deep (both trusted): the client is the first untrusted hop from the right.
    assert via_proxy("198.51.100.7, 192.0.2.10") == 429
    # Another customer behind the same proxy has its own budget.
    assert via_proxy("198.51.100.8") == 401


def test_the_survey_page_limit_counts_the_forwarded_address_only_behind_a_trusted_proxy(
    engine: Engine, clock: FrozenClock
) -> None:
    app = app_with(engine, clock, trusted_proxies="10.0.0.1", rate_limit_survey="1/minute")
    proxy = client_at(app, "10.0.0.1")

    def through_proxy(header: dict[str, str]) -> int:
        return int(proxy.get("/survey/forged-link", headers=header).status_code)

    assert through_proxy({"Forwarded": 'for="[2001:db8::7]:4711";proto=https'}) == 404
    assert through_proxy({"Forwarded": 'for="[2001:db8::7]"'}) == 429  # the same customer
    assert through_proxy({"X-Real-IP": "198.51.100.20"}) == 404  # another one
    assert through_proxy({"X-Forwarded-For": "198.51.100.21"}) == 404  # and another
    # Straight from the Internet, the same headers are the caller's own: one address, one budget.
    direct = client_at(app, "198.51.100.99")
    assert direct.get("/survey/forged-link", headers={"X-Forwarded-For": "198.51.100.1"}).status_code == 404
    assert direct.get("/survey/forged-link", headers={"X-Forwarded-For": "198.51.100.2"}).status_code == 429


def test_an_invalid_trusted_proxy_setting_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="PREVENANCE_TRUSTED_PROXIES"):
        Settings(trusted_proxies="10.0.0.1, proxy.internal")
    assert Settings(trusted_proxies=" 10.0.0.0/8 ,::1").trusted_proxies


# --- cookies -------------------------------------------------------------------------------------


def test_session_and_language_cookies_are_secure_when_the_public_url_is_https(
    engine: Engine, clock: FrozenClock
) -> None:
    make_user(engine, clock, "agent1", "agent")
    app = app_with(engine, clock, public_url="https://crm.example.com")
    # The TLS ends at the proxy: the hop to the application is plain http, the cookie is Secure anyway.
    anonymous = client_at(app, "203.0.113.1").get("/console/login")
    assert "; secure" in anonymous.headers["set-cookie"].lower()
    browser = TestClient(app, base_url="https://crm.example.com", follow_redirects=False)
    signed_in = sign_in(browser, "agent1")
    assert signed_in.status_code == 303
    assert "; secure" in signed_in.headers["set-cookie"].lower()
    language = client_at(app, "203.0.113.1").get("/console/lang", params={"to": "en"})
    cookies = language.headers.get_list("set-cookie")
    assert cookies and all("; secure" in cookie.lower() for cookie in cookies)


def test_cookies_are_not_secure_when_the_public_url_is_plain_http(engine: Engine, clock: FrozenClock) -> None:
    app = app_with(engine, clock, public_url="http://127.0.0.1:8000")
    assert "secure" not in client_at(app, "127.0.0.1").get("/console/login").headers["set-cookie"].lower()


# --- sessions ended on the server ----------------------------------------------------------------


def test_a_session_cookie_replayed_after_sign_out_is_refused(engine: Engine, clock: FrozenClock) -> None:
    make_user(engine, clock, "agent1", "agent")
    app = app_with(engine, clock)
    client = client_at(app, "203.0.113.1")
    assert sign_in(client, "agent1").status_code == 303
    stolen = client.cookies[SESSION_COOKIE]
    assert desk_status(app, stolen) == 200
    desk = client.get("/console/desk")
    assert client.post("/console/logout", data={"csrf": csrf_of(desk.text)}).status_code == 303
    assert desk_status(app, stolen) == 303  # signed and unexpired, but the session has ended
    # Signing in again gives a session that works.
    again = client_at(app, "203.0.113.1")
    assert sign_in(again, "agent1").status_code == 303
    assert desk_status(app, again.cookies[SESSION_COOKIE]) == 200


def test_signing_out_of_the_portal_ends_the_members_session_too(engine: Engine, clock: FrozenClock) -> None:
    app = app_with(engine, clock)
    with unit_of_work(engine) as session:
        _, key = create_key(session, role="admin", name="setup", now=clock.now())
    staff = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    assert staff.put("/v1/members/M1", json=member_body()).status_code == 201
    make_user(engine, clock, "camille", "member", member_ref="M1")
    client = client_at(app, "203.0.113.1")
    assert sign_in(client, "camille", path="/portal/login").status_code == 303
    stolen = client.cookies[SESSION_COOKIE]
    portal = client.get("/portal/")
    assert portal.status_code == 200
    out = client.post("/console/logout", data={"csrf": csrf_of(portal.text)})
    assert out.status_code == 303 and out.headers["location"] == "/portal/login"
    replay = client_at(app, "192.0.2.50")
    replay.cookies.set(SESSION_COOKIE, stolen)
    assert replay.get("/portal/").headers["location"].startswith("/portal/login")


def test_console_disable_user_refuses_the_sign_in_and_ends_open_sessions(
    cli_env: Engine, clock: FrozenClock
) -> None:
    engine = cli_env
    make_user(engine, clock, "agent1", "agent")
    make_user(engine, clock, "agent2", "agent")
    app = app_with(engine, clock)
    client = client_at(app, "203.0.113.1")
    assert sign_in(client, "agent1").status_code == 303
    open_session = client.cookies[SESSION_COOKIE]
    other = client_at(app, "203.0.113.2")
    assert sign_in(other, "agent2").status_code == 303

    result = CliRunner().invoke(cli, ["console", "disable-user", "agent1"])
    assert result.exit_code == 0, result.output
    assert "disabled console user agent1" in result.output
    assert desk_status(app, open_session) == 303
    assert sign_in(client_at(app, "203.0.113.3"), "agent1").status_code == 401
    assert desk_status(app, other.cookies[SESSION_COOKIE]) == 200  # nobody else is touched
    again = CliRunner().invoke(cli, ["console", "disable-user", "agent1"])
    assert again.exit_code == 0  # idempotent
    unknown = CliRunner().invoke(cli, ["console", "disable-user", "nobody-at-all"])
    assert unknown.exit_code == 2 and "nobody-at-all" in unknown.output


def test_disabling_a_members_portal_users_ends_their_sessions(engine: Engine, clock: FrozenClock) -> None:
    """The service erasure calls: every portal sign-in of the member is disabled, once."""
    app = app_with(engine, clock)
    with unit_of_work(engine) as session:
        _, key = create_key(session, role="admin", name="setup", now=clock.now())
    staff = TestClient(app, headers={"Authorization": f"Bearer {key}"})
    for ref in ("M1", "M2"):
        assert staff.put(f"/v1/members/{ref}", json=member_body()).status_code == 201
    make_user(engine, clock, "camille", "member", member_ref="M1")
    make_user(engine, clock, "jean", "member", member_ref="M2")
    client = client_at(app, "203.0.113.1")
    assert sign_in(client, "camille", path="/portal/login").status_code == 303
    with read_session(engine) as session:
        member_id = session.scalars(
            select(ConsoleUser.member_id).where(ConsoleUser.username == "camille")
        ).one()
    with unit_of_work(engine) as session:
        assert users.disable_member_users(session, member_id=member_id) == 1
    with unit_of_work(engine) as session:
        assert users.disable_member_users(session, member_id=member_id) == 0
    assert client.get("/portal/").status_code == 303
    assert sign_in(client_at(app, "203.0.113.2"), "camille", path="/portal/login").status_code == 401
    assert sign_in(client_at(app, "203.0.113.3"), "jean", path="/portal/login").status_code == 303


def test_a_password_still_signs_in_after_the_user_signed_out(engine: Engine, clock: FrozenClock) -> None:
    """Signing out ends sessions, not the account."""
    make_user(engine, clock, "agent1", "agent")
    with unit_of_work(engine) as session:
        user = users.authenticate(session, username="agent1", password=PASSWORD)
        assert user is not None
        users.end_sessions(session, user_id=user.id)
    with read_session(engine) as session:
        after = users.authenticate(session, username="agent1", password=PASSWORD)
        assert after is not None and after.session_generation == user.session_generation + 1
        assert users.find_signed_in(session, user_id=user.id, generation=user.session_generation) is None
        assert users.find_signed_in(session, user_id=user.id, generation=after.session_generation) is not None
