"""Inbound e-mail end to end: real SMTP clients (smtplib) talk to the listener started on a free
port, on SQLite and PostgreSQL; acknowledgements and answers leave through the relay to a second
real SMTP server."""

from __future__ import annotations

import json
import smtplib
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from prevenance.common.clock import FrozenClock
from prevenance.common.idempotency import IdempotencyKey
from prevenance.common.problems import PROBLEM_JSON
from prevenance.db import read_session
from prevenance.desk.mail_in import listener
from prevenance.desk.mail_in import relay as mail_relay
from prevenance.desk.mail_in.tables import MailAttachment, MailMessage
from prevenance.desk.tables import Case, Communication, Contact
from tests.conftest import Api, member_body
from tests.smtp_server import running_smtp

DESK = "service@prevenance.example"
MAX_BYTES = 200_000
ATTACHMENT_MAX = 10_000


@dataclass
class MailIn:
    host: str
    port: int
    handler: listener.MailInHandler

    def send(self, message: EmailMessage, *, sender: str | None = None, to: list[str] | None = None) -> Any:
        """Send like a mail server: one SMTP session; returns smtplib's refused-recipients dict."""
        with smtplib.SMTP(self.host, self.port, timeout=30) as client:
            return client.send_message(
                message, from_addr=sender if sender is not None else message["From"], to_addrs=to or [DESK]
            )


@pytest.fixture
def mail_in(engine: Engine, clock: FrozenClock) -> Iterator[MailIn]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    handler = listener.MailInHandler(
        engine=engine,
        clock=clock,
        config=listener.ListenerConfig(
            addresses=frozenset({DESK, "claims@prevenance.example"}),
            max_bytes=MAX_BYTES,
            attachment_max_bytes=ATTACHMENT_MAX,
        ),
    )
    smtp = listener.controller(handler, host="127.0.0.1", port=port)
    smtp.start()
    try:
        yield MailIn("127.0.0.1", port, handler)
    finally:
        smtp.stop()
        handler.close()


def message(
    *,
    sender: str = "camille@example.fr",
    subject: str = "Carte perdue",
    body: str = "J'ai perdu ma carte hier soir.",
    **headers: str,
) -> EmailMessage:
    mail = EmailMessage()
    mail["From"] = f"Camille <{sender}>"
    mail["To"] = DESK
    mail["Subject"] = subject
    mail["Message-ID"] = headers.pop("message_id", None) or make_msgid(domain="example.fr")
    for name, value in headers.items():
        mail[name.replace("_", "-")] = value
    mail.set_content(body)
    return mail


def rows(engine: Engine, **where: Any) -> list[MailMessage]:
    with read_session(engine) as session:
        statement = select(MailMessage).order_by(MailMessage.received_at, MailMessage.id)
        for name, value in where.items():
            statement = statement.where(getattr(MailMessage, name) == value)
        return list(session.scalars(statement))


def count(engine: Engine, table: Any) -> int:
    with read_session(engine) as session:
        return session.scalar(select(func.count()).select_from(table)) or 0


PAST = [
    ("card.lost_stolen", "Carte perdue, faire opposition"),
    ("card.lost_stolen", "Carte volée dans le métro, opposition"),
    ("card.lost_stolen", "perdu ma carte au restaurant"),
    ("statement.fees", "Frais de tenue de compte sur le relevé"),
    ("statement.fees", "Pourquoi ces frais annuels"),
    ("rewards.missing_points", "Points manquants sur mon dernier achat"),
    ("rewards.missing_points", "Mes points ne sont pas crédités"),
    ("travel.booking", "Réservation de vol à modifier"),
    ("travel.booking", "Annuler ma réservation hôtel"),
    ("account.details", "Changement d'adresse postale"),
]


def log_past_contacts(api: Api) -> None:
    """Past inbound contacts with notes: what the classifier learns from."""
    api.put("/v1/members/OLD", member_body(email="old@example.fr"))
    for number, (reason, notes) in enumerate(PAST):
        body = {
            "id": f"past-{number}",
            "member_ref": "OLD",
            "channel": "phone",
            "direction": "inbound",
            "agent": "a1",
            "team": "paris",
            "reason": reason,
            "started_at": "2025-12-01T10:00:00Z",
            "ended_at": "2025-12-01T10:05:00Z",
            "notes": notes,
            "outcome": "resolved",
        }
        assert api.post("/v1/contacts", body).status_code == 201


def test_a_member_writes_a_case_opens_acknowledged_once_and_replies_thread(
    api: Api, engine: Engine, clock: FrozenClock, mail_in: MailIn
) -> None:
    log_past_contacts(api)
    api.put("/v1/members/M1", member_body(email="Camille@Example.fr"))
    first = message()
    mail_in.send(first)
    [inbound] = rows(engine, direction="inbound")
    assert inbound.state == "filed" and inbound.case_id and inbound.contact_id == inbound.id
    case_id = inbound.case_id
    assert inbound.suggested_reason == "card.lost_stolen" and "perdu" in (inbound.suggestion_words or "")
    contact = api.get(f"/v1/contacts/{inbound.id}").json()
    assert (contact["channel"], contact["direction"], contact["member_ref"]) == ("email", "inbound", "M1")
    [ack] = rows(engine, direction="outbound")
    assert ack.kind == "acknowledgement" and ack.state == "pending" and ack.in_reply_to == first["Message-ID"]

    # The member answers the acknowledgement: same case, no second acknowledgement.
    clock.advance(timedelta(minutes=5))
    mail_in.send(message(subject=ack.subject, body="Et aussi", In_Reply_To=ack.message_id))
    # A client that drops the headers but keeps the token in the subject: same case.
    clock.advance(timedelta(minutes=5))
    mail_in.send(message(subject=f"Encore [#{case_id}]", body="Toujours rien"))
    inbound_rows = rows(engine, direction="inbound")
    assert [row.case_id for row in inbound_rows] == [case_id] * 3
    assert len(rows(engine, kind="acknowledgement")) == 1
    case = api.get(f"/v1/cases/{case_id}").json()
    assert case["contact_count"] == 3 and case["reason"] == "card.lost_stolen"

    # Another member's case token is not joined; a new matter opens its own case, acknowledged.
    api.put("/v1/members/M2", member_body(email="other@example.fr"))
    clock.advance(timedelta(minutes=5))
    mail_in.send(message(sender="other@example.fr", subject=f"Re: [#{case_id}]", body="Bonjour"))
    [other] = rows(engine, sender="other@example.fr")
    assert other.case_id != case_id and other.state == "filed"
    assert len(rows(engine, kind="acknowledgement")) == 2

    # The relay sends the acknowledgements in the member's language with the threading headers.
    with running_smtp() as relay:
        assert mail_relay.send_pending(engine, smtp_url=relay.url, now=clock.now()) == 2
        sent = {m["To"]: m for m in relay.inbox.take()}
    mail = sent["Camille@Example.fr"]
    assert mail["In-Reply-To"] == first["Message-ID"] and mail["References"] == first["Message-ID"]
    assert mail["Message-ID"] == ack.message_id and mail["Auto-Submitted"] == "auto-replied"
    assert f"[#{case_id}]" in mail["Subject"]
    text = mail.get_content()
    assert "Bonjour" in text and "2 heures" in text  # card.lost_stolen: 2 hours promised
    with read_session(engine) as session:
        assert session.scalar(select(func.count()).select_from(Communication)) == 2  # one per ack
    history = api.get("/v1/members/M1/360").json()
    assert any(c["channel"] == "email" for c in history["last_contacts"])
    assert any(c["template"] == "mail_in.acknowledgement" for c in history["communications"])


def test_the_same_message_delivered_twice_is_one_message_and_one_contact(
    api: Api, engine: Engine, mail_in: MailIn
) -> None:
    api.put("/v1/members/M1", member_body())
    mail = message()
    mail_in.send(mail)
    mail_in.send(mail)  # the sending server retried after losing our answer
    mail_in.send(mail, to=[DESK, "claims@prevenance.example"])  # one message to two of our addresses
    assert len(rows(engine, direction="inbound")) == 1
    assert count(engine, Contact) == 1 and count(engine, Case) == 1
    assert len(rows(engine, kind="acknowledgement")) == 1
    assert (mail_in.handler.stored, mail_in.handler.duplicates) == (1, 2)


def test_unknown_sender_waits_in_triage_until_linked_or_discarded(
    api: Api, engine: Engine, clock: FrozenClock, mail_in: MailIn
) -> None:
    api.put("/v1/members/M1", member_body())
    mail_in.send(message(sender="stranger@example.com", subject="Points manquants", body="Mes points?"))
    mail_in.send(message(sender="spam@example.com", subject="Win", body="Buy now"))
    queue = api.get("/v1/mail/messages?state=triage", role="agent").json()["items"]
    assert {item["sender"] for item in queue} == {"stranger@example.com", "spam@example.com"}
    assert count(engine, Contact) == 0 and rows(engine, direction="outbound") == []
    stranger = next(item for item in queue if item["sender"] == "stranger@example.com")
    spam = next(item for item in queue if item["sender"] == "spam@example.com")

    assert (
        api.post(
            f"/v1/mail/messages/{stranger['id']}/link", {"member_ref": "M1"}, role="marketing"
        ).status_code
        == 403
    )
    linked = api.post(
        f"/v1/mail/messages/{stranger['id']}/link",
        {"member_ref": "M1", "reason": "rewards.missing_points"},
        role="agent",
    )
    assert linked.status_code == 200, linked.text
    body = linked.json()
    assert body["state"] == "filed" and body["member_ref"] == "M1" and body["handled_by"] == "test-agent"
    case = api.get(f"/v1/cases/{body['case_id']}").json()
    assert case["reason"] == "rewards.missing_points" and case["contacts"][0]["channel"] == "email"
    assert len(rows(engine, kind="acknowledgement")) == 1
    again = api.post(f"/v1/mail/messages/{stranger['id']}/link", {"member_ref": "M1"}, role="agent")
    assert again.status_code == 200 and count(engine, Contact) == 1

    unknown = api.post(f"/v1/mail/messages/{spam['id']}/link", {"member_ref": "NOPE"}, role="agent")
    assert unknown.status_code == 422 and unknown.json()["field"] == "member_ref"
    assert (
        api.post(f"/v1/mail/messages/{spam['id']}/discard", {"reason": ""}, role="agent").status_code == 422
    )
    discarded = api.post(f"/v1/mail/messages/{spam['id']}/discard", {"reason": "spam"}, role="supervisor")
    assert discarded.status_code == 200 and discarded.json()["discard_reason"] == "spam"
    late = api.post(f"/v1/mail/messages/{spam['id']}/link", {"member_ref": "M1"}, role="agent")
    assert late.status_code == 409 and late.headers["content-type"].startswith("application/problem+json")
    refused = api.post(f"/v1/mail/messages/{stranger['id']}/discard", {"reason": "spam"}, role="agent")
    assert refused.status_code == 409
    assert api.get("/v1/mail/messages?state=triage", role="agent").json()["items"] == []
    assert api.get("/v1/mail/messages/nope", role="agent").status_code == 404


@pytest.mark.parametrize(
    ("headers", "envelope_sender", "why"),
    [
        ({"Auto_Submitted": "auto-replied"}, None, "auto-submitted"),
        ({"Precedence": "bulk"}, None, "precedence"),
        ({"Precedence": "list"}, None, "precedence"),
        ({"Return_Path": "<>"}, None, "null-return-path"),
        ({}, "", "null-sender"),
    ],
)
def test_automated_mail_never_opens_a_case_nor_an_acknowledgement(
    api: Api,
    engine: Engine,
    mail_in: MailIn,
    headers: dict[str, str],
    envelope_sender: str | None,
    why: str,
) -> None:
    api.put("/v1/members/M1", member_body())
    mail_in.send(message(subject="Absent du bureau", **headers), sender=envelope_sender)
    [row] = rows(engine)
    assert (row.state, row.kind, row.automated, row.case_id) == ("ignored", "automated", why, None)
    assert count(engine, Contact) == 0


def test_a_delivery_report_is_ignored(api: Api, engine: Engine, mail_in: MailIn) -> None:
    api.put("/v1/members/M1", member_body())
    report = (
        "From: camille@example.fr\r\nTo: service@prevenance.example\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <report-1@mx.example.fr>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n'
        "\r\n--B\r\nContent-Type: text/plain\r\n\r\nThe mail system could not deliver your message.\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.example.fr\r\n\r\n"
        "Final-Recipient: rfc822; x@example.fr\r\nAction: failed\r\nStatus: 5.1.1\r\n--B--\r\n"
    )
    with smtplib.SMTP(mail_in.host, mail_in.port, timeout=30) as client:
        client.sendmail("camille@example.fr", [DESK], report.encode())
    [row] = rows(engine)
    assert row.state == "ignored" and row.automated == "delivery-report"
    assert count(engine, Contact) == 0


def test_size_limit_and_unknown_recipients_are_refused_with_smtp_codes(
    engine: Engine, mail_in: MailIn
) -> None:
    big = message(body=("x" * 70 + "\n") * (MAX_BYTES // 70 + 10))
    with pytest.raises((smtplib.SMTPSenderRefused, smtplib.SMTPDataError)) as refused:
        mail_in.send(big)
    assert refused.value.smtp_code == 552
    # A client that does not announce the size is refused at the end of DATA, also with 552.
    with smtplib.SMTP(mail_in.host, mail_in.port, timeout=30) as client:
        client.helo("old.example")  # HELO: no ESMTP, so no SIZE parameter
        client.mail("camille@example.fr")
        client.rcpt(DESK)
        code, reply = client.data(big.as_bytes().replace(b"\n", b"\r\n"))
    assert code == 552, reply
    with pytest.raises(smtplib.SMTPRecipientsRefused) as nobody:
        mail_in.send(message(), to=["nobody@prevenance.example"])
    assert nobody.value.recipients["nobody@prevenance.example"][0] == 550
    assert rows(engine) == []


def test_html_is_sanitised_and_attachments_are_kept_under_the_cap(
    api: Api, engine: Engine, mail_in: MailIn
) -> None:
    mail = message(sender="stranger@example.com", body="Le texte brut.")
    mail.add_alternative(
        '<p onclick="steal()">Bonjour <b>là</b><script>alert(1)</script>'
        '<img src="https://tracker.example/pixel.gif"><a href="javascript:alert(2)">x</a>'
        '<a href="https://example.fr/doc">doc</a><style>p{}</style></p>',
        subtype="html",
    )
    mail.add_attachment(b"%PDF small", maintype="application", subtype="pdf", filename="releve.pdf")
    mail.add_attachment(b"x" * (ATTACHMENT_MAX + 1), maintype="image", subtype="png", filename="photo.png")
    mail_in.send(mail)
    [row] = rows(engine)
    read = api.get(f"/v1/mail/messages/{row.id}", role="agent").json()
    assert read["text"].strip() == "Le texte brut."
    html = read["html"]
    for banned in ("script", "onclick", "<img", "tracker.example", "javascript:", "<style"):
        assert banned not in html
    assert "<b>là</b>" in html and 'href="https://example.fr/doc"' in html and "noopener" in html
    assert [(a["filename"], a["kept"]) for a in read["attachments"]] == [
        ("releve.pdf", True),
        ("photo.png", False),
    ]
    assert read["attachments"][1]["size_bytes"] == ATTACHMENT_MAX + 1
    pdf = api.get(f"/v1/mail/messages/{row.id}/attachments/0", role="agent")
    assert pdf.status_code == 200 and pdf.content == b"%PDF small"
    assert pdf.headers["content-disposition"] == 'attachment; filename="releve.pdf"'
    assert api.get(f"/v1/mail/messages/{row.id}/attachments/1", role="agent").status_code == 404


def test_an_agent_answers_from_the_case_with_threading_headers(
    api: Api, engine: Engine, clock: FrozenClock, mail_in: MailIn
) -> None:
    api.put("/v1/members/M1", member_body(language="en", email="jo@example.uk", country="GB"))
    first = message(sender="jo@example.uk", subject="Statement question", body="A fee on my statement?")
    mail_in.send(first)
    [inbound] = rows(engine, direction="inbound")
    clock.advance(timedelta(hours=1))
    body = {"id": "R1", "body": "The fee is the yearly card fee.", "outcome": "resolved"}
    answered = api.post(f"/v1/cases/{inbound.case_id}/replies", body, role="agent")
    assert answered.status_code == 201, answered.text
    replay = api.post(f"/v1/cases/{inbound.case_id}/replies", body, role="agent")
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == answered.json()["id"]
    other = api.post(f"/v1/cases/{inbound.case_id}/replies", {**body, "body": "x"}, role="agent")
    assert other.status_code == 409
    assert api.post("/v1/cases/nope/replies", {**body, "id": "R2"}, role="agent").status_code == 404
    assert (
        api.post(f"/v1/cases/{inbound.case_id}/replies", {**body, "id": "R3"}, role="marketing").status_code
        == 403
    )
    case = api.get(f"/v1/cases/{inbound.case_id}").json()
    assert case["status"] == "resolved" and case["contacts"][-1]["direction"] == "outbound"

    with running_smtp() as relay:
        assert mail_relay.send_pending(engine, smtp_url=relay.url, now=clock.now()) == 2
        sent = {m["Message-ID"]: m for m in relay.inbox.take()}
    reply = sent[answered.json()["message_id"]]
    assert reply["In-Reply-To"] == first["Message-ID"]
    assert reply["References"] == first["Message-ID"]
    assert reply["Subject"] == f"Re: Statement question [#{inbound.case_id}]"
    assert "Auto-Submitted" not in reply
    ack = next(m for key, m in sent.items() if key != answered.json()["message_id"])
    assert "within" in ack.get_content()  # English acknowledgement

    # The member answers the answer: the case reopens, no new acknowledgement.
    clock.advance(timedelta(hours=1))
    mail_in.send(message(sender="jo@example.uk", subject=reply["Subject"], In_Reply_To=reply["Message-ID"]))
    assert api.get(f"/v1/cases/{inbound.case_id}").json()["status"] == "open"
    assert len(rows(engine, kind="acknowledgement")) == 1
    thread = api.get(f"/v1/cases/{inbound.case_id}/mail", role="agent").json()
    assert [m["kind"] for m in thread] == ["mail", "acknowledgement", "reply", "mail"]
    assert [m["state"] for m in thread][1:3] == ["sent", "sent"]


def test_erasure_blanks_the_members_mail_and_deletes_their_files(
    api: Api, engine: Engine, clock: FrozenClock, mail_in: MailIn
) -> None:
    api.put("/v1/members/M1", member_body())
    mail = message(body="Mon IBAN est FR76...")
    mail.add_attachment(b"secret", maintype="application", subtype="pdf", filename="rib.pdf")
    mail_in.send(mail)
    [row] = rows(engine, direction="inbound")
    answer = {"id": "RE-1", "body": "Bonjour Camille, votre IBAN FR76 est bien reçu."}
    assert api.post(f"/v1/cases/{row.case_id}/replies", answer, role="agent").status_code == 201
    erased = api.post("/v1/members/M1/erase")
    assert erased.status_code == 200, erased.text
    with read_session(engine) as session:  # the reply's stored answer keeps none of it
        stored = session.scalars(
            select(IdempotencyKey.response).where(
                IdempotencyKey.scope == "mail_reply", IdempotencyKey.key == "RE-1"
            )
        ).one()
    assert "Camille" not in json.dumps(stored) and "FR76" not in json.dumps(stored)
    [after] = rows(engine, id=row.id)
    assert (after.sender, after.subject, after.text_body, after.html_body) == ("", "", "", None)
    assert count(engine, MailAttachment) == 0
    [ack] = rows(engine, kind="acknowledgement")
    assert ack.recipients == ""  # never sent to an erased member
    with running_smtp() as relay:
        assert mail_relay.send_pending(engine, smtp_url=relay.url, now=clock.now()) == 0
        assert relay.inbox.take() == []


def _raw(headers: bytes, body: bytes) -> bytes:
    return (
        b"From: Camille <camille@example.fr>\r\nTo: service@prevenance.example\r\n" + headers + b"\r\n" + body
    )


def _encoded_id(length: int) -> bytes:
    """An id of ``length`` characters as adjacent encoded words on folded lines: each SMTP line stays
    short, and the words are joined without a space when the header is decoded."""
    chunk = 60
    text = b"<" + b"a" * (length - 4) + b"@x>"
    words = [b"=?us-ascii?q?" + text[i : i + chunk] + b"?=" for i in range(0, len(text), chunk)]
    return b"\r\n ".join(words)


def _nested(depth: int) -> bytes:
    """A message whose parts are nested ``depth`` deep, each level one multipart/mixed part."""
    levels = [
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (n, n) for n in range(depth)
    ]
    return (
        b"From: Camille <camille@example.fr>\r\nTo: service@prevenance.example\r\n"
        b"Subject: Carte\r\nMessage-ID: <deep@example.fr>\r\n"
        + b"".join(levels)
        + b"Content-Type: text/plain\r\n\r\nJ'ai perdu ma carte.\r\n"
    )


HOSTILE = {
    # PostgreSQL cannot store U+0000 in text: in the body, an encoded subject, the Message-ID, a file name.
    "nul": _raw(
        b"Subject: =?utf-8?q?Carte=00perdue?=\r\nMessage-ID: <nul\x00@example.fr>\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n',
        b"--B\r\nContent-Type: text/plain\r\n\r\nJ'ai perdu\x00 ma carte.\r\n"
        b'--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename="a\x00b.pdf"\r\n'
        b"\r\n%PDF\r\n--B--\r\n",
    ),
    # Longer than the column of 998 characters (each line of the session stays under 1,000).
    "long-in-reply-to": _raw(
        b"Subject: Re: carte\r\nMessage-ID: <long@example.fr>\r\nIn-Reply-To: " + _encoded_id(1500) + b"\r\n",
        b"J'ai perdu ma carte.\r\n",
    ),
    # Python's idna and punycode decoders have no 'replace' mode: they raise whatever the bytes.
    "idna-charset": _raw(
        b"Subject: Carte\r\nMessage-ID: <idna@example.fr>\r\nContent-Type: text/plain; charset=idna\r\n",
        b"J'ai perdu ma carte \xff.\r\n",
    ),
    "punycode-charset": _raw(
        b"Subject: Carte\r\nMessage-ID: <puny@example.fr>\r\nContent-Type: text/plain; charset=punycode\r\n",
        b"J'ai perdu ma carte \xff.\r\n",
    ),
    # Deeper than the standard library's parser can recurse.
    "nested-parts": _nested(1500),
    # Thousands of tiny parts (tens of thousands fit in 10 MiB): one row each would let one message fill the attachments table.
    "many-parts": _raw(
        b'Subject: Carte\r\nMessage-ID: <many@example.fr>\r\nContent-Type: multipart/mixed; boundary="B"\r\n',
        b"--B\r\nContent-Type: text/plain\r\n\r\nJ'ai perdu ma carte.\r\n"
        + b"".join(b"--B\r\nContent-Type: application/octet-stream\r\n\r\nx\r\n" for _ in range(2000))
        + b"--B--\r\n",
    ),
}


@pytest.mark.parametrize("name", list(HOSTILE))
def test_a_hostile_message_is_stored_at_once_and_never_left_for_the_sender_to_retry(
    api: Api, engine: Engine, mail_in: MailIn, name: str
) -> None:
    """A message the listener cannot store is answered 451: the sending server retries it for days,
    then bounces it, and the customer's mail never reaches the desk. So whatever its bytes, a message
    under the size limit is stored at the first delivery (250), once, and is readable."""
    api.put("/v1/members/M1", member_body())
    for _ in range(2):  # the second delivery is recognised as the first
        with smtplib.SMTP(mail_in.host, mail_in.port, timeout=60) as client:
            client.ehlo()
            client.mail("camille@example.fr")
            client.rcpt(DESK)
            code, reply = client.data(HOSTILE[name])
        assert code == 250, reply
    [row] = rows(engine, direction="inbound")
    assert row.state == "filed" and count(engine, Contact) == 1
    read = api.get(f"/v1/mail/messages/{row.id}", role="agent")
    assert read.status_code == 200, read.text
    assert "\\u0000" not in read.text and "\x00" not in read.text
    message_read = read.json()
    assert len(message_read["in_reply_to"] or "") <= 998
    assert len(message_read["attachments"]) <= 101
    assert "perdu" in message_read["text"] or message_read["attachments"]


def test_an_answer_id_longer_than_its_row_or_naming_another_message_is_a_problem_not_a_500(
    api: Api, engine: Engine, mail_in: MailIn
) -> None:
    """An answer's id is the key of its row (erasure finds the stored answer by it): an id longer
    than that column was a 500 on PostgreSQL, and the id of another message (the member's own mail,
    listed in the case's thread) a 500 on both databases."""
    api.put("/v1/members/M1", member_body())
    mail_in.send(message())
    [inbound] = rows(engine, direction="inbound")
    replies = f"/v1/cases/{inbound.case_id}/replies"
    too_long = api.post(replies, {"id": "R" * 41, "body": "Bonjour"}, role="agent")
    assert too_long.status_code == 422 and too_long.headers["content-type"].startswith(PROBLEM_JSON)
    assert too_long.json()["field"] == "id"
    taken = api.post(replies, {"id": inbound.id, "body": "Bonjour"}, role="agent")
    assert taken.status_code == 409 and taken.headers["content-type"].startswith(PROBLEM_JSON)
    assert taken.json()["field"] == "id"
    assert rows(engine, kind="reply") == []
    fits = api.post(replies, {"id": "R" * 40, "body": "Bonjour"}, role="agent")
    assert fits.status_code == 201, fits.text


def test_an_answer_id_used_on_another_case_is_a_conflict_not_a_replay(
    api: Api, engine: Engine, mail_in: MailIn
) -> None:
    """The same id and body on another case replayed the first case's answer: the agent was told
    (201) that the second member was answered, and nothing was queued for them."""
    api.put("/v1/members/M1", member_body())
    api.put("/v1/members/M2", member_body(email="other@example.fr"))
    mail_in.send(message())
    mail_in.send(message(sender="other@example.fr"))
    first, second = (row.case_id for row in rows(engine, direction="inbound"))
    body = {"id": "R1", "body": "Bonjour, c'est fait."}
    assert api.post(f"/v1/cases/{first}/replies", body, role="agent").status_code == 201
    elsewhere = api.post(f"/v1/cases/{second}/replies", body, role="agent")
    assert elsewhere.status_code == 409 and elsewhere.headers["content-type"].startswith(PROBLEM_JSON)
    assert elsewhere.json()["field"] == "id"
    assert [row.case_id for row in rows(engine, kind="reply")] == [first]
