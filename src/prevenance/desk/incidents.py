"""Proactive incidents: declare, update and resolve an incident, queue one email notice per affected
member in the same transaction, and relay the queued notices to SMTP.

Who is affected is decided above the desk (``prevenance.views.incidents``: a rule over members and
over loyalty's card transactions); the desk receives the member ids and fixes them at declaration.

The relay gives **at-least-once delivery with a dedup key**: each notice is sent, then marked sent
and logged in the communications log in one transaction. A crash between the send and the commit
sends that one notice again on the next pass, with the same ``Message-ID`` (derived from the
notice id), so the mail system or the reader recognises the repeat. Nothing is lost: an unsent
notice stays ``pending``. A notice the relay refuses never blocks the others: it is retried with
back-off (temporary failure) or marked ``failed`` with the relay's answer (``common.mail``). Titles
go into the Subject header, so a title that would break a header is refused at declaration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, bindparam, func, insert, select
from sqlalchemy.orm import Session

from prevenance.common import mail, outbox, reads
from prevenance.common.i18n import translate
from prevenance.common.idempotency import Outcome, run_idempotent
from prevenance.common.ids import fingerprint, fingerprint_of, iso_z
from prevenance.common.problems import InvalidInput
from prevenance.common.reads import Read
from prevenance.common.text import HEADER_UNSAFE_MESSAGE, is_header_safe
from prevenance.customers import service as customers
from prevenance.desk import communications, config
from prevenance.desk.errors import IncidentResolved, UnknownIncident
from prevenance.desk.tables import Incident, IncidentNotice

if TYPE_CHECKING:
    from prevenance.customers.tables import Member

SENDER = "Prévenance <notices@prevenance.example>"
RELAY_SOURCE = "incident-relay"


def _utc(moment: datetime) -> datetime:
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


@dataclass(frozen=True)
class IncidentInput:
    """An incident as the operator declares it; ``affects`` is the targeting rule, kept as given."""

    id: str
    title_fr: str
    title_en: str
    body_fr: str
    body_en: str
    since: datetime
    affects: dict[str, Any] = field(default_factory=dict)

    def fingerprint(self) -> str:
        return fingerprint_of(self)


def _incident_body(row: Incident) -> dict[str, Any]:
    return {
        "id": row.id,
        "title_fr": row.title_fr,
        "title_en": row.title_en,
        "body_fr": row.body_fr,
        "body_en": row.body_en,
        "since": iso_z(row.since),
        "affects": row.affects,
        "status": row.status,
        "affected": row.affected_count,
        "declared_by": row.declared_by,
        "declared_at": iso_z(row.declared_at),
        "resolved_at": iso_z(row.resolved_at),
    }


def _queue(
    session: Session,
    *,
    incident: Incident,
    step: str,
    kind: str,
    members: Iterable[tuple[int, str]],
    body_fr: str,
    body_en: str,
    now: datetime,
) -> int:
    titles = {"fr": incident.title_fr, "en": incident.title_en}
    bodies = {"fr": body_fr, "en": body_en}
    rows = [
        {
            "id": f"{incident.id}/{step}/{member_id}",
            "incident_id": incident.id,
            "member_id": member_id,
            "kind": kind,
            "language": language,
            "subject": translate(language, f"mail.incident.subject.{kind}", title=titles[language]),
            "body": bodies[language],
            "status": "pending",
            "created_at": now,
            "sent_at": None,
        }
        for member_id, language in members
    ]
    if rows:
        session.execute(insert(IncidentNotice), rows)
    return len(rows)


def _affected(session: Session, incident_id: str) -> list[tuple[int, str]]:
    """The members told at declaration, with their language now."""
    told = session.scalars(
        select(IncidentNotice.member_id).where(
            IncidentNotice.incident_id == incident_id, IncidentNotice.kind == "initial"
        )
    )
    return customers.languages_of(session, member_ids=list(told))


def declare(
    session: Session,
    *,
    incident: IncidentInput,
    affected: Callable[[Session], Iterable[int]],
    by: str,
    now: datetime,
) -> Outcome:
    """Declare an incident once per id and queue an initial notice to each affected member."""
    return run_idempotent(
        session,
        scope="incident",
        key=incident.id,
        fingerprint=incident.fingerprint(),
        now=now,
        produce=lambda: _declare(session, data=incident, affected=affected, by=by, now=now),
    )


def _declare(
    session: Session,
    *,
    data: IncidentInput,
    affected: Callable[[Session], Iterable[int]],
    by: str,
    now: datetime,
) -> Outcome:
    for name, title in (("title_fr", data.title_fr), ("title_en", data.title_en)):
        if not is_header_safe(title):
            raise InvalidInput(f"{name} {HEADER_UNSAFE_MESSAGE}", field=name)
    known = config.current().reasons
    unknown = [code for code in data.affects.get("reasons", []) if code not in known]
    if unknown:
        raise InvalidInput(f"unknown contact reason {unknown[0]!r}", field="affects.reasons")
    member_ids = sorted(set(affected(session)))
    languages = customers.languages_of(session, member_ids=member_ids)
    row = Incident(
        id=data.id,
        title_fr=data.title_fr,
        title_en=data.title_en,
        body_fr=data.body_fr,
        body_en=data.body_en,
        since=_utc(data.since),
        affects=data.affects,
        status="active",
        affected_count=len(languages),
        declared_by=by,
        declared_at=now,
    )
    session.add(row)
    session.flush()
    _queue(
        session,
        incident=row,
        step="initial",
        kind="initial",
        members=sorted(languages),
        body_fr=data.body_fr,
        body_en=data.body_en,
        now=now,
    )
    body = _incident_body(row)
    outbox.emit(session, type="incident.declared", payload=body, now=now)
    return Outcome(201, body)


def _incident_or_raise(session: Session, incident_id: str, *, for_update: bool = False) -> Incident:
    statement = select(Incident).where(Incident.id == incident_id)
    row = session.scalars(statement.with_for_update() if for_update else statement).first()
    if row is None:
        raise UnknownIncident(f"no incident {incident_id!r}")
    return row


def get(session: Session, *, incident_id: str) -> dict[str, Any]:
    """One incident (404 when unknown)."""
    return _incident_body(_incident_or_raise(session, incident_id))


def add_update(
    session: Session, *, incident_id: str, update_id: str, body_fr: str, body_en: str, now: datetime
) -> Outcome:
    """Queue an update notice to every affected member, once per update id; 409 once resolved."""
    return run_idempotent(
        session,
        scope="incident_update",
        key=f"{incident_id}/{update_id}",
        fingerprint=fingerprint({"body_fr": body_fr, "body_en": body_en}),
        now=now,
        produce=lambda: _add_update(
            session, incident_id=incident_id, update_id=update_id, body_fr=body_fr, body_en=body_en, now=now
        ),
    )


def _add_update(
    session: Session, *, incident_id: str, update_id: str, body_fr: str, body_en: str, now: datetime
) -> Outcome:
    incident = _incident_or_raise(session, incident_id, for_update=True)
    if incident.status != "active":
        raise IncidentResolved(f"incident {incident_id!r} is resolved", field="id")
    queued = _queue(
        session,
        incident=incident,
        step=f"update:{update_id}",
        kind="update",
        members=_affected(session, incident_id),
        body_fr=body_fr,
        body_en=body_en,
        now=now,
    )
    body = {"incident_id": incident_id, "id": update_id, "notices": queued, "created_at": iso_z(now)}
    outbox.emit(session, type="incident.updated", payload=body, now=now)
    return Outcome(201, body)


def resolve(session: Session, *, incident_id: str, body_fr: str, body_en: str, now: datetime) -> Outcome:
    """Resolve the incident and queue the resolution notice to every affected member, once."""
    return run_idempotent(
        session,
        scope="incident_resolution",
        key=incident_id,
        fingerprint=fingerprint({"body_fr": body_fr, "body_en": body_en}),
        now=now,
        produce=lambda: _resolve(session, incident_id=incident_id, body_fr=body_fr, body_en=body_en, now=now),
    )


def _resolve(session: Session, *, incident_id: str, body_fr: str, body_en: str, now: datetime) -> Outcome:
    incident = _incident_or_raise(session, incident_id, for_update=True)
    incident.status = "resolved"
    incident.resolved_at = now
    _queue(
        session,
        incident=incident,
        step="resolution",
        kind="resolution",
        members=_affected(session, incident_id),
        body_fr=body_fr,
        body_en=body_en,
        now=now,
    )
    session.flush()
    body = _incident_body(incident)
    outbox.emit(session, type="incident.resolved", payload=body, now=now)
    return Outcome(200, body)


def list_incidents(session: Session, *, status: str = "active", limit: int = 50) -> list[dict[str, Any]]:
    """Incidents of one status, newest first, each with how many initial notices were sent."""
    rows = list(
        session.scalars(
            select(Incident)
            .where(Incident.status == status)
            .order_by(Incident.since.desc(), Incident.id)
            .limit(limit)
        )
    )
    if not rows:
        return []
    sent = {
        incident_id: count
        for incident_id, count in session.execute(
            select(IncidentNotice.incident_id, func.count())
            .where(
                IncidentNotice.incident_id.in_([row.id for row in rows]),
                IncidentNotice.kind == "initial",
                IncidentNotice.status == "sent",
            )
            .group_by(IncidentNotice.incident_id)
        )
    }
    return [{**_incident_body(row), "notified": sent.get(row.id, 0)} for row in rows]


_MEMBER_INCIDENTS = (
    select(Incident.__table__)
    .join(IncidentNotice, IncidentNotice.incident_id == Incident.id)
    .where(
        IncidentNotice.member_id == bindparam("p_member"),
        IncidentNotice.kind == "initial",
        Incident.status == "active",
    )
    .order_by(Incident.since.desc(), Incident.id)
)
"""Built once (the 360 asks it of every member it shows)."""


def list_member_incidents(session: Session, *, member_ref: str) -> list[dict[str, Any]]:
    """The active incidents affecting a member, newest first."""
    return reads.run(session, member_incidents(customers.get_member(session, ref=member_ref)))


def member_incidents(member: Member) -> Read[list[dict[str, Any]]]:
    """The active incidents affecting a member, newest first, as a read a view sends with others."""
    return Read(
        _MEMBER_INCIDENTS, {"p_member": member.id}, lambda rows: [_incident_body(row) for row in rows]
    )


def count_pending(session: Session) -> int:
    """Notices still waiting for the relay."""
    return session.scalar(select(func.count()).where(IncidentNotice.status == "pending")) or 0


# --- the mail relay -----------------------------------------------------------------------------


def dedup_key(notice_id: str) -> str:
    """The stable key of a notice: its communication id, and its Message-ID's local part."""
    return mail.stable_key("ntc", notice_id)


def message_id(notice_id: str) -> str:
    """The Message-ID of a notice's email: the same on every (re)send."""
    return f"<{dedup_key(notice_id)}@prevenance.notices>"


class _NoticeQueue(communications.MemberMailQueue):
    """``desk_incident_notices`` as a mail queue for ``common.mail.deliver``."""

    kind = "incident_notice"
    table = IncidentNotice
    sender = SENDER
    source = RELAY_SOURCE

    def message_id(self, row_id: str) -> str:
        return message_id(row_id)

    def logged_as(self, row: IncidentNotice) -> tuple[str, str, str]:
        return dedup_key(row.id), "incident", f"incident.{row.kind}"


def send_pending_notices(engine: Engine, *, smtp_url: str, now: datetime, limit: int = 1000) -> int:
    """Send the notices that are due, one transaction per notice; returns how many were sent.

    A notice the relay refuses never holds up the ones behind it: it is retried later (temporary
    failure) or marked ``failed`` with the relay's answer (see ``common.mail``). At most ``limit``
    notices are tried per call.
    """
    return mail.deliver(engine, _NoticeQueue(), smtp_url=smtp_url, now=now, limit=limit).sent


def count_failed(session: Session) -> int:
    """Notices the relay gave up on."""
    return session.scalar(select(func.count()).where(IncidentNotice.status == "failed")) or 0


def incident_member_ids(session: Session, *, incident_id: str) -> list[int]:
    """The ids of the members the incident affected (told at declaration), in order."""
    _incident_or_raise(session, incident_id)
    return sorted(
        session.scalars(
            select(IncidentNotice.member_id).where(
                IncidentNotice.incident_id == incident_id, IncidentNotice.kind == "initial"
            )
        )
    )


def member_in_active_incident(session: Session, *, member_id: int) -> bool:
    """Whether an active incident affects the member (no marketing offer meanwhile)."""
    found = session.scalar(
        select(IncidentNotice.id)
        .join(Incident, Incident.id == IncidentNotice.incident_id)
        .where(
            IncidentNotice.member_id == member_id,
            IncidentNotice.kind == "initial",
            Incident.status == "active",
        )
        .limit(1)
    )
    return found is not None
