"""The e-mail screens: triage queue (link, discard with a reason), a case's thread with the reply
form, in French and English; HTML shown sanitised, attachments downloaded."""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy import Engine

from prevenance.common.clock import FrozenClock
from prevenance.db import read_session, unit_of_work
from prevenance.desk.mail_in import service as mail
from prevenance.desk.mail_in.tables import MailMessage
from tests.conftest import Api
from tests.integration.console.support import browser, csrf_of, key_of, make_user, sign_in

DESK = frozenset({"service@prevenance.example"})


def deliver(engine: Engine, clock: FrozenClock, *, sender: str, subject: str, html: str | None = None) -> str:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = "service@prevenance.example"
    message["Subject"] = subject
    message["Message-ID"] = f"<{subject.replace(' ', '-')}@example.com>"
    if html is None:
        message.set_content("Bonjour, une question.")
    else:
        message.set_content(html, subtype="html")
    message.add_attachment(b"PDF", maintype="application", subtype="pdf", filename="facture.pdf")
    with unit_of_work(engine) as session:
        received = mail.receive(
            session,
            raw=message.as_bytes(),
            envelope_sender=sender,
            our_addresses=DESK,
            attachment_max_bytes=1000,
            model=None,
            now=clock.now(),
        )
    return received.id


def test_triage_link_discard_and_reply_from_the_console(api: Api, engine: Engine, clock: FrozenClock) -> None:
    api.put(
        "/v1/members/M1",
        {
            "name": "Camille Martin",
            "email": "camille@example.fr",
            "language": "fr",
            "country": "FR",
            "product": "gold",
        },
    )
    make_user(engine, clock, "agent1", "agent")
    make_user(engine, clock, "agent-en", "agent", language="en")
    make_user(engine, clock, "mkt1", "marketing")
    first = deliver(
        engine,
        clock,
        sender="stranger@example.com",
        subject="Question",
        html='<p>Hello <img src="https://tracker.example/p.gif"><script>x()</script></p>',
    )
    spam = deliver(engine, clock, sender="spam@example.com", subject="Win big")

    marketer = browser(api)
    sign_in(marketer, "mkt1")
    assert marketer.get("/console/mail").status_code == 403

    agent = browser(api)
    sign_in(agent, "agent1")
    page = agent.get("/console/mail")
    assert page.status_code == 200 and "À trier" in page.text and 'href="/console/mail"' in page.text
    assert "tracker.example" not in page.text and "x()" not in page.text and "Hello" in page.text
    assert f"/console/mail/{first}/attachments/0" in page.text
    download = agent.get(f"/console/mail/{first}/attachments/0")
    assert download.content == b"PDF" and download.headers["content-disposition"].startswith("attachment")

    csrf = csrf_of(page.text)
    refused = agent.post(f"/console/mail/{spam}/discard", data={"csrf": csrf, "discard_reason": ""})
    assert refused.status_code == 422
    assert (
        agent.post(f"/console/mail/{spam}/discard", data={"csrf": csrf, "discard_reason": "spam"}).status_code
        == 303
    )
    unknown = agent.post(
        f"/console/mail/{first}/link", data={"csrf": csrf, "member_ref": "NOPE", "reason": ""}
    )
    assert unknown.status_code == 422
    linked = agent.post(
        f"/console/mail/{first}/link", data={"csrf": csrf, "member_ref": "M1", "reason": "account.details"}
    )
    assert linked.status_code == 303
    thread_url = linked.headers["location"].split("?")[0]
    thread = agent.get(linked.headers["location"])
    assert thread.status_code == 200 and "Fil de courriels du dossier" in thread.text
    assert "accusé de réception" in thread.text  # the acknowledgement queued in the thread

    key = key_of(thread.text, thread_url)
    form = {
        "csrf": csrf_of(thread.text),
        "key": key,
        "body": "Voici la réponse.",
        "reason": "account.details",
        "outcome": "resolved",
    }
    assert agent.post(thread_url, data=form).status_code == 303
    assert agent.post(thread_url, data=form).status_code == 303  # a double submit sends once
    after = agent.get(thread_url)
    assert after.text.count("Voici la réponse.") == 1 and "résolu" in after.text
    empty = agent.post(thread_url, data={**form, "key": "other", "body": " "})
    assert empty.status_code == 422

    english = browser(api)
    sign_in(english, "agent-en")
    assert "Nothing to triage." in english.get("/console/mail").text
    assert "Answer the member" in english.get(thread_url).text


def test_over_long_form_values_are_refused_not_a_500(api: Api, engine: Engine, clock: FrozenClock) -> None:
    """The console's forms pass no request model: a discard reason over its 500-character column and
    a reply key over the 40 characters of the message row it names were a 500 on PostgreSQL."""
    api.put(
        "/v1/members/M1",
        {
            "name": "Camille Martin",
            "email": "camille@example.fr",
            "language": "fr",
            "country": "FR",
            "product": "gold",
        },
    )
    make_user(engine, clock, "agent1", "agent")
    spam = deliver(engine, clock, sender="spam@example.com", subject="Win big")
    mine = deliver(engine, clock, sender="camille@example.fr", subject="Question")
    agent = browser(api)
    sign_in(agent, "agent1")
    csrf = csrf_of(agent.get("/console/mail").text)
    long_reason = agent.post(
        f"/console/mail/{spam}/discard", data={"csrf": csrf, "discard_reason": "x" * 501}
    )
    assert long_reason.status_code == 422
    with read_session(engine) as session:
        case_id = session.get(MailMessage, mine).case_id
    thread_url = f"/console/cases/{case_id}/mail"
    form = {"csrf": csrf, "key": "k" * 41, "body": "Voici la réponse.", "outcome": "pending"}
    long_key = agent.post(thread_url, data=form)
    assert long_key.status_code == 422
    assert agent.post(thread_url, data={**form, "key": "k" * 40}).status_code == 303
