"""Demo desk data, played: the events of ``prevenance.demo.desk_plan`` written in time order through
the desk's services (the clock of each call is the event's time; events after the anchor are left
out), a unit of work per chunk. Every write is idempotent (by id, or by nature for preferences and
card steps), so a rerun adds nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from prevenance.common.problems import PrevenanceError
from prevenance.customers import service as customers
from prevenance.db import read_session, unit_of_work
from prevenance.demo.desk_plan import CHUNK, DeskEvent, Person, id_prefix, plan_desk
from prevenance.demo.mail import contact_note
from prevenance.desk import concierge as concierge_desk
from prevenance.desk import incidents as incident_desk
from prevenance.desk import service as desk
from prevenance.desk.tables import Contact

TEMPLATES = {
    "statement": ("email", "statement-monthly", "Your monthly statement", "Votre relevé mensuel"),
    "marketing": ("email", "marketing-monthly", "Offers selected for you", "Des offres pour vous"),
    "survey": ("email", "survey-after-contact", "How did we do?", "Votre avis compte"),
}


@dataclass
class _State:
    cases: dict[str, str] = field(default_factory=dict)  # matter -> case id
    counts: dict[str, int] = field(default_factory=dict)

    def count(self, name: str, by: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + by


def _play(
    session: Session, event: DeskEvent, *, people: Sequence[Person], anchor: datetime, state: _State
) -> None:
    now = anchor - timedelta(seconds=event.before)
    data = event.data
    person = people[data["member"]] if "member" in data else None
    if event.kind == "contact":
        assert person is not None
        outcome = desk.log_contact(
            session,
            contact=desk.ContactInput(
                id=data["id"],
                member_ref=person.ref,
                channel=data["channel"],
                direction=data["direction"],
                agent=data["agent"],
                team=data["team"],
                reason=data["reason"],
                started_at=anchor - timedelta(seconds=data["started"]),
                ended_at=anchor - timedelta(seconds=data["ended"]),
                notes=contact_note(data["reason"], data["id"]),
                outcome=data["outcome"],
                case_id=state.cases.get(data["matter"]),
            ),
            now=now,
        )
        state.cases.setdefault(data["matter"], str(outcome.body["case_id"]))
        state.count("contacts")
        state.count("desk_replayed", outcome.replayed)
    elif event.kind == "order":
        assert person is not None
        outcome = desk.order_card_replacement(
            session,
            order=desk.CardReplacementInput(
                id=data["id"], member_ref=person.ref, city=data["city"], country=data["country"], address=""
            ),
            now=now,
        )
        state.count("card_replacements")
        state.count("desk_replayed", outcome.replayed)
    elif event.kind == "advance":
        try:
            with session.begin_nested():
                desk.advance_card_replacement(
                    session, replacement_id=data["id"], action=data["action"], now=now
                )
        except PrevenanceError:  # a rerun: the order is already past this step
            pass
    elif event.kind == "concierge":
        assert person is not None
        outcome = concierge_desk.create_request(
            session,
            request=concierge_desk.ConciergeRequestInput(
                id=data["id"],
                member_ref=person.ref,
                category=data["category"],
                title=data["title"],
                details="",
                city=data["city"],
                country=person.country,
                due_at=anchor - timedelta(seconds=data["due"]),
            ),
            by="demo",
            now=now,
        )
        state.count("concierge_requests", not outcome.replayed)
    elif event.kind == "concierge_status":
        request = concierge_desk.get_request(session, request_id=data["id"])
        if request["status"] in ("solved", "cancelled"):
            return  # a rerun: already there
        concierge_desk.change_status(
            session,
            request_id=data["id"],
            status=data["status"],
            partner=data.get("partner"),
            cost=data.get("cost"),
            solution=data.get("solution"),
            now=now,
        )
    elif event.kind == "partner":
        concierge_desk.put_partner(
            session,
            code=data["code"],
            name=data["code"].replace("-", " ").title(),
            country=data["country"],
            city=data["city"],
            category=data["category"],
            rating=data["rating"],
            by="demo",
            now=now,
        )
    elif event.kind == "tastes":
        assert person is not None
        concierge_desk.set_tastes(
            session,
            member_ref=person.ref,
            notes="",
            likes=data["likes"],
            dislikes=data["dislikes"],
            by="demo",
            now=now,
        )
    elif event.kind == "incident":
        city = data["city"]
        title_fr, title_en = data["title"]
        incident_desk.declare(
            session,
            incident=incident_desk.IncidentInput(
                id=data["id"],
                title_fr=title_fr,
                title_en=title_en,
                body_fr=f"{title_fr}. Nos équipes y travaillent ; nous vous tiendrons informé.",
                body_en=f"{title_en}. Our teams are on it; we will keep you informed.",
                since=anchor - timedelta(seconds=data["since"]),
                affects={"cities": [city], "reasons": data["reasons"]},
            ),
            affected=lambda s: customers.list_member_ids(s, products=[], countries=[], cities=[city]),
            by="demo",
            now=now,
        )
        state.count("incidents")
    elif event.kind == "incident_resolve":
        incident_desk.resolve(
            session,
            incident_id=data["id"],
            body_fr="L'incident est résolu. Merci de votre patience.",
            body_en="The incident is resolved. Thank you for your patience.",
            now=now,
        )
    elif event.kind == "explain":
        desk.explain_benefits(session, contact_id=data["contact"], benefits=data["benefits"], now=now)
        state.count("benefits_explained", len(data["benefits"]))
    elif event.kind == "usage":
        assert person is not None
        outcome = desk.record_benefit_usage(
            session,
            usage=desk.BenefitUsageInput(
                id=data["id"], member_ref=person.ref, benefit=data["benefit"], used_at=now, source="demo"
            ),
            by="demo",
            now=now,
        )
        state.count("benefit_usages", not outcome.replayed)
    elif event.kind == "preference":
        assert person is not None
        desk.set_contact_preference(
            session,
            member_ref=person.ref,
            mode=data["mode"],
            preferred_channel=data["channel"],
            by="demo",
            now=now,
        )
        state.count("preferences")
    else:  # a communication: statement, marketing or survey invitation
        assert person is not None
        kind = data["kind"]
        channel, template, subject_en, subject_fr = TEMPLATES[kind]
        outcome = desk.log_communication(
            session,
            communication=desk.CommunicationInput(
                id=data["id"],
                member_ref=person.ref,
                kind=kind,
                template=template,
                channel=channel,
                language=person.language,
                sent_at=now,
                subject=subject_fr if person.language == "fr" else subject_en,
                summary="",
            ),
            source="demo",
            now=now,
        )
        state.count("communications")
        state.count("desk_replayed", outcome.replayed)


def load_desk(
    engine: Engine, *, people: Sequence[Person], seed: int, scale: float, anchor: datetime
) -> dict[str, int]:
    """Play the desk's year (after the loyalty demo has created ``people``); returns counts."""
    if scale <= 0:
        return {}
    prefix = id_prefix(seed, scale)
    with read_session(engine) as session:
        other = session.scalars(
            select(Contact.id)
            .where(Contact.id.like(f"demo-{seed}-desk%"), ~Contact.id.like(f"{prefix}-%"))
            .limit(1)
        ).first()
    if other is not None:
        from prevenance.demo.generator import DemoMismatch

        raise DemoMismatch(
            f"this database holds the desk demo of seed {seed} at another scale ({other!r}): "
            "load it with the same --desk-scale, or into a fresh database"
        )
    events = plan_desk(people, seed=seed, scale=scale)
    state = _State()
    for start in range(0, len(events), CHUNK):
        with unit_of_work(engine) as session:
            for event in events[start : start + CHUNK]:
                _play(session, event, people=people, anchor=anchor, state=state)
    return {
        key: state.counts.get(key, 0)
        for key in (
            "contacts",
            "card_replacements",
            "communications",
            "preferences",
            "concierge_requests",
            "incidents",
            "benefit_usages",
            "benefits_explained",
            "desk_replayed",
        )
    }
