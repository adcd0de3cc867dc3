"""The member is told of their goodwill: on loyalty's ``goodwill.granted`` event the desk writes the
mail in the member's language into the communications log, once per grant (its id is derived from
the grant's key), so the front line sees what the member was given and said. The desk never reads
loyalty: the event carries what the mail needs."""

from __future__ import annotations

import hashlib

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from prevenance.common.i18n import LANGUAGES, translate
from prevenance.common.outbox import OutboxEvent
from prevenance.desk.communications import CommunicationInput, record_communication
from prevenance.desk.tables import Communication

SOURCE = "goodwill"


def communication_id(grant_key: str) -> str:
    return "gwm_" + hashlib.sha256(grant_key.encode()).hexdigest()[:32]


def on_goodwill_granted(session: Session, event: OutboxEvent) -> None:
    """Log the goodwill mail of a grant once; a capped grant (nothing given) tells nothing."""
    payload = event.payload
    if payload.get("form") not in ("points", "credit"):
        return
    comm_id = communication_id(str(payload["key"]))
    if session.get(Communication, comm_id) is not None:
        return
    language = str(payload.get("language") or "fr")
    language = language if language in LANGUAGES else "fr"
    cause = str(payload["cause"])
    subject = translate(language, f"mail.goodwill.subject.{cause}")
    if payload["form"] == "points":
        summary = translate(language, f"mail.goodwill.body.{cause}.points", points=payload["points"])
    else:
        summary = translate(language, f"mail.goodwill.body.{cause}.credit", amount=payload["credit"])
    communication = CommunicationInput(
        id=comm_id,
        member_ref=str(payload["member_ref"]),
        kind="service",
        template=f"goodwill-{cause}",
        channel="email",
        language=language,
        sent_at=event.occurred_at,
        subject=subject[:300],
        summary=summary,
    )
    try:
        with session.begin_nested():
            record_communication(
                session,
                member_id=_member_id(session, str(payload["member_ref"])),
                communication=communication,
                source=SOURCE,
                now=event.occurred_at,
            )
    except IntegrityError:  # another relay logged it first
        return


def _member_id(session: Session, ref: str) -> int:
    from prevenance.customers import service as customers

    return customers.get_or_raise(session, ref=ref).id
