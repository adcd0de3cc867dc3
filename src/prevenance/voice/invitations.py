"""Survey invitations: decided when a contact closes, mailed by a relay, answered through a signed link.

**Decision.** ``on_contact_closed`` is the in-process handler of the desk's ``contact.closed`` event;
a relay hands it a run of events at once and it decides them together (``on_contacts_closed``: a
few statements per run, not per event). It records one invitation row per contact (``contact_id``
unique) whatever it decides — invited (``pending``) or ``skipped`` with the reason (opted out,
sampled out, capped) — so a re-delivered event finds the row and does nothing. With a cap
configured the run's member rows are locked first (in id order), so two contacts of one member
handled at once by two relays cannot both pass the cap; within a run, each contact sees the
decisions taken for the run's earlier contacts.

**Relay.** ``send_pending_invitations`` gives at-least-once delivery with a dedup key, like the
desk's incident relay: each mail is sent, then marked sent and logged in the desk's communications
log (template ``survey-invitation``) in one transaction. A crash between the send and the commit
sends it again on the next pass with the same ``Message-ID`` (derived from the invitation id).
A mail the relay refuses never blocks the others: it is retried with back-off (temporary failure)
or marked ``failed`` with the relay's answer (``common.mail``).

**Link.** The link carries the invitation id signed with ``PREVENANCE_SECRET_KEY`` and a timestamp
(itsdangerous); it expires after ``survey_link_max_age_days``. A link stamped more than
``CLOCK_SKEW_SECONDS`` (5 minutes) in the future is refused as invalid: we never sign one, and it
would otherwise outlive its days. It works once because the answer is unique per invitation (see
``service.submit_answer``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from typing import Any

from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from prevenance.common import mail
from prevenance.common.i18n import translate
from prevenance.common.ids import as_utc
from prevenance.common.outbox import ManyEvents, OutboxEvent
from prevenance.customers import service as customers
from prevenance.db import ignoring_conflicts, insert_ignoring_conflicts
from prevenance.desk import service as desk
from prevenance.settings import Settings, get_settings
from prevenance.voice import repository, rules
from prevenance.voice.errors import SurveyLinkError
from prevenance.voice.tables import Invitation

SENDER = "Prévenance <surveys@prevenance.example>"
RELAY_SOURCE = "survey-relay"
TEMPLATE = "survey-invitation"
_SALT = "prevenance.survey"
# A link stamped up to this far in the future is accepted (clocks of two API processes differ).
CLOCK_SKEW_SECONDS = 300


def invitation_id_for(contact_id: str) -> str:
    """A stable invitation id per contact (a re-run of the decision names the same invitation)."""
    return "inv_" + hashlib.sha256(contact_id.encode()).hexdigest()[:32]


# --- signed links ---------------------------------------------------------------------------------


def _serializer(secret: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(secret, salt=_SALT)


def sign(invitation_id: str, *, secret: str, now: datetime) -> str:
    """The token of an invitation's link, stamped with ``now`` (the test clock in tests)."""
    serializer = _serializer(secret)
    serializer_any: Any = serializer
    # itsdangerous reads the time from ``get_timestamp``; pin it to the injected clock.
    signer = serializer_any.make_signer(_SALT)
    signer.get_timestamp = lambda: int(as_utc(now).timestamp())
    payload = serializer.dump_payload(invitation_id)
    return str(signer.sign(payload).decode("ascii"))


def unsign(token: str, *, secret: str, max_age_days: int, now: datetime) -> str:
    """The invitation id in a token; SurveyLinkError ``invalid`` or ``expired`` otherwise."""
    serializer = _serializer(secret)
    serializer_any: Any = serializer
    signer = serializer_any.make_signer(_SALT)
    try:
        payload, stamp = signer.unsign(token.encode("ascii"), return_timestamp=True)
    except SignatureExpired:  # pragma: no cover - no max_age is passed to unsign
        raise SurveyLinkError("expired")
    except (BadSignature, UnicodeEncodeError, ValueError):
        raise SurveyLinkError("invalid")
    age = as_utc(now).timestamp() - as_utc(stamp).timestamp()
    if age < -CLOCK_SKEW_SECONDS:
        # Stamped in the future: not a link we sent (our clock is the one that signs), so never
        # let it live longer than its days; a few minutes' skew between processes is tolerated.
        raise SurveyLinkError("invalid")
    if age > max_age_days * 86_400:
        raise SurveyLinkError("expired")
    try:
        value = serializer.load_payload(payload)
    except BadSignature:
        raise SurveyLinkError("invalid")
    if not isinstance(value, str):
        raise SurveyLinkError("invalid")
    return value


def survey_link(invitation_id: str, *, settings: Settings, now: datetime) -> str:
    """The URL a member opens to answer."""
    base = settings.public_url.rstrip("/")
    return f"{base}/survey/{sign(invitation_id, secret=settings.secret_key, now=now)}"


# --- the decision, on contact.closed --------------------------------------------------------------


_INSERT_IF_NEW = insert_ignoring_conflicts(Invitation.__table__)  # type: ignore[arg-type]


def on_contacts_closed(session: Session, events: Sequence[OutboxEvent]) -> None:
    """Decide once, for each closed contact of a run of ``contact.closed`` events, whether its
    member is surveyed, and queue the mail if so: the members, their consents and (under a cap)
    their recent decisions are read once for the run, the decisions written in one statement."""
    from prevenance.voice import service

    if not events:
        return
    config = service.current_config()
    cap_days = config.sampling.cap_days
    payloads = [event.payload for event in events]
    members = customers.list_summaries_by_refs(
        session, refs=sorted({str(payload["member_ref"]) for payload in payloads})
    )
    # Erased since the contact: never surveyed.
    live = {ref: member for ref, member in members.items() if not customers.is_erased(member)}
    member_ids = sorted({member.id for member in live.values()})
    ended_of = [as_utc(datetime.fromisoformat(str(p["ended_at"]).replace("Z", "+00:00"))) for p in payloads]
    decided: dict[str, str] = {}  # contact id → stored status (under a cap)
    queued: dict[int, list[datetime]] = {}  # member id → ends of contacts surveyed (under a cap)
    if cap_days is not None and member_ids:
        # Serialise the decisions of these members (in id order, as every relay locks them) so the
        # cap holds under concurrent relays; then read what was decided for their recent contacts.
        customers.lock_shared_members(session, member_ids=member_ids)
        window = timedelta(days=cap_days)
        for member_id, contact_id, ended_at, status in repository.decisions_between(
            session, member_ids, min(ended_of) - window, max(ended_of)
        ):
            decided[contact_id] = status
            if status != "skipped":
                queued.setdefault(member_id, []).append(ended_at)
    opted_out = repository.opted_out_among(session, member_ids)
    decisions: list[dict[str, Any]] = []
    for event, payload, ended in zip(events, payloads, ended_of, strict=True):
        member = live.get(str(payload["member_ref"]))
        contact_id = str(payload["id"])
        if member is None or contact_id in decided:
            continue  # unknown or erased member; a contact decided before keeps its decision
        skip = rules.invitation_decision(
            contact_id=contact_id,
            ended_at=ended,
            opted_out=member.id in opted_out,
            last_invited_at=max((at for at in queued.get(member.id, ()) if at <= ended), default=None),
            sampling=config.sampling,
        )
        if cap_days is not None:
            decided[contact_id] = "skipped" if skip else "pending"
            if skip is None:
                queued.setdefault(member.id, []).append(ended)
        language = str(payload.get("language") or member.language)
        decisions.append(
            {
                "id": invitation_id_for(contact_id),
                "contact_id": contact_id,
                "member_id": member.id,
                "language": language if language in rules.LANGUAGES else "en",
                "agent": str(payload["agent"]),
                "team": str(payload["team"]),
                "channel": str(payload["channel"]),
                "reason": str(payload["reason"]),
                "product": member.product,
                "country": str(payload.get("country") or member.country),
                "contact_ended_at": ended,
                "status": "skipped" if skip else "pending",
                "skip_reason": skip,
                "created_at": event.occurred_at,
            }
        )
    if decisions:
        # A contact another relay decided first (or an event delivered again) keeps the stored
        # decision: the insert leaves it as it is.
        session.execute(ignoring_conflicts(session, _INSERT_IF_NEW), decisions)


on_contact_closed = ManyEvents(on_contacts_closed)
"""The handler of ``contact.closed``: a run of events is decided together (``on_contacts_closed``),
one event as a run of one."""


# --- the relay ------------------------------------------------------------------------------------


def dedup_key(invitation_id: str) -> str:
    """The communication id of an invitation's mail and the local part of its Message-ID."""
    return mail.stable_key("svy", invitation_id)


def message_id(invitation_id: str) -> str:
    """The Message-ID of an invitation's mail: the same on every (re)send."""
    return f"<{dedup_key(invitation_id)}@prevenance.surveys>"


def compose(
    invitation: Invitation, *, name: str, email: str, link: str, days: int, now: datetime
) -> EmailMessage:
    """The invitation mail in the member's language."""
    language = invitation.language
    channel = translate(language, f"mail.survey.channel.{invitation.channel}")
    return mail.compose(
        sender=SENDER,
        to=email,
        subject=translate(language, "mail.survey.subject"),
        message_id=message_id(invitation.id),
        date=now,
        language=language,
        body=translate(language, "mail.survey.body", name=name, channel=channel, link=link, days=days),
    )


class _InvitationQueue:
    """``voice_invitations`` (the pending ones) as a mail queue for ``common.mail.deliver``."""

    kind = "survey_invitation"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def next_due(self, session: Session, now: datetime) -> Invitation | None:
        """The oldest invitation whose attempt is due, locked."""
        return repository.next_pending_invitation(session, now)

    def compose(self, session: Session, invitation: Invitation, now: datetime) -> EmailMessage:
        """The invitation with its signed link, to the member's address."""
        member = customers.find_member_by_id(session, member_id=invitation.member_id)
        if member is None:  # pragma: no cover - members are never deleted (erasure keeps the row)
            raise mail.Unsendable("the member is gone")
        return compose(
            invitation,
            name=member.name,
            email=member.email,
            link=survey_link(invitation.id, settings=self.settings, now=now),
            days=self.settings.survey_link_max_age_days,
            now=now,
        )

    def mark_sent(self, session: Session, invitation: Invitation, now: datetime) -> bool:
        """Pending → sent, and the mail logged in the desk's communications log."""
        if not repository.mark_invitation_sent(session, invitation.id, now):
            return False
        member = customers.find_member_by_id(session, member_id=invitation.member_id)
        assert member is not None
        desk.log_communication(
            session,
            communication=desk.CommunicationInput(
                id=dedup_key(invitation.id),
                member_ref=member.ref,
                kind="survey",
                template=TEMPLATE,
                channel="email",
                language=invitation.language,
                sent_at=now,
                subject=translate(invitation.language, "mail.survey.subject"),
                summary=f"contact {invitation.contact_id}",
            ),
            source=RELAY_SOURCE,
            now=now,
        )
        return True

    def mark_unsent(self, session: Session, invitation: Invitation, unsent: mail.Unsent) -> None:
        """Record a refused attempt: retry later, or failed with the relay's answer."""
        repository.record_invitation_attempt(session, invitation.id, unsent)


def send_pending_invitations(
    engine: Engine, *, smtp_url: str, now: datetime, settings: Settings | None = None, limit: int = 1000
) -> int:
    """Send the invitations that are due, one transaction per mail; returns how many were sent.

    A mail the relay refuses never holds up the ones behind it: it is retried later (temporary
    failure) or marked ``failed`` with the relay's answer (see ``common.mail``).
    """
    queue = _InvitationQueue(settings or get_settings())
    return mail.deliver(engine, queue, smtp_url=smtp_url, now=now, limit=limit).sent


def count_unsent(session: Session) -> dict[str, int]:
    """Invitations still owed (``pending``, some waiting for a retry) and given up on (``failed``)."""
    return {status: repository.count_invitations(session, status=status) for status in ("pending", "failed")}
