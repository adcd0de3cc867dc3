"""GDPR: export everything about a customer; erase them while the ledger's sums stay exactly as they
were (the audit still balances, balances and movements unchanged)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient
from sqlalchemy import JSON, Column, Engine, Integer, MetaData, String, Table, Text, func, inspect, select

from prevenance.app import create_app
from prevenance.common.auth import ApiKey, create_key
from prevenance.common.clock import FrozenClock
from prevenance.console import users
from prevenance.console.tables import ConsoleUser
from prevenance.customers.tables import Member
from prevenance.db import read_session, unit_of_work
from prevenance.desk.tables import Contact, IncidentNotice
from prevenance.loyalty import ledger
from prevenance.maintenance import run_once
from prevenance.metadata import UNMODELLED_PREFIX, metadata
from prevenance.views import privacy
from prevenance.views.privacy import router as privacy_router
from prevenance.voice import service as voice
from prevenance.voice.tables import Answer, Invitation, Suggestion
from tests.conftest import ROLES, Api, member_body, tx_body
from tests.integration.console.support import PASSWORD, sign_in
from tests.integration.desk.test_contacts_contract import contact_body
from tests.integration.desk.test_incidents import incident
from tests.integration.voice.conftest import add_member, log_contact
from tests.smtp_server import running_smtp


@pytest.fixture
def papi(engine: Engine, clock: FrozenClock) -> Iterator[Api]:
    keys: dict[str, str] = {}
    with unit_of_work(engine) as session:
        for role in ROLES:
            keys[role] = create_key(session, role=role, name=f"test-{role}", now=clock.now())[1]
    app = create_app(engine=engine, clock=clock)
    if not any(getattr(r, "path", "") == "/v1/members/{ref}/erase" for r in app.routes):
        app.include_router(privacy_router)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(client=client, keys=keys)


def _customer(api: Api) -> None:
    assert api.put("/v1/members/P1", member_body(product="platinum", city="Lyon")).status_code == 201
    api.put("/v1/members/P2", member_body(email="other@example.fr"))
    api.post("/v1/transactions", tx_body("T1", "P1", "250.00"), role="integrator")
    api.post("/v1/transactions", tx_body("T2", "P1", "80.00"), role="integrator")
    api.post("/v1/transactions/T2/refunds", {"id": "RF1", "amount": "20.00"}, role="integrator")
    api.post("/v1/contacts", contact_body("C1", member_ref="P1", notes="Lives at 3 rue X, calls at night"))
    api.put("/v1/members/P1/tastes", {"notes": "Allergic to nuts", "likes": ["jazz"], "dislikes": []})
    request = {
        "id": "Q1",
        "category": "restaurant",
        "title": "Anniversary dinner for Camille",
        "city": "Lyon",
        "country": "FR",
        "due_at": "2026-01-02T20:00:00Z",
    }
    api.post("/v1/members/P1/concierge-requests", request, role="concierge")
    api.post("/v1/concierge-requests/Q1/status", {"status": "in_progress"}, role="concierge")
    solved = {"status": "solved", "partner": "bocuse", "solution": "Table by the window at Bocuse"}
    assert api.post("/v1/concierge-requests/Q1/status", solved, role="concierge").status_code == 200
    replacement = {"id": "R1", "city": "Lyon", "country": "FR", "address": "3 rue X, Lyon"}
    api.post("/v1/members/P1/card-replacements", replacement, role="agent")


def test_export_holds_every_table_about_the_customer(papi: Api) -> None:
    _customer(papi)
    response = papi.get("/v1/members/P1/export", role="supervisor")
    assert response.status_code == 200, response.text
    export = response.json()
    assert export["member"]["email"] == "camille@example.fr" and export["member"]["city"] == "Lyon"
    tables = export["tables"]
    assert {"card_transactions", "accounts", "desk_contacts", "desk_member_tastes"} <= set(tables)
    assert {row["id"] for row in tables["card_transactions"]} == {"T1", "T2"}
    assert tables["desk_card_replacements"][0]["address"] == "3 rue X, Lyon"
    assert tables["desk_concierge_requests"][0]["title"] == "Anniversary dinner for Camille"
    # Staff notes, the concierge's file, partners and costs are not the export's (docs/authorization.md).
    assert "notes" not in tables["desk_contacts"][0] and "agent" not in tables["desk_contacts"][0]
    assert set(tables["desk_member_tastes"][0]) == {"member_id", "updated_at"}
    assert not {"partner", "cost", "solution", "requested_by"} & set(tables["desk_concierge_requests"][0])
    for staff_only in ("Lives at", "Allergic", "jazz", "bocuse", "Bocuse"):
        assert staff_only not in response.text, staff_only
    assert papi.get("/v1/members/P1/export", role="agent").status_code == 403
    assert papi.get("/v1/members/NOBODY/export", role="admin").status_code == 404


def test_erase_keeps_the_ledger_exactly_and_removes_personal_data(
    papi: Api, engine: Engine, clock: FrozenClock
) -> None:
    _customer(papi)
    with unit_of_work(engine) as session:
        member_key = create_key(session, role="member", name="p1", member_ref="P1", now=clock.now())[1]
    balance = papi.get("/v1/members/P1/balance").json()
    movements = papi.get("/v1/members/P1/movements?limit=50").json()["items"]
    assert papi.post("/v1/members/P1/erase", role="supervisor").status_code == 403
    erased = papi.post("/v1/members/P1/erase")
    assert erased.status_code == 200, erased.text
    alias = erased.json()["member_ref"]
    assert alias.startswith("erased-") and alias != "P1"
    assert papi.get("/v1/members/P1").status_code == 404
    profile = papi.get(f"/v1/members/{alias}").json()
    assert (profile["name"], profile["city"]) == ("Erased customer", None)
    assert "camille" not in profile["email"]
    assert papi.get(f"/v1/members/{alias}/balance").json()["points"] == balance["points"]
    after = papi.get(f"/v1/members/{alias}/movements?limit=50").json()["items"]
    assert [(m["amount"], m["reference"]) for m in after] == [
        (m["amount"], m["reference"]) for m in movements
    ]
    with read_session(engine) as session:
        assert ledger.audit(session)["ok"]
        assert session.scalars(select(Contact.notes).where(Contact.id == "C1")).one() == ""
    tastes = papi.get(f"/v1/members/{alias}/tastes", role="concierge").json()
    assert tastes["notes"] == "" and tastes["likes"] == []
    found = papi.get("/v1/concierge-requests/search?q=Bocuse", role="concierge").json()
    assert found == []  # the solved request's words left the index
    dump = papi.get(f"/v1/members/{alias}/export", role="admin").text
    for secret in ("Camille", "rue X", "Allergic", "Anniversary", "camille@"):
        assert secret not in dump, secret
    revoked = papi.client.get(
        f"/v1/members/{alias}/balance", headers={"Authorization": f"Bearer {member_key}"}
    )
    assert revoked.status_code == 401  # the member's own key no longer opens anything
    again = papi.post("/v1/members/P1/erase")
    assert again.status_code == 200 and again.json()["member_ref"] == alias
    other = papi.get("/v1/members/P2").json()
    assert other["email"] == "other@example.fr"  # nobody else touched


# --- the export: an allow-list, never a credential, a hash or a staff-only field --------------------


def _portal_user(engine: Engine, clock: FrozenClock, username: str, ref: str) -> None:
    with unit_of_work(engine) as session:
        users.create_user(
            session,
            username=username,
            password=PASSWORD,
            role="member",
            language="fr",
            member_ref=ref,
            now=clock.now(),
        )


@pytest.fixture
def cheap_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Argon2 at its smallest cost: the same code path, without 0.2 s per hash."""
    monkeypatch.setattr(users, "_HASHER", PasswordHasher(time_cost=1, memory_cost=8, parallelism=1))


def test_the_export_carries_no_password_hash_key_digest_or_staff_note_for_a_supervisor_or_the_member(
    papi: Api, engine: Engine, clock: FrozenClock, cheap_argon2: None
) -> None:
    _customer(papi)
    _portal_user(engine, clock, "camille.p1", "P1")
    with unit_of_work(engine) as session:
        key, member_key = create_key(session, role="member", name="p1", member_ref="P1", now=clock.now())
        key_hash = key.key_hash
        password_hash = session.scalars(select(ConsoleUser.password_hash)).one()
    own = papi.client.get("/v1/members/P1/export", headers={"Authorization": f"Bearer {member_key}"})
    supervised = papi.get("/v1/members/P1/export", role="supervisor")
    for response in (own, supervised):
        assert response.status_code == 200, response.text
        sign_in = response.json()["tables"]["console_users"]
        assert [row["username"] for row in sign_in] == ["camille.p1"]  # the sign-in is theirs to know
        assert "password_hash" not in sign_in[0]
        for secret in (password_hash, "$argon2", key_hash, member_key, "Lives at", "Allergic", "Bocuse"):
            assert secret not in response.text, secret


def test_every_column_of_every_exported_table_is_exported_or_withheld_with_a_reason() -> None:
    assert privacy.unclassified_export_columns() == []
    assert all(
        verdict == privacy.EXPORTED or len(verdict) > len("withheld: ") + 10
        for columns in privacy.EXPORT.values()
        for verdict in columns.values()
    )
    # A column added later to any table about the member is refused until someone classifies it.
    grown = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(grown)
    grown.tables["desk_contacts"].append_column(Column("mood", String(20)))
    grown.tables["members"].append_column(Column("password_reset_token", String(64)))
    Table("desk_member_badges", grown, Column("member_id", Integer), Column("badge", String(20)))
    assert sorted(privacy.unclassified_export_columns(grown)) == [
        "desk_contacts.mood",
        "desk_member_badges.badge",
        "desk_member_badges.member_id",
        "members.password_reset_token",
    ]


# --- erasure: every text column classified; what the customer wrote goes ----------------------------


def test_every_text_column_of_every_table_is_erased_pseudonymised_or_kept_with_a_reason(
    engine: Engine,
) -> None:
    assert privacy.unclassified_text_columns() == []
    assert all(len(reason) > 10 for columns in privacy.KEPT.values() for reason in columns.values())
    # The migrated database holds no text column the metadata (and so the classification) lacks.
    inspector = inspect(engine)
    for table in inspector.get_table_names():
        if table.startswith(UNMODELLED_PREFIX) or table == "alembic_version":
            continue
        for column in inspector.get_columns(table):
            if isinstance(column["type"], String | JSON):
                classified = (
                    column["name"] in privacy.PERSONAL.get(table, {})
                    or column["name"] in privacy.KEPT.get(table, {})
                    or table in privacy.DELETED
                )
                assert classified, f"{table}.{column['name']}"
    # A text column added later, to any table, fails until it is classified.
    grown = MetaData()
    for table in metadata.sorted_tables:
        table.to_metadata(grown)
    grown.tables["voice_answers"].append_column(Column("follow_up", Text))
    grown.tables["catalogue_items"].append_column(Column("description", String(200)))
    assert sorted(privacy.unclassified_text_columns(grown)) == [
        "catalogue_items.description",
        "voice_answers.follow_up",
    ]


def _dump(engine: Engine, table: str) -> str:
    with read_session(engine) as session:
        rows = session.execute(select(metadata.tables[table])).mappings().all()
    return json.dumps([dict(row) for row in rows], default=str, ensure_ascii=False)


def test_erasure_blanks_what_the_member_wrote_and_every_copy_of_it(
    papi: Api, engine: Engine, clock: FrozenClock
) -> None:
    _customer(papi)
    papi.post(
        "/v1/members/P1/callbacks",
        {
            "id": "CB1",
            "phone": "+33612345678",
            "reason": "rewards.balance",
            "scheduled_for": "2026-01-01T12:00:00Z",
        },
        role="agent",
    )
    written = {
        "id": "S1",
        "member_ref": "P1",
        "answered_at": "2026-01-01T00:00:00Z",
        "channel": "phone",
        "agent": "alice",
        "team": "paris-1",
        "reason": "rewards.balance",
        "recommend": "3",
        "interaction": "2",
        "comment": "Mon conseiller Paul m'a raccroché au nez",
        "suggestion": "Rappelez-moi au 06 12 34 56 78",
        "language": "fr",
    }
    with unit_of_work(engine) as session:
        voice.import_answers(session, rows=[written], now=clock.now())
    referral = {"referrer_ref": "P1", "referee_ref": "P2"}
    assert papi.post("/v1/referrals", referral, headers={"Idempotency-Key": "ref-1"}).status_code == 201
    run_once(engine, clock)  # the outbox is delivered: its rows stay, holding copies of the bodies
    words = (
        "raccroché",
        "06 12 34 56 78",
        "Lives at",
        "3 rue X",
        "Anniversary",
        "Camille",
        "camille@",
        "+33612345678",
        "Bocuse",
    )
    assert any(word in _dump(engine, "outbox_events") for word in words)  # the test sees the copies
    assert any(word in _dump(engine, "idempotency_keys") for word in words)

    erased = papi.post("/v1/members/P1/erase")
    assert erased.status_code == 200, erased.text
    with read_session(engine) as session:
        answer = session.execute(select(Answer.comment, Answer.suggestion)).one()
        assert tuple(answer) == ("", "")
        assert session.scalars(select(Suggestion.text)).all() == [""]
    for table in (
        "voice_answers",
        "voice_suggestions",
        "outbox_events",
        "idempotency_keys",
        "desk_callbacks",
        "desk_contacts",
        "desk_card_replacements",
        "desk_concierge_requests",
    ):
        dump = _dump(engine, table)
        for word in words:
            assert word not in dump, (table, word)
        assert '"P1"' not in dump and "'P1'" not in dump, table
    alias = erased.json()["member_ref"]
    again = papi.post("/v1/members/P1/erase")  # idempotent: the same answer, nothing left to change
    assert again.status_code == 200 and again.json()["member_ref"] == alias
    assert papi.get(f"/v1/members/{alias}/balance").json()["points"] > 0


# --- erasure: no sign-in, key or cookie outlives the member, even when its ref comes back ------------


def test_after_erasure_a_reused_ref_is_reachable_by_no_old_cookie_key_or_password(
    papi: Api, engine: Engine, clock: FrozenClock, cheap_argon2: None
) -> None:
    _customer(papi)
    _portal_user(engine, clock, "camille@example.fr", "P1")
    with unit_of_work(engine) as session:
        member_key = create_key(
            session, role="member", name="Camille's phone", member_ref="P1", now=clock.now()
        )[1]
    portal = TestClient(papi.client.app, follow_redirects=False)
    assert sign_in(portal, "camille@example.fr", path="/portal/login").status_code == 303
    assert portal.get("/portal/").status_code == 200
    bearer = {"Authorization": f"Bearer {member_key}"}
    assert papi.client.get("/v1/members/P1/balance", headers=bearer).status_code == 200

    alias = papi.post("/v1/members/P1/erase").json()["member_ref"]
    # The issuer gives the ref to a new customer, who earns points.
    assert (
        papi.put("/v1/members/P1", member_body(name="Nouveau Client", email="new@example.fr")).status_code
        == 201
    )
    assert papi.post("/v1/transactions", tx_body("T9", "P1", "500.00"), role="integrator").status_code == 201

    old_cookie = portal.get("/portal/")
    assert old_cookie.status_code in (302, 303) and "login" in old_cookie.headers["location"]
    assert "Nouveau" not in old_cookie.text
    for path in ("/v1/members/P1/balance", "/v1/members/P1/360", "/v1/members/P1/export"):
        assert papi.client.get(path, headers=bearer).status_code == 401, path
    with read_session(engine) as session:
        user = session.scalars(select(ConsoleUser)).one()
        assert (user.disabled, user.member_ref) == (True, alias)
        assert "camille" not in user.username
        assert session.scalars(select(ApiKey.name).where(ApiKey.role == "member")).all() == [alias]
    for username in ("camille@example.fr", user.username):
        refused = sign_in(TestClient(papi.client.app, follow_redirects=False), username, path="/portal/login")
        assert refused.status_code == 401, username
    # The new customer is whole: their points, their record, nobody else's sign-in.
    assert papi.get("/v1/members/P1").json()["name"] == "Nouveau Client"
    assert papi.get("/v1/members/P1/balance").json()["points"] > 0


# --- erasure: the mail still owed to the member is cancelled -----------------------------------------


def test_erasure_cancels_the_pending_survey_invitations_and_incident_notices_of_the_member(
    papi: Api, engine: Engine, clock: FrozenClock
) -> None:
    add_member(papi, "M1")
    add_member(papi, "M2")
    log_contact(papi, "C1", "M1")
    log_contact(papi, "C2", "M2")
    assert papi.post("/v1/incidents", incident("INC1"), role="agent").status_code == 201
    run_once(engine, clock)  # no mail relay yet: the invitations and notices wait, pending
    with read_session(engine) as session:
        pending = session.execute(select(Invitation.member_id, Invitation.status)).all()
        assert [status for _, status in pending] == ["pending", "pending"]
        assert session.scalar(select(func.count()).where(IncidentNotice.status == "pending")) == 2

    assert papi.post("/v1/members/M1/erase").status_code == 200
    with read_session(engine) as session:
        erased = session.scalars(select(Member.id).where(Member.name == privacy.ERASED_NAME)).one()
        invitation = session.execute(
            select(Invitation.status, Invitation.skip_reason).where(Invitation.member_id == erased)
        ).one()
        assert tuple(invitation) == ("skipped", "erased")
        assert (
            session.scalars(
                select(IncidentNotice.id).where(
                    IncidentNotice.member_id == erased, IncidentNotice.status == "pending"
                )
            ).all()
            == []
        )
    with running_smtp() as smtp:
        run_once(engine, clock, smtp_url=smtp.url)
        recipients = sorted(str(message["To"]) for message in smtp.inbox.take())
        assert recipients == ["m2@example.org", "m2@example.org"]  # the notice and the invitation, M2's only

        # Nor does anything queued after the erasure reach them: an update of the incident they were
        # told of, a new incident matching their card, a contact logged before the erasure whose
        # event is delivered after it.
        log_contact(papi, "C3", "M2")
        add_member(papi, "M3")
        log_contact(papi, "C4", "M3")
        assert papi.post("/v1/members/M3/erase").status_code == 200
        update = {"id": "U1", "body_fr": "Toujours en cours.", "body_en": "Still ongoing."}
        assert papi.post("/v1/incidents/INC1/updates", update, role="agent").status_code == 201
        assert papi.post("/v1/incidents", incident("INC2"), role="agent").status_code == 201
        run_once(engine, clock, smtp_url=smtp.url)
        later = [str(message["To"]) for message in smtp.inbox.take()]
    assert later and all(to == "m2@example.org" for to in later), later
    assert papi.get("/v1/incidents/INC2", role="agent").json()["affected"] == 1


def test_an_erasure_without_the_consoles_eraser_registered_refuses_and_changes_nothing(
    papi: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    _customer(papi)
    monkeypatch.setattr(privacy, "_ERASERS", {})  # an entry point that forgot the wiring
    assert papi.post("/v1/members/P1/erase").status_code == 500
    with read_session(engine) as session:
        assert session.scalars(select(Member.ref).where(Member.ref == "P1")).one() == "P1"
    monkeypatch.undo()
    assert papi.post("/v1/members/P1/erase").status_code == 200
