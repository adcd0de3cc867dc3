"""The desk's e-mail use cases: store an incoming message once, file it in its member's case (or the
triage queue), acknowledge a new thread, answer from a case, and the relay that sends what is owed.
Each runs inside the caller's unit of work and never commits (the SMTP listener, a request or a CLI
command opened it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import String, Table, bindparam, insert, select, update
from sqlalchemy.orm import Session

from prevenance.common import i18n
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import fingerprint_of, new_id
from prevenance.common.problems import IdempotencyConflict, InvalidInput
from prevenance.common.text import is_mail_address
from prevenance.customers import service as customers
from prevenance.desk import config as desk_config
from prevenance.desk import contacts
from prevenance.desk import rules as desk_rules
from prevenance.desk.errors import UnknownCase, UnknownReason
from prevenance.desk.mail_in import classifier, rules
from prevenance.desk.mail_in import config as mail_config
from prevenance.desk.mail_in.errors import (
    MailStateConflict,
    NoAddressToAnswer,
    UnknownMailMessage,
)
from prevenance.desk.mail_in.reads import message_body
from prevenance.desk.mail_in.tables import MailAttachment, MailMessage
from prevenance.desk.tables import Case, Contact
from prevenance.settings import get_settings

TRAINING_LIMIT = 20_000  # the newest contacts the classifier learns from


@dataclass(frozen=True)
class Received:
    """What became of one incoming message."""

    id: str
    state: str
    duplicate: bool
    case_id: str | None
    member_ref: str | None


def _domain(address: str) -> str:
    return address.rsplit("@", 1)[-1] if "@" in address else "prevenance.example"


_ID_BY_KEY = select(MailMessage.id).where(MailMessage.message_key == bindparam("p_key"))
_MESSAGES: Table = MailMessage.__table__  # type: ignore[assignment]
_ATTACHMENTS: Table = MailAttachment.__table__  # type: ignore[assignment]


def _length(column: str) -> int:
    """The length of a text column of the messages, read from the table."""
    column_type = _MESSAGES.c[column].type
    assert isinstance(column_type, String) and column_type.length is not None
    return column_type.length


# Columns a caller's value goes into whole: PostgreSQL refuses a longer text (it was a 500).
REPLY_ID_LENGTH = _length("id")  # an answer's id is its row's key
DISCARD_REASON_LENGTH = _length("discard_reason")


def _by_key(session: Session, key: str) -> MailMessage | None:
    """The stored message with this key (one indexed lookup; the row is loaded only when found)."""
    found = session.execute(_ID_BY_KEY, {"p_key": key}).scalar_one_or_none()
    return session.get(MailMessage, found) if found is not None else None


def receive(
    session: Session,
    *,
    raw: bytes,
    envelope_sender: str | None,
    our_addresses: frozenset[str],
    attachment_max_bytes: int,
    model: classifier.Model | None,
    now: datetime,
) -> Received:
    """Store a message once (keyed on its Message-ID), then file it: an automated message (or one
    from our own addresses) is only kept; a member's opens or continues a case; anyone else's waits
    in triage. A repeat returns the first delivery's outcome with ``duplicate`` set."""
    parsed = rules.parse(raw, envelope_sender=envelope_sender, attachment_max_bytes=attachment_max_bytes)
    existing = _by_key(session, parsed.key)
    if existing is not None:
        return _received(session, existing, duplicate=True)
    automated = parsed.automated or ("own-address" if parsed.sender in our_addresses else None)
    suggestion = None
    if automated is None and model is not None:
        suggestion = model.suggest(f"{parsed.subject}\n{parsed.text}")
    values = {
        "id": new_id("mail"),
        "message_key": parsed.key,
        "message_id": parsed.message_id,
        "once_key": None,
        "direction": "inbound",
        "kind": "automated" if automated else "mail",
        "state": "ignored" if automated else "triage",
        "member_id": None,
        "case_id": None,
        "contact_id": None,
        "sender": parsed.sender,
        "sender_name": parsed.sender_name,
        "recipients": parsed.to,
        "subject": parsed.subject,
        "text_body": parsed.text,
        "html_body": parsed.html,
        "in_reply_to": parsed.in_reply_to,
        "thread_references": " ".join(parsed.references),
        "language": parsed.language_hint,
        "size_bytes": len(raw),
        "automated": automated,
        "suggested_reason": suggestion.reason if suggestion else None,
        "suggestion_words": ", ".join(suggestion.words)[:200] if suggestion else None,
        "received_at": now,
        "attempts": 0,
    }
    members = []
    if automated is None and parsed.sender:
        members = customers.find_by_email(session, email=parsed.sender)
    if len(members) != 1:
        # Core inserts: a burst of mail is the hot path, and the ORM's unit of work costs more than
        # the rows.
        session.execute(insert(_MESSAGES), values)
        _insert_attachments(session, parsed, message_pk=str(values["id"]), member_id=None)
        return Received(str(values["id"]), str(values["state"]), False, None, None)
    row = MailMessage(**values)
    session.add(row)
    _file(session, row=row, member=members[0], reason=None, by=None, now=now)
    _insert_attachments(session, parsed, message_pk=row.id, member_id=members[0].id)
    return _received(session, row, duplicate=False)


def _insert_attachments(
    session: Session, parsed: rules.ParsedMail, *, message_pk: str, member_id: int | None
) -> None:
    if parsed.attachments:
        session.execute(
            insert(_ATTACHMENTS),
            [
                {
                    "message_pk": message_pk,
                    "member_id": member_id,
                    "position": position,
                    "filename": attachment.filename,
                    "content_type": attachment.content_type,
                    "size_bytes": attachment.size,
                    "kept": attachment.content is not None,
                    "content": attachment.content,
                }
                for position, attachment in enumerate(parsed.attachments)
            ],
        )


def _received(session: Session, row: MailMessage, *, duplicate: bool) -> Received:
    member = customers.find_member_by_id(session, member_id=row.member_id) if row.member_id else None
    return Received(row.id, row.state, duplicate, row.case_id, member.ref if member else None)


def _thread_case(session: Session, *, row: MailMessage, member_id: int) -> str | None:
    """The member's case this message continues: by In-Reply-To / References first, then by the
    case token in the subject; None for a new matter. Another member's thread is never joined."""
    candidates = rules.thread_candidates(
        rules.ParsedMail(
            message_id=row.message_id,
            key=row.message_key,
            sender=row.sender,
            sender_name=row.sender_name,
            to=row.recipients,
            subject=row.subject,
            date=None,
            in_reply_to=row.in_reply_to,
            references=row.thread_references.split(),
            text="",
            html=None,
        )
    )
    if candidates:
        keys = [rules.message_key(candidate) for candidate in candidates]
        found = {
            key: case_id
            for key, case_id in session.execute(
                select(MailMessage.message_key, MailMessage.case_id).where(
                    MailMessage.message_key.in_(keys),
                    MailMessage.member_id == member_id,
                    MailMessage.case_id.is_not(None),
                )
            )
        }
        for key in keys:
            if found.get(key):
                return found[key]
    token = rules.case_in_subject(row.subject)
    if token:
        case = session.get(Case, token)
        if case is not None and case.member_id == member_id:
            return case.id
    return None


def _file(
    session: Session, *, row: MailMessage, member: Any, reason: str | None, by: str | None, now: datetime
) -> None:
    """Make the message a contact (channel email, inbound) in its thread's case or a new one, and
    queue the thread's acknowledgement when the message opened the case."""
    cfg = mail_config.current()
    # Filed before the contact is logged: the row is then written once, already filed.
    row.state, row.member_id, row.contact_id = "filed", member.id, row.id
    if by is not None:
        row.handled_by, row.handled_at = by, now
    case_id = _thread_case(session, row=row, member_id=member.id)
    if reason is None and row.suggested_reason is None and case_id is not None:
        case = session.get(Case, case_id)
        reason = case.reason if case is not None else None
    reason = reason or row.suggested_reason or cfg.default_reason
    outcome = contacts.log_contact(
        session,
        contact=contacts.ContactInput(
            id=row.id,
            member_ref=member.ref,
            channel="email",
            direction="inbound",
            agent=by or cfg.agent,
            team=cfg.team,
            reason=reason,
            started_at=row.received_at,
            ended_at=now,
            notes=rules.contact_notes(row.subject, row.text_body),
            outcome="pending",
            case_id=case_id,
        ),
        now=now,
    )
    row.case_id = str(outcome.body["case_id"])
    if by is not None:  # filed from triage by an agent: the message's files become the member's
        session.execute(
            update(MailAttachment).where(MailAttachment.message_pk == row.id).values(member_id=member.id)
        )
    session.flush()
    if case_id is None:
        _queue_acknowledgement(session, row=row, member=member, reason=reason, now=now)


def _sender_address() -> str:
    first = sorted(mail_config.addresses(get_settings().mail_in_addresses))
    return first[0] if first else "service@prevenance.example"


def _queue_outbound(
    session: Session,
    *,
    kind: str,
    parent: MailMessage | None,
    member: Any,
    case_id: str,
    subject: str,
    body: str,
    once_key: str | None,
    by: str | None,
    now: datetime,
    row_id: str | None = None,
) -> MailMessage:
    sender = _sender_address()
    message_id = f"<{new_id('out')}@{_domain(sender)}>"
    references = rules.references_after(parent.thread_references.split(), parent.message_id) if parent else []
    row = MailMessage(
        id=row_id or new_id("mail"),
        message_key=rules.message_key(message_id),
        message_id=message_id,
        once_key=once_key,
        direction="outbound",
        kind=kind,
        state="pending",
        member_id=member.id,
        case_id=case_id,
        sender=sender,
        sender_name="Prévenance",
        recipients=member.email,
        subject=subject,
        text_body=body,
        in_reply_to=parent.message_id if parent else None,
        thread_references=" ".join(references),
        language=member.language,
        size_bytes=len(body.encode()),
        handled_by=by,
        received_at=now,
        attempts=0,
    )
    session.add(row)
    session.flush()
    return row


def _queue_acknowledgement(
    session: Session, *, row: MailMessage, member: Any, reason: str, now: datetime
) -> None:
    """Once per thread: called only for the message that opened the case, and the ``once_key``
    (unique) names the case, so the database refuses a second one whatever happens."""
    once_key = f"ack:{row.case_id}"
    assert row.case_id is not None
    hours = rules.promised_hours(reason, mail_config.current().response_hours)
    language = member.language
    label_fr, label_en = contacts.reason_labels(reason)
    body = i18n.translate(
        language,
        "mail_in.ack.body",
        name=member.name,
        hours=hours,
        reason=label_fr if language == "fr" else label_en,
        case=rules.case_token(row.case_id),
    )
    _queue_outbound(
        session,
        kind="acknowledgement",
        parent=row,
        member=member,
        case_id=row.case_id,
        subject=rules.reply_subject(
            row.subject or i18n.translate(language, "mail_in.ack.subject"), row.case_id
        ),
        body=body,
        once_key=once_key,
        by=None,
        now=now,
    )


# --- triage ---------------------------------------------------------------------------------------


def _locked(session: Session, message_id: str) -> MailMessage:
    row = session.get(MailMessage, message_id, with_for_update=True)
    if row is None or row.direction != "inbound":
        raise UnknownMailMessage(f"no incoming message {message_id!r}", field="id")
    return row


def link_message(
    session: Session, *, message_id: str, member_ref: str, reason: str | None, by: str, now: datetime
) -> dict[str, Any]:
    """An agent says who wrote a message in triage: it is filed as if the member had sent it.
    Linking again to the same member changes nothing; a message filed elsewhere, discarded or
    automated → 409."""
    if reason is not None and reason not in desk_config.current().reasons:
        raise UnknownReason(f"unknown contact reason {reason!r}", field="reason")
    row = _locked(session, message_id)
    member = customers.get_member_for_body(session, ref=member_ref, field="member_ref")
    if row.state == "filed" and row.member_id == member.id:
        return message_body(session, row)
    if row.state != "triage":
        raise MailStateConflict(f"message {message_id!r} is {row.state}, not in triage", field="id")
    _file(session, row=row, member=member, reason=reason, by=by, now=now)
    return message_body(session, row)


def discard_message(
    session: Session, *, message_id: str, reason: str, by: str, now: datetime
) -> dict[str, Any]:
    """An agent drops a message in triage (spam, misdirected) with a reason; discarding again
    changes nothing, a message already filed → 409."""
    if not reason.strip():
        raise InvalidInput("a reason is required to discard a message", field="reason")
    if len(reason.strip()) > DISCARD_REASON_LENGTH:  # the console's form passes no request model
        raise InvalidInput(f"a reason holds at most {DISCARD_REASON_LENGTH} characters", field="reason")
    row = _locked(session, message_id)
    if row.state == "discarded":
        return message_body(session, row)
    if row.state != "triage":
        raise MailStateConflict(f"message {message_id!r} is {row.state}, not in triage", field="id")
    row.state, row.discard_reason, row.handled_by, row.handled_at = "discarded", reason.strip(), by, now
    session.flush()
    return message_body(session, row)


# --- answers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReplyInput:
    """An agent's answer on a case; ``id`` is the idempotency key."""

    id: str
    body: str
    outcome: str = "pending"
    reason: str | None = None

    def fingerprint(self) -> str:
        return fingerprint_of(self)


def reply_to_case(
    session: Session, *, case_id: str, reply: ReplyInput, agent: str, team: str, now: datetime
) -> Outcome:
    """Queue an answer to the member, threaded under the case's latest incoming message, and log it
    as a contact (channel email, outbound) with its outcome (``resolved`` resolves the case). The
    fingerprint is the body's alone (keys stored before stay valid), so the case is compared on a
    replay: the same id and body on another case would tell the agent a member was answered who
    was not."""
    if len(reply.id) > REPLY_ID_LENGTH:  # checked here too: the console's form passes no request model
        raise InvalidInput(f"an answer's id holds at most {REPLY_ID_LENGTH} characters", field="id")
    outcome = run_idempotent(
        session,
        scope="mail_reply",
        key=reply.id,
        fingerprint=reply.fingerprint(),
        now=now,
        produce=lambda: _reply(session, case_id=case_id, reply=reply, agent=agent, team=team, now=now),
    )
    if outcome.replayed and outcome.body.get("case_id") != case_id:
        raise IdempotencyConflict(f"mail_reply key {reply.id!r} was already used on another case", field="id")
    return outcome


def _reply(
    session: Session, *, case_id: str, reply: ReplyInput, agent: str, team: str, now: datetime
) -> Outcome:
    if not reply.body.strip():
        raise InvalidInput("the answer is empty", field="body")
    if reply.outcome not in desk_rules.OUTCOMES:
        raise InvalidInput(f"outcome must be one of {', '.join(desk_rules.OUTCOMES)}", field="outcome")
    case = session.get(Case, case_id)
    if case is None:
        raise UnknownCase(f"no case {case_id!r}", field="id")
    member = customers.find_member_by_id(session, member_id=case.member_id)
    assert member is not None
    if customers.is_erased(member) or not is_mail_address(member.email):
        raise NoAddressToAnswer("the member has no address an answer can go to", field="id")
    if session.get(MailMessage, reply.id) is not None:
        # The answer's id is its row's key (erasure finds the stored answer by it), and one unused
        # as a reply key may still name another message: the member's own mail, an acknowledgement.
        raise IdempotencyConflict(f"id {reply.id!r} already names another e-mail message", field="id")
    parent = session.scalars(
        select(MailMessage)
        .where(MailMessage.case_id == case.id, MailMessage.direction == "inbound")
        .order_by(MailMessage.received_at.desc(), MailMessage.id.desc())
        .limit(1)
    ).first()
    subject = rules.reply_subject(
        parent.subject
        if parent
        else contacts.reason_labels(case.reason)[0 if member.language == "fr" else 1],
        case.id,
    )
    row = _queue_outbound(
        session,
        kind="reply",
        parent=parent,
        member=member,
        case_id=case.id,
        subject=subject,
        body=reply.body.strip(),
        once_key=None,
        by=agent,
        now=now,
        row_id=reply.id,  # the reply's key: erasure finds its stored answer by it
    )
    logged = contacts.log_contact(
        session,
        contact=contacts.ContactInput(
            id=row.id,
            member_ref=member.ref,
            channel="email",
            direction="outbound",
            agent=agent,
            team=team,
            reason=reply.reason or case.reason,
            started_at=now,
            ended_at=now,
            notes=rules.contact_notes(subject, reply.body),
            outcome=reply.outcome,
            case_id=case.id,
        ),
        now=now,
    )
    row.contact_id = str(logged.body["id"])
    session.flush()
    return Outcome(201, message_body(session, row))


# --- the classifier -------------------------------------------------------------------------------


def training_samples(session: Session, *, limit: int = TRAINING_LIMIT) -> list[tuple[str, str]]:
    """(notes, reason) of the newest contacts with notes: what the classifier learns from."""
    rows = session.execute(
        select(Contact.notes, Contact.reason)
        .where(Contact.notes != "", Contact.direction == "inbound")
        .order_by(Contact.started_at.desc(), Contact.id.desc())
        .limit(limit)
    )
    return [(notes, reason) for notes, reason in rows]


def load_model(session: Session) -> classifier.Model | None:
    """A model trained on past contacts; None when there are too few to learn from."""
    samples = training_samples(session)
    return classifier.train(samples) if len(samples) >= classifier.MIN_SAMPLES else None


def evaluate_classifier(session: Session, *, held_out: float = 0.2, seed: int = 7) -> classifier.Evaluation:
    """The classifier's accuracy on held-out past contacts (see ``classifier.evaluate``)."""
    return classifier.evaluate(training_samples(session), held_out=held_out, seed=seed)
