"""The two mail queues (incident notices, survey invitations) against a real SMTP server that refuses
some recipients: values that would break a header are refused at the door; a permanent refusal
(5xx) fails that one message with the relay's answer; a temporary one (4xx, no connection) is
retried with back-off; nothing queued behind a bad message waits for it; ``/metrics`` counts it all."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine, select, update

from prevenance.common import mail
from prevenance.common.clock import FrozenClock
from prevenance.common.metrics import MAIL_MESSAGES
from prevenance.customers.tables import Member
from prevenance.db import read_session, unit_of_work
from prevenance.desk import incidents
from prevenance.desk.tables import Communication, IncidentNotice
from prevenance.maintenance import run_once
from prevenance.voice import invitations
from prevenance.voice.tables import Invitation
from tests.conftest import Api, member_body
from tests.integration.voice.conftest import log_contact
from tests.smtp_server import Smtp, running_smtp

PROBLEM = "application/problem+json"
GONE = "550 5.1.1 <gone@example.fr>: Recipient address rejected: User unknown"
GREYLISTED = "451 4.7.1 <later@example.fr>: Greylisted, try again later"
REJECTED = "554 5.7.1 Message refused as spam"


@pytest.fixture
def smtp() -> Iterator[Smtp]:
    """A real SMTP server on a free local port, collecting what it is sent."""
    with running_smtp() as server:
        yield server


def add_members(api: Api, *emails: str) -> None:
    """Members M1, M2 … in that order (so their notices queue in that order), French gold cards."""
    for number, email in enumerate(emails, start=1):
        response = api.put(f"/v1/members/M{number}", member_body(email=email))
        assert response.status_code == 201, response.text


def declare(api: Api, incident_id: str = "INC1", **overrides: Any) -> Any:
    body: dict[str, Any] = {
        "id": incident_id,
        "title_fr": "Paiements refusés",
        "title_en": "Payments declined",
        "body_fr": "Certains paiements sont refusés depuis ce matin.",
        "body_en": "Some payments have been declined since this morning.",
        "since": "2025-12-31T08:00:00Z",
        "affects": {"products": ["gold"]},
    }
    body.update(overrides)
    return api.post("/v1/incidents", body, role="supervisor")


def notices(engine: Engine) -> dict[str, IncidentNotice]:
    """Every notice by its member's e-mail address."""
    with read_session(engine) as session:
        rows = session.execute(
            select(Member.email, IncidentNotice).join(Member, Member.id == IncidentNotice.member_id)
        ).all()
    return {email: notice for email, notice in rows}


def mail_metric(api: Api, name: str, **labels: str) -> float:
    """One sample of ``/metrics`` (0 when absent)."""
    for family in text_string_to_metric_families(api.client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and sample.labels == labels:
                return float(sample.value)
    return 0.0


def sent_count(api: Api, kind: str, outcome: str) -> float:
    return mail_metric(api, f"{MAIL_MESSAGES}_total", kind=kind, outcome=outcome)


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# --- the door ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("title_en", "Payments declined\r\nBcc: everyone@example.org"),
        ("title_fr", "Paiements\nrefusés"),
        ("title_en", "Payments\u2028declined"),
        ("title_fr", "Paiements\x00refusés"),
    ],
)
def test_an_incident_title_that_would_break_the_subject_header_is_refused_naming_the_field(
    api: Api, engine: Engine, field: str, value: str
) -> None:
    add_members(api, "m1@example.fr")
    response = declare(api, **{field: value})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["field"] == field
    assert api.get("/v1/incidents/INC1", role="supervisor").status_code == 404
    assert notices(engine) == {}
    assert declare(api, title_en="Payments declined — card 💳 «FR»").status_code == 201


def test_the_incident_service_refuses_a_header_breaking_title_whoever_calls_it(
    engine: Engine, clock: FrozenClock
) -> None:
    from prevenance.common.problems import InvalidInput

    data = incidents.IncidentInput(
        id="INC1",
        title_fr="ok",
        title_en="a\r\nBcc: x@example.org",
        body_fr="b",
        body_en="b",
        since=clock.now(),
    )
    with pytest.raises(InvalidInput) as refused, unit_of_work(engine) as session:
        incidents.declare(session, incident=data, affected=lambda _: [], by="ops", now=clock.now())
    assert refused.value.field == "title_en"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("name", "Camille\r\nBcc: everyone@example.org"),
        ("name", "Camille\tMartin"),
        ("email", "camille@example.fr\r\nBcc: everyone@example.org"),
        ("email", "camille@example.fr\n"),
        ("email", "camille@example.fr, everyone@example.org"),
        ("email", "camille@example.fr,everyone@example.org"),
        ("email", "Camille <camille@example.fr>"),
        ("email", "camille@example.fr;everyone@example.org"),
    ],
)
def test_a_member_name_or_address_that_would_break_a_mail_header_is_refused_naming_the_field(
    api: Api, field: str, value: str
) -> None:
    response = api.put("/v1/members/M1", member_body(**{field: value}))
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM)
    assert response.json()["field"] == field
    assert api.get("/v1/members/M1").status_code == 404


def test_a_communication_subject_with_a_line_break_is_refused(api: Api) -> None:
    add_members(api, "m1@example.fr")
    body = {
        "id": "N1",
        "member_ref": "M1",
        "template": "monthly-statement",
        "channel": "email",
        "language": "fr",
        "sent_at": "2026-01-02T08:00:00Z",
        "subject": "Votre relevé\r\nBcc: everyone@example.org",
    }
    response = api.post("/v1/communications", body, role="integrator")
    assert (response.status_code, response.json()["field"]) == (422, "subject"), response.text
    assert api.get("/v1/members/M1/communications", role="agent").json()["items"] == []


# --- permanent refusals -------------------------------------------------------------------------------


def test_a_notice_refused_for_good_is_marked_failed_and_the_notices_behind_it_go_in_the_same_run(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    add_members(api, "gone@example.fr", "m2@example.fr", "m3@example.fr")
    assert declare(api).status_code == 201
    queued = notices(engine)
    assert sorted(queued, key=lambda email: queued[email].id)[0] == "gone@example.fr"  # first in line
    smtp.inbox.refuse["gone@example.fr"] = GONE
    before = {outcome: sent_count(api, "incident_notice", outcome) for outcome in ("sent", "failed")}

    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 2

    assert sorted(str(m["To"]) for m in smtp.inbox.take()) == ["m2@example.fr", "m3@example.fr"]
    bad = notices(engine)["gone@example.fr"]
    assert (bad.status, bad.attempts, bad.last_error, bad.next_attempt_at) == ("failed", 1, GONE, None)
    assert bad.last_attempt_at == clock.now() and bad.sent_at is None
    assert {notices(engine)[e].status for e in ("m2@example.fr", "m3@example.fr")} == {"sent"}
    # Never tried again, and the queue has nothing left to do.
    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now() + timedelta(days=1)) == 0
    assert smtp.inbox.refused == [("gone@example.fr", GONE)]
    with read_session(engine) as session:
        assert incidents.count_pending(session) == 0
        assert incidents.count_failed(session) == 1
    assert sent_count(api, "incident_notice", "failed") - before["failed"] == 1
    assert sent_count(api, "incident_notice", "sent") - before["sent"] == 2
    assert mail_metric(api, "prevenance_mail_failed_messages") == 1


def test_a_message_refused_after_its_data_is_marked_failed_too(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    add_members(api, "spam@example.fr", "m2@example.fr")
    assert declare(api).status_code == 201
    smtp.inbox.refuse_data["spam@example.fr"] = REJECTED

    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 1

    assert [str(m["To"]) for m in smtp.inbox.take()] == ["m2@example.fr"]
    bad = notices(engine)["spam@example.fr"]
    assert (bad.status, bad.attempts, bad.last_error) == ("failed", 1, REJECTED)


def test_a_notice_queued_with_a_line_break_in_its_subject_goes_out_on_one_line_with_no_extra_header(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    """Rows queued before titles were checked at the door: the builder folds them, never raises."""
    add_members(api, "m1@example.fr", "m2@example.fr")
    assert declare(api).status_code == 201
    with unit_of_work(engine) as session:
        session.execute(
            update(IncidentNotice).values(subject="Incident : Paiements\r\nBcc: everyone@example.org")
        )

    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 2

    mails = smtp.inbox.take()
    assert sorted(str(m["To"]) for m in mails) == ["m1@example.fr", "m2@example.fr"]
    assert {str(m["Subject"]) for m in mails} == {"Incident : Paiements Bcc: everyone@example.org"}
    assert all(m["Bcc"] is None for m in mails)


def test_a_stored_address_that_is_not_one_mailbox_fails_its_notice_and_the_others_are_sent(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    """An address written before the door checked it is never cleaned into someone else's."""
    add_members(api, "m1@example.fr", "m2@example.fr", "m3@example.fr")
    assert declare(api).status_code == 201
    with unit_of_work(engine) as session:
        session.execute(
            update(Member).where(Member.ref == "M1").values(email="m1@example.fr,everyone@example.org")
        )

    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 2

    assert sorted(str(m["To"]) for m in smtp.inbox.take()) == ["m2@example.fr", "m3@example.fr"]
    bad = notices(engine)["m1@example.fr,everyone@example.org"]
    assert bad.status == "failed" and (bad.last_error or "").startswith("unsendable")


# --- temporary failures ---------------------------------------------------------------------------------


def test_a_temporary_refusal_is_retried_with_growing_back_off_without_holding_up_the_others(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    add_members(api, "later@example.fr", "m2@example.fr")
    assert declare(api).status_code == 201
    smtp.inbox.refuse["later@example.fr"] = GREYLISTED
    retried = sent_count(api, "incident_notice", "retry")
    start = clock.now()

    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=start) == 1
    assert [str(m["To"]) for m in smtp.inbox.take()] == ["m2@example.fr"]
    waiting = notices(engine)["later@example.fr"]
    assert (waiting.status, waiting.attempts, waiting.last_error) == ("pending", 1, GREYLISTED)
    assert waiting.next_attempt_at == start + timedelta(minutes=1)

    # Not due yet: not tried.
    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=start + timedelta(seconds=59)) == 0
    assert len(smtp.inbox.refused) == 1
    # Due: tried again, refused again, and the wait doubles.
    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=start + timedelta(minutes=1)) == 0
    waiting = notices(engine)["later@example.fr"]
    assert (waiting.attempts, waiting.next_attempt_at) == (2, start + timedelta(minutes=3))
    assert sent_count(api, "incident_notice", "retry") - retried == 2

    del smtp.inbox.refuse["later@example.fr"]
    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=start + timedelta(minutes=3)) == 1
    assert [str(m["To"]) for m in smtp.inbox.take()] == ["later@example.fr"]
    done = notices(engine)["later@example.fr"]
    assert (done.status, done.attempts, done.sent_at) == ("sent", 3, start + timedelta(minutes=3))
    with read_session(engine) as session:
        logged = session.scalars(select(Communication.id)).all()
    assert sorted(logged) == sorted(incidents.dedup_key(n.id) for n in notices(engine).values())


def test_a_relay_that_closes_the_connection_on_one_recipient_still_takes_the_next_ones(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    add_members(api, "busy@example.fr", "m2@example.fr", "m3@example.fr")
    assert declare(api).status_code == 201
    smtp.inbox.refuse["busy@example.fr"] = "421 4.3.2 Service shutting down, closing channel"

    assert incidents.send_pending_notices(engine, smtp_url=smtp.url, now=clock.now()) == 2

    assert sorted(str(m["To"]) for m in smtp.inbox.take()) == ["m2@example.fr", "m3@example.fr"]
    busy = notices(engine)["busy@example.fr"]
    assert (busy.status, busy.attempts) == ("pending", 1)
    assert (busy.last_error or "").startswith("421 4.3.2")


def test_a_message_that_keeps_failing_temporarily_is_given_up_after_the_last_attempt(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    add_members(api, "later@example.fr")
    assert declare(api).status_code == 201
    smtp.inbox.refuse["later@example.fr"] = GREYLISTED
    moment = clock.now()
    for attempt in range(1, mail.MAX_ATTEMPTS):
        incidents.send_pending_notices(engine, smtp_url=smtp.url, now=moment)
        waiting = notices(engine)["later@example.fr"]
        assert (waiting.status, waiting.attempts) == ("pending", attempt)
        assert waiting.next_attempt_at is not None
        assert waiting.next_attempt_at - moment == min(timedelta(minutes=2 ** (attempt - 1)), mail.RETRY_CAP)
        moment = waiting.next_attempt_at
    incidents.send_pending_notices(engine, smtp_url=smtp.url, now=moment)
    given_up = notices(engine)["later@example.fr"]
    assert (given_up.status, given_up.attempts, given_up.last_error) == (
        "failed",
        mail.MAX_ATTEMPTS,
        GREYLISTED,
    )
    assert len(smtp.inbox.refused) == mail.MAX_ATTEMPTS
    assert moment - clock.now() < timedelta(days=1, hours=1)  # the documented "about a day"


def test_an_unreachable_relay_backs_off_the_notice_in_hand_and_raises_nothing(
    api: Api, engine: Engine, clock: FrozenClock
) -> None:
    add_members(api, "m1@example.fr", "m2@example.fr")
    assert declare(api).status_code == 201
    start = clock.now()

    assert (
        incidents.send_pending_notices(engine, smtp_url=f"smtp://127.0.0.1:{closed_port()}", now=start) == 0
    )

    first, second = notices(engine)["m1@example.fr"], notices(engine)["m2@example.fr"]
    assert (first.status, first.attempts, first.next_attempt_at) == (
        "pending",
        1,
        start + timedelta(minutes=1),
    )
    assert "ConnectionRefused" in (first.last_error or "")
    assert (second.status, second.attempts) == ("pending", 0)  # the pass stopped: the relay is down
    with running_smtp() as server:
        assert incidents.send_pending_notices(engine, smtp_url=server.url, now=start) == 1
        assert (
            incidents.send_pending_notices(engine, smtp_url=server.url, now=start + timedelta(minutes=1)) == 1
        )
        assert sorted(str(m["To"]) for m in server.inbox.take()) == ["m1@example.fr", "m2@example.fr"]


# --- survey invitations, through the maintenance pass ---------------------------------------------------


def invitation_of(engine: Engine, contact_id: str) -> Invitation:
    with read_session(engine) as session:
        return session.scalars(select(Invitation).where(Invitation.contact_id == contact_id)).one()


def test_survey_invitations_the_relay_refuses_do_not_hold_up_the_others(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    add_members(
        api, "gone@example.fr", "m2@example.fr", "m3@example.fr", "spam@example.fr", "later@example.fr"
    )
    for number in range(1, 6):
        log_contact(api, f"C{number}", f"M{number}")
    smtp.inbox.refuse.update({"gone@example.fr": GONE, "later@example.fr": GREYLISTED})
    smtp.inbox.refuse_data["spam@example.fr"] = REJECTED
    before = {o: sent_count(api, "survey_invitation", o) for o in ("sent", "failed", "retry")}

    done = run_once(engine, clock, smtp_url=smtp.url)

    assert done["invitations_sent"] == 2
    assert sorted(str(m["To"]) for m in smtp.inbox.take()) == ["m2@example.fr", "m3@example.fr"]
    gone, spam, later = (invitation_of(engine, c) for c in ("C1", "C4", "C5"))
    assert (gone.status, gone.attempts, gone.last_error) == ("failed", 1, GONE)
    assert (spam.status, spam.attempts, spam.last_error) == ("failed", 1, REJECTED)
    assert (later.status, later.attempts, later.last_error) == ("pending", 1, GREYLISTED)
    assert later.next_attempt_at == clock.now() + timedelta(minutes=1)
    deltas = {o: sent_count(api, "survey_invitation", o) - before[o] for o in before}
    assert deltas == {"sent": 2, "failed": 2, "retry": 1}

    del smtp.inbox.refuse["later@example.fr"]
    clock.advance(timedelta(minutes=1))
    assert run_once(engine, clock, smtp_url=smtp.url)["invitations_sent"] == 1
    assert [str(m["To"]) for m in smtp.inbox.take()] == ["later@example.fr"]
    assert invitation_of(engine, "C5").status == "sent"
    with read_session(engine) as session:
        assert invitations.count_unsent(session) == {"pending": 0, "failed": 2}


def test_metrics_expose_the_mail_counter_and_the_failed_mail_gauge(api: Api) -> None:
    text = api.client.get("/metrics").text
    assert f"# TYPE {MAIL_MESSAGES}_total counter" in text
    assert "prevenance_mail_failed_messages 0.0" in text


def test_erasing_a_member_clears_the_relay_answers_that_quote_their_address(
    api: Api, engine: Engine, clock: FrozenClock, smtp: Smtp
) -> None:
    add_members(api, "gone@example.fr")
    assert declare(api).status_code == 201
    log_contact(api, "C1", "M1")
    smtp.inbox.refuse["gone@example.fr"] = GONE
    run_once(engine, clock, smtp_url=smtp.url)
    assert invitation_of(engine, "C1").last_error == GONE
    assert notices(engine)["gone@example.fr"].last_error == GONE

    assert api.post("/v1/members/M1/erase").status_code == 200

    with read_session(engine) as session:
        left = [
            *session.scalars(select(IncidentNotice.last_error)),
            *session.scalars(select(Invitation.last_error)),
        ]
    assert left == [None, None]
