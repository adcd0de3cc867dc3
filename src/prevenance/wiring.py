"""The composition of domains that may not import each other, installed by every entry point.

Offers sit above loyalty and the desk beside it: an offer decided on an earning transaction must
respect the desk's contact preferences, be written in the desk's communications log and read its
benefit usage, yet offers may not import the desk. The API (``create_app``), the CLI and the stream
worker call :func:`install` here (the offers hook, and the console's eraser that a member's erasure
needs), so that composition lives in one place.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from prevenance.common.outbox import OutboxEvent
from prevenance.console import users as console_users
from prevenance.customers import service as customers_service
from prevenance.desk import incidents as desk_incidents
from prevenance.desk import service as desk_service
from prevenance.loyalty import goodwill
from prevenance.loyalty.service import TransactionHook
from prevenance.offers import service as offers_service
from prevenance.views import privacy


def may_contact(session: Session, member_id: int) -> bool:
    """Whether the member accepts marketing (no offer for a member who asked to be left alone)."""
    return desk_service.may_send_marketing(session, member_id=member_id)


def record_note(session: Session, note: offers_service.OfferNote) -> None:
    """Write an offer made in the member's communications log."""
    communication = desk_service.CommunicationInput(
        id=note.id,
        member_ref=note.member_ref,
        kind=note.kind,
        template=note.template,
        channel=note.channel,
        language=note.language,
        sent_at=note.sent_at,
        subject=note.subject[:300],
        summary=note.summary,
    )
    desk_service.record_communication(
        session, member_id=note.member_id, communication=communication, source="offers", now=note.sent_at
    )


def benefits_used(session: Session, member_id: int, since: datetime) -> int:
    """How many benefits the member used since then (a feature of the offer decision)."""
    return desk_service.count_benefit_usages(session, member_id=member_id, since=since)


def benefit_events(session: Session, since: datetime, until: datetime) -> list[tuple[int, datetime]]:
    """Every benefit usage in the window (the training set's benefit feature)."""
    return desk_service.benefit_usage_events(session, since=since, until=until)


def offer_suppression(session: Session, member_id: int) -> str | None:
    """Why no marketing offer may go to the member now: an active incident affects them."""
    if desk_incidents.member_in_active_incident(session, member_id=member_id):
        return "incident-active"
    return None


def offer_hook() -> TransactionHook:
    """The offers hook composed with the desk, as :func:`install_offer_hook` registers it."""
    return offers_service.make_transaction_hook(
        may_contact=may_contact, record_note=record_note, benefits=benefits_used, suppress=offer_suppression
    )


def install_offer_hook() -> None:
    """Decide offers on every earning transaction, composed with the desk: no offer for a member
    who asked to be left alone, and each offer made is written in the communications log.
    Installing again replaces it."""
    offers_service.install(
        may_contact=may_contact,
        record_note=record_note,
        benefits=benefits_used,
        benefit_events=benefit_events,
        suppress=offer_suppression,
    )


def erase_console_users(session: Session, member_id: int, alias: str) -> int:
    """Erasing a member disables and unlinks their portal sign-ins."""
    return console_users.erase_member_users(session, member_id=member_id, pseudonym=alias)


def install_erasers() -> None:
    """Erasure (a view) reaches the console's sign-ins, which live in the layer above it."""
    privacy.register_eraser("console_users", erase_console_users)


def install() -> None:
    """Everything an entry point composes: the offers hook and the erasers."""
    install_offer_hook()
    install_erasers()


# --- goodwill: the desk's missed promises made right in loyalty's currency -------------------------

LATE_CARD_TEAM = "emergency-cards"


def on_card_delivered(session: Session, event: OutboxEvent) -> None:
    """An emergency card delivered after its promise (2 h city / 48 h elsewhere) earns the member
    the programme's late-card goodwill at once, without a call: once per order, however often the
    ``card_replacement.delivered`` event is delivered."""
    payload = event.payload
    delivered, due = payload.get("delivered_at"), payload.get("due_at")
    if not delivered or not due or _moment(str(delivered)) <= _moment(str(due)):
        return
    member = customers_service.find_member(session, ref=str(payload["member_ref"]))
    if member is None:
        return
    goodwill.grant(
        session,
        member_id=member.id,
        cause="late_card",
        reference=str(payload["id"]),
        team=LATE_CARD_TEAM,
        by="late-card-rule",
        now=event.occurred_at,
    )


def _moment(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))
