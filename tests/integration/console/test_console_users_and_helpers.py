"""Console users (creation, passwords, the CLI, the demo users) and the console's pure helpers:
language choice, the catalogues' parity, safe redirects and the search's prefix ranges.

The helpers need no database; they sit here because ``tests/unit/console/`` is not yet a path of
this package's owner (see the closing note)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import Engine, select
from typer.testing import CliRunner

from prevenance.common import i18n as common_i18n
from prevenance.common.clock import FrozenClock
from prevenance.console import i18n, users
from prevenance.console.cli import app as console_cli
from prevenance.console.tables import ConsoleUser
from prevenance.console.web import safe_next
from prevenance.customers.search import prefix_successor, search_members
from prevenance.db import read_session, unit_of_work
from prevenance.demo.users import create_demo_users
from tests.factories import store_member

LOCALES = Path(common_i18n.__file__).parent / "locales"


def add_member(
    engine: Engine, clock: FrozenClock, ref: str, name: str, email: str, language: str = "fr"
) -> None:
    store_member(engine, clock, ref, name=name, email=email, language=language)


def test_a_user_is_stored_with_an_argon2_hash_and_signs_in_with_its_password_only(
    engine: Engine, clock: FrozenClock
) -> None:
    with unit_of_work(engine) as session:
        users.create_user(
            session, username="alice", password="long enough pw", role="agent", language="en",
            member_ref=None, now=clock.now(),
        )  # fmt: skip
    with read_session(engine) as session:
        row = session.scalars(select(ConsoleUser)).one()
        assert row.password_hash.startswith("$argon2id$") and "long enough pw" not in row.password_hash
        assert users.authenticate(session, username="alice", password="long enough pw") is not None
        assert users.authenticate(session, username="alice", password="long enough px") is None
        assert users.authenticate(session, username="bob", password="long enough pw") is None
    with unit_of_work(engine) as session:
        session.scalars(select(ConsoleUser)).one().disabled = True
    with read_session(engine) as session:
        assert users.authenticate(session, username="alice", password="long enough pw") is None


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"username": "a b"}, "username"),
        ({"password": "short"}, "password"),
        ({"role": "wizard"}, "role"),
        ({"role": "integrator"}, "role"),
        ({"language": "de"}, "language"),
        ({"role": "member"}, "member_ref"),
        ({"member_ref": "M1"}, "member_ref"),
        ({"role": "member", "member_ref": "NOPE"}, "member_ref"),
    ],
)
def test_a_bad_user_is_refused_naming_the_field(
    engine: Engine, clock: FrozenClock, changes: dict[str, str], field: str
) -> None:
    add_member(engine, clock, "M1", "Camille Martin", "c@example.fr")
    data = {"username": "alice", "password": "long enough pw", "role": "agent", "language": "fr",
            "member_ref": None, **changes}  # fmt: skip
    with pytest.raises(Exception) as raised, unit_of_work(engine) as session:
        users.create_user(session, now=clock.now(), **data)  # type: ignore[arg-type]
    assert getattr(raised.value, "field", None) == field
    with read_session(engine) as session:
        assert session.scalars(select(ConsoleUser)).first() is None


def test_a_username_is_taken_once_and_a_member_user_takes_its_members_language(
    engine: Engine, clock: FrozenClock
) -> None:
    add_member(engine, clock, "M1", "John Smith", "j@example.co.uk", language="en")
    with unit_of_work(engine) as session:
        member = users.create_user(
            session, username="john", password="long enough pw", role="member", language="fr",
            member_ref="M1", now=clock.now(),
        )  # fmt: skip
    assert (member.language, member.member_ref) == ("en", "M1")
    with pytest.raises(users.UsernameTaken), unit_of_work(engine) as session:
        users.create_user(
            session, username="john", password="long enough pw", role="agent", language="fr",
            member_ref=None, now=clock.now(),
        )  # fmt: skip


def test_the_cli_creates_a_user(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("prevenance.db.engine_from_settings", lambda: engine)
    runner = CliRunner()
    args = ["create-user", "--username", "sup", "--role", "supervisor", "--language", "en"]
    result = runner.invoke(console_cli, args, env={"PREVENANCE_CONSOLE_PASSWORD": "long enough pw"})
    assert result.exit_code == 0, result.output
    assert "created console user sup (supervisor, en)" in result.output
    again = runner.invoke(console_cli, args, env={"PREVENANCE_CONSOLE_PASSWORD": "long enough pw"})
    assert again.exit_code == 2
    with read_session(engine) as session:
        assert users.authenticate(session, username="sup", password="long enough pw") is not None


def test_demo_users_cover_every_role_and_their_printed_passwords_work(
    engine: Engine, clock: FrozenClock
) -> None:
    add_member(engine, clock, "D1", "Demo One", "d1@example.fr")
    first = create_demo_users(engine)
    assert {role for _, _, role in first} == {
        "agent",
        "concierge",
        "supervisor",
        "marketing",
        "admin",
        "member",
    }
    second = create_demo_users(engine)  # a second load resets the passwords, it does not fail
    with read_session(engine) as session:
        for username, password, _ in second:
            assert users.authenticate(session, username=username, password=password) is not None
        member = users.authenticate(
            session, username="demo-member", password=dict((u, p) for u, p, _ in second)["demo-member"]
        )
        assert member is not None and member.member_ref == "D1"


def test_search_reads_prefixes_of_name_email_and_reference(engine: Engine, clock: FrozenClock) -> None:
    add_member(engine, clock, "AB-1", "Émile Zola", "zola@example.fr")
    add_member(engine, clock, "ZZ-2", "Abel Gance", "gance@example.fr")
    add_member(engine, clock, "ZZ-3", "Abe_l Other", "other@example.fr")
    with read_session(engine) as session:
        assert [r["ref"] for r in search_members(session, q="ab")] == ["ZZ-3", "ZZ-2", "AB-1"]
        assert [r["ref"] for r in search_members(session, q="abe_")] == ["ZZ-3"]  # _ is not a wildcard
        assert [r["ref"] for r in search_members(session, q="GANCE@")] == ["ZZ-2"]
        assert search_members(session, q="   ") == []
        assert search_members(session, q="bel") == []  # a prefix, not a substring
        # Accented capitals and small letters, typed either way (SQLite's lower() is ASCII-only).
        assert [r["ref"] for r in search_members(session, q="émile")] == ["AB-1"]
        assert [r["ref"] for r in search_members(session, q="ÉMILE Z")] == ["AB-1"]


def test_search_finds_accented_small_letters_typed_either_way(engine: Engine, clock: FrozenClock) -> None:
    add_member(engine, clock, "Z-1", "Zoé Lefèvre", "zoe@example.fr")
    with read_session(engine) as session:
        assert [r["ref"] for r in search_members(session, q="zoé l")] == ["Z-1"]
        assert [r["ref"] for r in search_members(session, q="ZOÉ")] == ["Z-1"]


# --- pure helpers -------------------------------------------------------------------------------


def test_both_catalogues_have_the_same_keys_and_placeholders() -> None:
    fr, en = common_i18n.catalogue("fr"), common_i18n.catalogue("en")
    assert fr.keys() == en.keys()
    areas = {p.name.split(".")[0] for p in LOCALES.glob("*.*.json")}
    for area in areas:  # each area's file exists in both languages
        assert (LOCALES / f"{area}.fr.json").exists() and (LOCALES / f"{area}.en.json").exists(), area
    for key in fr:
        assert sorted(re.findall(r"{(\w+)}", fr[key])) == sorted(re.findall(r"{(\w+)}", en[key])), key


@pytest.mark.parametrize(
    ("cookie", "user", "header", "expected"),
    [
        (None, None, None, "fr"),
        (None, None, "en-GB,en;q=0.9", "en"),
        (None, None, "de-DE,de;q=0.9,en;q=0.5,fr;q=0.7", "fr"),
        (None, None, "en;q=0.2, fr;q=0.8", "fr"),
        (None, "en", "fr", "en"),
        ("fr", "en", "en", "fr"),
        ("xx", None, "en", "en"),
    ],
)
def test_the_language_is_the_cookie_then_the_user_then_the_browser(
    cookie: str | None, user: str | None, header: str | None, expected: str
) -> None:
    assert i18n.choose(cookie=cookie, user_language=user, accept_language=header) == expected


def test_translations_fill_their_placeholders_and_fall_back_to_the_key() -> None:
    assert i18n.translate("en", "card.left", time="1 h 05 min") == "1 h 05 min left"
    assert i18n.translate("fr", "card.left", time="1 h 05 min") == "reste 1 h 05 min"
    assert i18n.translate("en", "no.such.key") == "no.such.key"


@pytest.mark.parametrize(
    ("target", "expected"),
    [("/console/desk?q=a", "/console/desk?q=a"), ("//evil.example", "/d"), ("https://evil.example", "/d"),
     ("/\\evil.example", "/d"), (None, "/d"), ("", "/d")],
)  # fmt: skip
def test_redirects_stay_on_this_site(target: str | None, expected: str) -> None:
    assert safe_next(target, "/d") == expected


def test_the_prefix_range_ends_just_after_every_string_with_the_prefix() -> None:
    assert prefix_successor("abc") == "abd"
    assert "abc" <= "abczzz" < prefix_successor("abc")
    assert not (prefix_successor("abc") > "abd")
