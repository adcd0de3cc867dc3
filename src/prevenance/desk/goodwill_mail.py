"""The member is told of their goodwill by mail, in their language, from an outbox.

On loyalty's ``goodwill.granted`` event the desk queues one mail per grant (``desk_goodwill_mails``,
its id derived from the grant's key, so a re-delivered event or a second relay queues nothing more);
the relay sends it (at least once, the same Message-ID on a resend) and logs the communication in
the transaction that marks it sent, so the front line sees what the member was given and told. The
desk never reads loyalty: the event carries what the mail needs.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from prevenance.common import mail
from prevenance.common.i18n import LANGUAGES, translate
from prevenance.common.outbox import OutboxEvent
from prevenance.customers import service as customers
from prevenance.desk import communications
from prevenance.desk.tables import GoodwillMail

SENDER = "Prévenance <service@prevenance.example>"
SOURCE = "goodwill-relay"


def mail_id(grant_key: str) -> str:
    """The mail of a grant: its row id, its communication id and its Message-ID's local part."""
    return mail.stable_key("gwm", grant_key)


def message_id(row_id: str) -> str:
    return f"<{row_id}@prevenance.goodwill>"


def on_goodwill_granted(session: Session, event: OutboxEvent) -> None:
    """Queue the goodwill mail of a grant once; a capped grant (nothing given) tells nothing."""
    payload = event.payload
    if payload.get("form") not in ("points", "credit"):
        return
    row_id = mail_id(str(payload["key"]))
    if session.get(GoodwillMail, row_id) is not None:
        return
    member = customers.find_member(session, ref=str(payload["member_ref"]))
    if member is None or customers.is_erased(member):
        return
    language = str(payload.get("language") or member.language)
    language = language if language in LANGUAGES else "fr"
    cause = str(payload["cause"])
    if payload["form"] == "points":
        body = translate(language, f"mail.goodwill.body.{cause}.points", points=payload["points"])
    else:
        body = translate(language, f"mail.goodwill.body.{cause}.credit", amount=payload["credit"])
    row = GoodwillMail(
        id=row_id,
        member_id=member.id,
        cause=cause,
        language=language,
        subject=translate(language, f"mail.goodwill.subject.{cause}"),
        body=body,
        status="pending",
        created_at=event.occurred_at,
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # another relay queued it first
        return


class _GoodwillQueue(communications.MemberMailQueue):
    """``desk_goodwill_mails`` as a mail queue for ``common.mail.deliver``."""

    kind = "goodwill_mail"
    table = GoodwillMail
    sender = SENDER
    source = SOURCE

    def message_id(self, row_id: str) -> str:
        return message_id(row_id)

    def logged_as(self, row: GoodwillMail) -> tuple[str, str, str]:
        return row.id, "service", f"goodwill-{row.cause}"


def send_pending(engine: Engine, *, smtp_url: str, now: datetime, limit: int = 1000) -> int:
    """Send the goodwill mails that are due, one transaction each; returns how many were sent."""
    return mail.deliver(engine, _GoodwillQueue(), smtp_url=smtp_url, now=now, limit=limit).sent


def count_pending(session: Session) -> int:
    return session.scalar(select(func.count()).where(GoodwillMail.status == "pending")) or 0
