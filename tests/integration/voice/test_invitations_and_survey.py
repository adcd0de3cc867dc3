"""A closed contact becomes a survey invitation (sampling, cap, opt-out), mailed through SMTP in the
member's language with a signed link that works once; the survey page records the answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, event, func, select
from sqlalchemy.orm import Session

from prevenance.common.clock import FrozenClock
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session, unit_of_work
from prevenance.desk.tables import Communication
from prevenance.maintenance import run_once
from prevenance.settings import Settings
from prevenance.voice import invitations, rules, service
from prevenance.voice.tables import Answer, Invitation, Suggestion
from tests.conftest import Api
from tests.integration.voice.conftest import Smtp, add_member, link_path, log_contact

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def _count(engine: Engine, model: type) -> int:
    with read_session(engine) as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def test_every_closed_contact_is_invited_in_the_members_language_and_answered_once(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    add_member(api, "M1")  # French
    add_member(api, "M2", language="en", country="GB")
    log_contact(api, "C1", "M1")
    log_contact(api, "C2", "M2", channel="chat", agent="bob", team="london-1")

    done = run_once(engine, clock, smtp_url=smtp.url)
    assert done["invitations_sent"] == 2
    mails = {str(m["To"]): m for m in smtp.inbox.take()}
    assert set(mails) == {"m1@example.org", "m2@example.org"}
    assert mails["m1@example.org"]["Subject"] == "Votre avis sur notre échange"
    assert "téléphone" in mails["m1@example.org"].get_content()
    assert mails["m2@example.org"]["Subject"] == "How did we do?"
    assert "http://127.0.0.1:8000/survey/" in mails["m2@example.org"].get_content()
    assert mails["m1@example.org"]["Message-ID"] == invitations.message_id(
        invitations.invitation_id_for("C1")
    )
    # Nothing more to send, and a re-delivered event decides nothing new.
    assert run_once(engine, clock, smtp_url=smtp.url)["invitations_sent"] == 0
    with unit_of_work(engine) as session:
        event = session.scalars(select(OutboxEvent).where(OutboxEvent.type == "contact.closed")).first()
        assert event is not None
        invitations.on_contact_closed(session, event)
    assert _count(engine, Invitation) == 2
    # The front line sees the survey mail in the communications log.
    log = api.get("/v1/members/M1/communications", role="agent").json()["items"]
    assert [(c["kind"], c["template"], c["source"]) for c in log] == [
        ("survey", "survey-invitation", "survey-relay")
    ]

    path = link_path(mails["m1@example.org"])
    page = api.client.get(path)
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "Recommanderiez-vous" in page.text and "Excellent" in page.text and 'name="viewport"' in page.text
    english = api.client.get(path, params={"lang": "en"})
    assert "How likely are you to recommend" in english.text

    # A form without the required score comes back with the error next to the field; nothing written.
    faulty = api.client.post(path, data={"interaction": "5", "comment": "Très bien"})
    assert faulty.status_code == 422
    assert 'id="recommend-error"' in faulty.text and "Choisissez une note de 0 à 10." in faulty.text
    assert "Très bien" in faulty.text  # what was typed is kept
    out_of_range = api.client.post(path, data={"recommend": "11"})
    assert out_of_range.status_code == 422 and 'id="recommend-error"' in out_of_range.text
    assert _count(engine, Answer) == 0

    answered = api.client.post(
        path,
        data={
            "recommend": "9",
            "interaction": "5",
            "comment": "Conseiller très aimable mais attente trop longue",
            "suggestion": "Proposer un rappel automatique",
        },
    )
    assert answered.status_code == 200 and "Merci" in answered.text
    with read_session(engine) as session:
        answer = session.scalars(select(Answer)).one()
        assert (answer.contact_id, answer.agent, answer.team, answer.channel, answer.reason) == (
            "C1",
            "alice",
            "paris-1",
            "phone",
            "rewards.balance",
        )
        assert (answer.product, answer.country, answer.month, answer.recommend, answer.interaction) == (
            "gold",
            "FR",
            "2026-01",
            9,
            5,
        )
        assert session.scalars(select(Suggestion)).one().status == "new"
        types = session.scalars(select(OutboxEvent.type).where(OutboxEvent.type == "survey.answered")).all()
        assert types == ["survey.answered"]

    # The link works once: the second submission writes nothing and says so.
    again = api.client.post(path, data={"recommend": "3"})
    assert again.status_code == 409 and "déjà répondu" in again.text
    assert api.client.get(path).status_code == 409
    assert _count(engine, Answer) == 1

    with read_session(engine) as session:
        surveys = service.list_member_surveys(session, member_id=answer.member_id)
    assert [(s["contact_id"], s["recommend"]) for s in surveys] == [("C1", 9)]


def test_forged_and_expired_links_get_a_clear_page_and_write_nothing(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    add_member(api, "M1", language="en")
    log_contact(api, "C1", "M1")
    run_once(engine, clock, smtp_url=smtp.url)
    path = link_path(smtp.inbox.take()[0])

    forged = api.client.post(
        path[:-3] + ("aaa" if not path.endswith("aaa") else "bbb"), data={"recommend": "9"}
    )
    assert forged.status_code == 404 and "not valid" in forged.text
    other_secret = invitations.sign(
        invitations.invitation_id_for("C1"), secret="not-the-key", now=clock.now()
    )
    assert api.client.get(f"/survey/{other_secret}").status_code == 404
    assert api.client.get("/survey/garbage").status_code == 404

    clock.advance(timedelta(days=Settings().survey_link_max_age_days, seconds=1))
    expired = api.client.post(path, data={"recommend": "9"})
    assert expired.status_code == 410 and "expired" in expired.text
    assert api.client.get(path, params={"lang": "fr"}).text.count("expiré") >= 1
    assert _count(engine, Answer) == 0


def test_a_link_stamped_in_the_future_gets_the_invalid_page_and_writes_nothing(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    """Signed with the server's key but stamped a year ahead: without the check it would never
    expire. Refused like a forged link, answered or not."""
    add_member(api, "M1", language="en")
    log_contact(api, "C1", "M1")
    run_once(engine, clock, smtp_url=smtp.url)
    future = invitations.sign(
        invitations.invitation_id_for("C1"),
        secret=Settings().secret_key,
        now=clock.now() + timedelta(days=365),
    )
    assert api.client.get(f"/survey/{future}").status_code == 404
    posted = api.client.post(f"/survey/{future}", data={"recommend": "9"})
    assert posted.status_code == 404 and "not valid" in posted.text
    assert _count(engine, Answer) == 0


def test_opted_out_members_are_never_asked(api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp) -> None:
    add_member(api, "M1")
    add_member(api, "M2")
    optout = api.put("/v1/members/M1/survey-consent", {"opted_out": True}, role="agent")
    assert optout.status_code == 200 and optout.json()["opted_out"] is True
    assert api.put("/v1/members/M1/survey-consent", {"opted_out": True}, role="marketing").status_code == 403
    assert api.put("/v1/members/NOPE/survey-consent", {"opted_out": True}, role="agent").status_code == 404
    log_contact(api, "C1", "M1")
    log_contact(api, "C2", "M2")
    run_once(engine, clock, smtp_url=smtp.url)
    assert [str(m["To"]) for m in smtp.inbox.take()] == ["m2@example.org"]
    with read_session(engine) as session:
        decided = {i.contact_id: (i.status, i.skip_reason) for i in session.scalars(select(Invitation))}
        assert session.scalar(select(func.count()).select_from(Communication)) == 1
    assert decided == {"C1": ("skipped", "opted_out"), "C2": ("sent", None)}


def test_the_link_of_an_erased_member_records_nothing(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    """Erasure cancels the pending invitations, but a mail already sent keeps its signed link for
    ``survey_link_max_age_days``: opened after the erasure it must not store new free text (personal
    data) against the erased member, who is "never written to again". The page says the link is not
    valid, like a forged one, and nothing is written."""
    add_member(api, "M1")
    add_member(api, "M2")
    log_contact(api, "C1", "M1")
    log_contact(api, "C2", "M2")
    run_once(engine, clock, smtp_url=smtp.url)
    paths = {str(m["To"]): link_path(m) for m in smtp.inbox.take()}
    assert api.post("/v1/members/M1/erase", None).status_code == 200

    erased = paths["m1@example.org"]
    assert api.client.get(erased).status_code == 404
    posted = api.client.post(erased, data={"recommend": "2", "comment": "Jean Dupont, 06 12 34 56 78"})
    assert posted.status_code == 404 and "pas valable" in posted.text
    assert _count(engine, Answer) == 0
    with read_session(engine) as session:
        assert session.scalar(select(Invitation.answered_at).where(Invitation.contact_id == "C1")) is None
    # The other member's link still works.
    assert api.client.post(paths["m2@example.org"], data={"recommend": "9"}).status_code == 200
    assert _count(engine, Answer) == 1


def _cap_30_days(monkeypatch: pytest.MonkeyPatch) -> None:
    capped = rules.VoiceConfig(
        sampling=rules.Sampling(rate=1.0, cap_days=30),
        payout_grid=service.current_config().payout_grid,
        calibration_reference="FR",
        calibration_fallback={},
    )
    monkeypatch.setattr(service, "current_config", lambda: capped)


def test_the_cap_sends_one_survey_per_member_per_window(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    _cap_30_days(monkeypatch)
    add_member(api, "M1")
    start = datetime(2025, 11, 1, tzinfo=UTC)
    for day, contact in [(0, "C1"), (10, "C2"), (29, "C3"), (31, "C4"), (45, "C5")]:
        log_contact(api, contact, "M1", at=start + timedelta(days=day))
    run_once(engine, clock, smtp_url=smtp.url)
    with read_session(engine) as session:
        decided = {i.contact_id: i.status for i in session.scalars(select(Invitation))}
    assert decided == {"C1": "sent", "C2": "skipped", "C3": "skipped", "C4": "sent", "C5": "skipped"}
    assert len(smtp.inbox.take()) == 2


def _closed_events(session: Session) -> list[OutboxEvent]:
    return list(
        session.scalars(
            select(OutboxEvent).where(OutboxEvent.type == "contact.closed").order_by(OutboxEvent.id)
        )
    )


def test_a_run_decided_together_decides_as_one_event_at_a_time(
    api: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a cap, each contact of a run sees the decisions taken for the run's earlier contacts and
    those stored before; a contact decided before (an event delivered again) keeps its decision and
    still counts for the others."""
    _cap_30_days(monkeypatch)
    add_member(api, "M1")
    add_member(api, "M2")
    start = datetime(2025, 11, 1, tzinfo=UTC)
    for day, contact, member in [
        (0, "C1", "M1"),
        (10, "C2", "M1"),
        (31, "C3", "M1"),
        (5, "D1", "M2"),
        (20, "D2", "M2"),
    ]:
        log_contact(api, contact, member, at=start + timedelta(days=day))
    with unit_of_work(engine) as session:
        events = _closed_events(session)
        invitations.on_contact_closed(session, events[1])  # C2 alone first: invited
    with unit_of_work(engine) as session:
        invitations.on_contacts_closed(session, _closed_events(session))  # C1, C2 again, C3, D1, D2
    with read_session(engine) as session:
        decided = {i.contact_id: (i.status, i.skip_reason) for i in session.scalars(select(Invitation))}
    # One at a time: C1 (day 0) has no earlier survey; C2 stays; C3 (day 31) is 21 days after C2;
    # D2 (day 20) is 15 days after D1, decided in the same run.
    assert decided == {
        "C1": ("pending", None),
        "C2": ("pending", None),
        "C3": ("skipped", "capped"),
        "D1": ("pending", None),
        "D2": ("skipped", "capped"),
    }


@pytest.mark.parametrize("capped", [False, True], ids=["no-cap", "cap"])
def test_a_run_of_closed_contacts_costs_the_same_statements_whatever_its_length(
    api: Api, engine: Engine, monkeypatch: pytest.MonkeyPatch, capped: bool
) -> None:
    if capped:
        _cap_30_days(monkeypatch)
    for i in range(12):
        add_member(api, f"M{i}")
        log_contact(api, f"C{i}", f"M{i}")
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    def statements_for(length: int) -> int:
        with unit_of_work(engine) as session:
            events = _closed_events(session)[:length]
            statements.clear()
            event.listen(engine, "before_cursor_execute", count)
            try:
                invitations.on_contacts_closed(session, events)
            finally:
                event.remove(engine, "before_cursor_execute", count)
            session.rollback()
        return len(statements)

    one, twelve = statements_for(1), statements_for(12)
    assert one == twelve
    assert twelve <= (5 if capped else 3)  # members, (lock, decisions,) consents, the insert


def test_a_member_key_sets_only_its_own_consent(api: Api, engine: Engine, clock: FrozenClock) -> None:
    from prevenance.common.auth import create_key

    add_member(api, "M1")
    add_member(api, "M2")
    with unit_of_work(engine) as session:
        _, secret = create_key(session, role="member", name="m1", member_ref="M1", now=clock.now())
    headers = {"Authorization": f"Bearer {secret}"}
    own = api.client.put("/v1/members/M1/survey-consent", json={"opted_out": True}, headers=headers)
    assert own.status_code == 200 and own.json()["opted_out"] is True
    other = api.client.put("/v1/members/M2/survey-consent", json={"opted_out": True}, headers=headers)
    assert other.status_code == 403
    back = api.client.put("/v1/members/M1/survey-consent", json={"opted_out": False}, headers=headers)
    assert back.json()["opted_out"] is False
    assert api.client.get("/v1/members/M2/survey-consent", headers=headers).status_code == 403
    assert api.get("/v1/members/M2/survey-consent", role="agent").json()["opted_out"] is False


def test_a_crash_after_sending_resends_the_same_message_id_and_logs_once(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp, monkeypatch: pytest.MonkeyPatch
) -> None:
    from prevenance.voice import repository

    add_member(api, "M1")
    log_contact(api, "C1", "M1")
    run_once(engine, clock)  # the event becomes a pending invitation; no SMTP yet
    assert smtp.inbox.take() == []

    real = repository.mark_invitation_sent

    def crash(*args: object, **kwargs: object) -> bool:
        raise RuntimeError("process died after the SMTP server accepted the mail")

    monkeypatch.setattr(repository, "mark_invitation_sent", crash)
    with pytest.raises(RuntimeError):
        invitations.send_pending_invitations(engine, smtp_url=smtp.url, now=clock.now())
    monkeypatch.setattr(repository, "mark_invitation_sent", real)
    assert invitations.send_pending_invitations(engine, smtp_url=smtp.url, now=clock.now()) == 1
    first, second = smtp.inbox.take()
    assert (
        first["Message-ID"]
        == second["Message-ID"]
        == invitations.message_id(invitations.invitation_id_for("C1"))
    )
    assert _count(engine, Communication) == 1
    with read_session(engine) as session:
        assert session.scalars(select(Invitation.status)).one() == "sent"


def test_survey_pages_are_rate_limited_per_address(engine: Engine, clock: FrozenClock) -> None:
    from fastapi.testclient import TestClient

    from prevenance.app import create_app
    from prevenance.settings import Settings

    app = create_app(Settings(rate_limit_survey="2/minute"), engine=engine, clock=clock)
    with TestClient(app) as client:
        # The page's stylesheet is not counted (every page view asks for it) and is not a token.
        for _ in range(3):
            css = client.get("/survey/static/survey.css")
            assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
            assert "max-age" in css.headers["cache-control"] and "content-security-policy" not in css.headers
        statuses = [client.get(f"/survey/forged-{i}?lang=en").status_code for i in range(3)]
        assert statuses == [404, 404, 429]  # a different forged link each time: still one address
        refused = client.post("/survey/forged-9", data={"recommend": "9"})
        assert refused.status_code == 429 and refused.headers["Retry-After"]
        assert "Too many requests" in refused.text and "Trop de demandes" in refused.text
