"""What every mail relay shares: the SMTP connection from ``PREVENANCE_SMTP_URL``, the stable key that
names one message on every (re)send, the message builder, and the delivery loop with its retry rule.

**At least once, with a dedup key.** A queue row is sent, then marked sent in the transaction that
holds its lock; a crash between the two sends it again on the next pass with the same Message-ID
(derived from the row id), so the receiving side can recognise the repeat.

**One bad message never blocks the queue.** Every attempt ends in one of three ways, written on the
row in the same transaction:

- ``sent``: the relay accepted the message (2xx).
- a **permanent** refusal (an SMTP 5xx answer, or a message that cannot be built, such as an
  address that is not one plain mailbox): the row becomes ``failed`` with the answer in
  ``last_error`` and is never tried again;
- a **temporary** failure (an SMTP 4xx answer, a refused or dropped connection, a timeout): the
  row stays ``pending`` with ``next_attempt_at`` set ``retry_delay`` ahead (1 min, 2, 4 … doubling,
  at most an hour); after ``MAX_ATTEMPTS`` attempts (about a day) it becomes ``failed``.

The pass then goes on with the next due row. When the connection itself fails (the relay is down)
the pass stops after backing off that one row: the rest would fail alike. Each outcome is counted
in the ``prevenance_mail_messages_total`` counter (labels ``kind`` and ``outcome``).
"""

from __future__ import annotations

import email.errors
import hashlib
import smtplib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

import structlog
from sqlalchemy import ColumnElement, Engine, or_, select, update
from sqlalchemy.orm import Session

from prevenance.common import metrics
from prevenance.common.bulk import rows_changed
from prevenance.common.text import is_mail_address, one_line
from prevenance.db import unit_of_work

log = structlog.get_logger()
TIMEOUT = 30.0  # seconds for the SMTP connection and each of its commands
RETRY_FIRST = timedelta(minutes=1)
RETRY_CAP = timedelta(hours=1)
MAX_ATTEMPTS = 30  # 1+2+4+…+32 min, then hourly: given up about 24 h after the first attempt
ERROR_LENGTH = 500  # characters of the relay's answer kept in ``last_error``


def _address(smtp_url: str) -> tuple[str, int]:
    parts = urlsplit(smtp_url)
    if parts.scheme != "smtp" or not parts.hostname:
        raise ValueError(f"PREVENANCE_SMTP_URL must look like smtp://host:port, not {smtp_url!r}")
    return parts.hostname, parts.port or 25


def stable_key(prefix: str, source_id: str) -> str:
    """``<prefix>_<32 hex>``: the same for the same source row, whatever process sends it."""
    return f"{prefix}_" + hashlib.sha256(source_id.encode()).hexdigest()[:32]


# --- building a message ---------------------------------------------------------------------------


class Unsendable(ValueError):
    """A message that cannot be built as it stands (no retry will change that)."""


def compose(
    *,
    sender: str,
    to: str,
    subject: str,
    message_id: str,
    date: datetime,
    language: str,
    body: str,
) -> EmailMessage:
    """One plain-text message. The subject is folded to one line whatever the row holds (rows queued
    before titles were checked at the door); a recipient that is not one plain address is refused
    (``Unsendable``) rather than cleaned, so a mail never goes to an address nobody gave."""
    if not is_mail_address(to):
        raise Unsendable("the recipient is not one plain e-mail address")
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    message["Subject"] = one_line(subject)
    message["Message-ID"] = message_id
    message["Date"] = format_datetime(date)
    message["Content-Language"] = one_line(language)
    message.set_content(body)
    return message


# --- one attempt ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Attempt:
    """What became of one message handed to the relay."""

    outcome: Literal["sent", "temporary", "permanent"]
    reason: str = ""
    relay_down: bool = False  # the connection failed: the rest of this pass would fail alike

    @classmethod
    def answered(cls, code: int, text: bytes | str) -> Attempt:
        """The relay refused with an SMTP answer: 5xx is final, anything else worth retrying."""
        reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)
        reason = one_line(f"{code} {reply}")
        return cls("permanent" if 500 <= code < 600 else "temporary", reason)


class Relay:
    """One SMTP connection for a pass, opened at the first message; ``send`` turns every refusal and
    network failure into an ``Attempt`` instead of raising, so the caller can record it and go on."""

    def __init__(self, smtp_url: str) -> None:
        self.host, self.port = _address(smtp_url)  # a bad URL is configuration: raise before any row
        self._connection: smtplib.SMTP | None = None

    def send(self, message: EmailMessage) -> Attempt:
        """Hand ``message`` over; never raises for what the relay or the network does."""
        try:
            if self._connection is None:
                self._connection = smtplib.SMTP(self.host, self.port, timeout=TIMEOUT)
            self._connection.send_message(message)
        except smtplib.SMTPRecipientsRefused as error:  # smtplib has reset the transaction…
            code, text = next(iter(error.recipients.values()), (550, b"recipient refused"))
            if code == 421:  # …or, for 421, closed the connection: the next message reconnects
                self._drop()
            return Attempt.answered(code, text)
        except (smtplib.SMTPConnectError, smtplib.SMTPHeloError) as error:  # the relay, not the message
            self._drop()
            return Attempt(
                "temporary", Attempt.answered(error.smtp_code, error.smtp_error).reason, relay_down=True
            )
        except smtplib.SMTPResponseException as error:  # sender or data refused
            self._drop()
            return Attempt.answered(error.smtp_code, error.smtp_error)
        except smtplib.SMTPNotSupportedError as error:  # e.g. an international address, no SMTPUTF8
            self._drop()
            return Attempt("permanent", one_line(f"unsupported by the relay: {error}"))
        except (smtplib.SMTPException, OSError) as error:  # refused, dropped, timed out, unknown host
            self._drop()
            return Attempt("temporary", one_line(f"{type(error).__name__}: {error}"), relay_down=True)
        except (ValueError, TypeError, email.errors.MessageError) as error:  # cannot be serialised
            return Attempt("permanent", one_line(f"unsendable: {error}"))
        return Attempt("sent")

    def _drop(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with suppress(OSError):  # closing a socket that is already gone
                connection.close()

    def close(self) -> None:
        """Say goodbye to the relay if a connection is open."""
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.quit()
            except (smtplib.SMTPException, OSError):
                connection.close()


# --- the retry rule (no I/O) ----------------------------------------------------------------------


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after the ``attempts``-th failed attempt: 1 min, doubling, at most 1 h."""
    return min(RETRY_FIRST * 2 ** min(max(attempts - 1, 0), 16), RETRY_CAP)


@dataclass(frozen=True)
class Unsent:
    """What to write on a queue row the relay did not accept."""

    status: Literal["pending", "failed"]
    attempts: int
    last_attempt_at: datetime
    next_attempt_at: datetime | None
    last_error: str


def after_failure(
    attempt: Attempt, *, attempts_before: int, now: datetime, max_attempts: int = MAX_ATTEMPTS
) -> Unsent:
    """A permanent refusal fails the row at once; a temporary one schedules the next attempt,
    until ``max_attempts`` attempts have failed."""
    attempts = attempts_before + 1
    error = attempt.reason[:ERROR_LENGTH]
    if attempt.outcome == "permanent" or attempts >= max_attempts:
        return Unsent("failed", attempts, now, None, error)
    return Unsent("pending", attempts, now, now + retry_delay(attempts), error)


# --- the delivery loop ----------------------------------------------------------------------------


class QueueRow(Protocol):
    id: Any
    attempts: int


class MailQueue(Protocol):
    """One table of messages owed: how the loop finds, builds and marks its rows."""

    kind: str  # the metric label: ``incident_notice``, ``survey_invitation``

    def next_due(self, session: Session, now: datetime) -> QueueRow | None:
        """The oldest pending row whose next attempt is due, locked (``SKIP LOCKED``)."""
        ...

    def compose(self, session: Session, row: Any, now: datetime) -> EmailMessage:
        """The row's message; ``Unsendable`` (or another ``ValueError``) when it cannot be built."""
        ...

    def mark_sent(self, session: Session, row: Any, now: datetime) -> bool:
        """Pending → sent and the communication logged; False when another relay did it first."""
        ...

    def mark_unsent(self, session: Session, row: Any, unsent: Unsent) -> None:
        """Record a failed attempt on a row still pending."""
        ...


@dataclass
class Report:
    """What one pass did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0

    @property
    def attempted(self) -> int:
        return self.sent + self.retried + self.failed


@contextmanager
def _relay(smtp_url: str) -> Iterator[Relay]:
    relay = Relay(smtp_url)
    try:
        yield relay
    finally:
        relay.close()


# --- the columns every mail queue shares: status (or state), attempts, last/next attempt, last error -------


def next_due_row(
    session: Session,
    model: Any,
    now: datetime,
    *,
    order_by: tuple[Any, ...],
    status: str = "status",
    where: tuple[ColumnElement[bool], ...] = (),
) -> Any | None:
    """The oldest pending row of a mail queue whose attempt is due, locked (``SKIP LOCKED``: two
    relays never take the same; on SQLite the write transaction serialises them)."""
    return session.scalars(
        select(model)
        .where(
            *where,
            getattr(model, status) == "pending",
            or_(model.next_attempt_at.is_(None), model.next_attempt_at <= now),
        )
        .order_by(*order_by)
        .limit(1)
        .with_for_update(skip_locked=True)
    ).first()


def mark_rows_sent(
    session: Session,
    model: Any,
    now: datetime,
    *,
    where: tuple[ColumnElement[bool], ...],
    status: str = "status",
) -> int:
    """Pending → sent for the rows ``where`` selects; how many changed (0: another relay did it)."""
    state = getattr(model, status)
    result = session.execute(
        update(model)
        .where(*where, state == "pending")
        .values({status: "sent", "sent_at": now, "attempts": model.attempts + 1, "last_attempt_at": now})
    )
    return rows_changed(result)


def record_unsent(
    session: Session, model: Any, row_id: Any, unsent: Unsent, *, status: str = "status"
) -> None:
    """A refused attempt on a pending row: retry at ``next_attempt_at``, or failed with the answer."""
    session.execute(
        update(model)
        .where(model.id == row_id, getattr(model, status) == "pending")
        .values(
            {
                status: unsent.status,
                "attempts": unsent.attempts,
                "last_attempt_at": unsent.last_attempt_at,
                "next_attempt_at": unsent.next_attempt_at,
                "last_error": unsent.last_error,
            }
        )
    )


def deliver(engine: Engine, queue: MailQueue, *, smtp_url: str, now: datetime, limit: int) -> Report:
    """Try every due row of ``queue`` once (at most ``limit``), one transaction per row."""
    report = Report()
    with _relay(smtp_url) as relay:
        while report.attempted < limit:
            with unit_of_work(engine) as session:
                row = queue.next_due(session, now)
                if row is None:
                    break
                try:
                    message = queue.compose(session, row, now)
                except (ValueError, TypeError, email.errors.MessageError) as error:
                    attempt = Attempt("permanent", one_line(f"unsendable: {error}"))
                else:
                    attempt = relay.send(message)
                if attempt.outcome == "sent":
                    if queue.mark_sent(session, row, now):
                        report.sent += 1
                        metrics.count_mail(queue.kind, "sent")
                    continue
                unsent = after_failure(attempt, attempts_before=row.attempts or 0, now=now)
                queue.mark_unsent(session, row, unsent)
                outcome = "failed" if unsent.status == "failed" else "retry"
                if outcome == "failed":
                    report.failed += 1
                else:
                    report.retried += 1
                metrics.count_mail(queue.kind, outcome)
                log.warning(
                    "mail_not_sent",
                    kind=queue.kind,
                    id=str(row.id),
                    outcome=outcome,
                    attempts=unsent.attempts,
                    reply=unsent.last_error.split(" ", 1)[0],
                )
            if attempt.relay_down:
                break
    return report
