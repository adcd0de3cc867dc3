"""Helpers of the console tests: users, a fresh browser, the CSRF token, the errors shown by a field."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.console import users
from prevenance.db import unit_of_work
from tests.conftest import Api

PASSWORD = "correct horse battery"


def make_user(engine: Engine, clock: FrozenClock, username: str, role: str, **kwargs: Any) -> None:
    with unit_of_work(engine) as session:
        users.create_user(
            session,
            username=username,
            password=PASSWORD,
            role=role,
            language=kwargs.pop("language", "fr"),
            member_ref=kwargs.pop("member_ref", None),
            now=clock.now(),
        )


def browser(api: Api, **headers: str) -> TestClient:
    """A fresh client (its own cookie jar) over the same application."""
    return TestClient(api.client.app, follow_redirects=False, headers=headers)


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF field in the page"
    return found.group(1)


def key_of(html: str, action: str) -> str:
    form = html[html.index(f'action="{action}"') :]
    found = re.search(r'name="key" value="([^"]+)"', form)
    assert found
    return found.group(1)


def sign_in(client: TestClient, username: str, password: str = PASSWORD, path: str = "/console/login") -> Any:
    page = client.get(path)
    return client.post(path, data={"csrf": csrf_of(page.text), "username": username, "password": password})


def error_near(html: str, field: str) -> str:
    """The error message shown next to an input (``<p class="error" id="err-<field>">``)."""
    found = re.search(rf'id="err-{re.escape(field)}" role="alert">([^<]+)<', html)
    assert found, f"no error shown next to {field!r}"
    return unescape(found.group(1))
