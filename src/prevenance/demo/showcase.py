"""A small, fixed world for the browser tests and the screenshots (``make screens``): a few members
with points, a catalogue, an airline partner, contacts over the last six weeks, an emergency card on
its way, concierge requests and partners, and one console user per screen. Everything is written
through the domains' services, as the API would.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from prevenance.console import users
from prevenance.customers import service as customers
from prevenance.db import unit_of_work
from prevenance.demo.generator import demo_phone
from prevenance.desk import concierge
from prevenance.desk import service as desk
from prevenance.loyalty import programme
from prevenance.loyalty import service as loyalty
from prevenance.migrate import upgrade

PASSWORD = "showcase-password"
TEAMS = ("paris-1", "paris-2", "lyon-1")
REASONS = ("card.lost_stolen", "statement.question", "card.declined", "rewards.balance", "card.pin")


@dataclass(frozen=True)
class Showcase:
    """What the browser tests need to know of the world they act in."""

    member_ref: str
    member_name: str
    member_points: int
    poor_ref: str
    catalogue_sku: str
    catalogue_points: int
    month: str
    password: str = PASSWORD


def build(engine: Engine, *, now: datetime) -> Showcase:
    """Migrate an empty database and fill it (deterministic for a given ``now``)."""
    upgrade(engine)
    with unit_of_work(engine) as session:
        programme.install_default_if_missing(session, now=now)
        people = [
            ("SC-0001", "Camille Martin", "camille.martin@example.fr", "fr", "FR", "platinum"),
            ("SC-0002", "Jean Dupont", "jean.dupont@example.fr", "fr", "FR", "gold"),
            ("SC-0003", "Alice Smith", "alice.smith@example.co.uk", "en", "GB", "green"),
            ("SC-0004", "Camille Bernard", "c.bernard@example.fr", "fr", "FR", "gold"),
            ("SC-0005", "Marco Rossi", "marco.rossi@example.it", "en", "IT", "platinum"),
        ]
        for ref, name, email, language, country, product in people:
            customers.upsert(
                session,
                ref=ref,
                data=customers.MemberData(
                    name, email, language, country, product, phone=demo_phone(ref, country)
                ),
                now=now - timedelta(days=400),
            )
        for n, (ref, amount) in enumerate([("SC-0001", "1840.00"), ("SC-0001", "655.40"), ("SC-0002", "120.00"),
                                           ("SC-0003", "35.00"), ("SC-0005", "980.00"), ("SC-0004", "410.00")]):  # fmt: skip
            loyalty.record_transaction(
                session,
                tx=loyalty.TransactionInput(
                    id=f"SC-T{n}",
                    member_ref=ref,
                    amount=amount,
                    currency="EUR",
                    merchant="Librairie du Centre",
                    category="books",
                    occurred_at=now - timedelta(days=30 - n),
                ),
                now=now - timedelta(days=30 - n),
            )
        loyalty.put_catalogue_item(
            session, sku="KNIFE", name="Coffret couteaux", points=600, stock=40, now=now
        )
        loyalty.put_catalogue_item(session, sku="HIFI", name="Enceinte hi-fi", points=24000, stock=5, now=now)
        loyalty.put_catalogue_item(session, sku="PEN", name="Stylo plume", points=900, stock=12, now=now)
        loyalty.put_partner(
            session, code="AIRDEMO", kind="airline", name="Air Démo", points_per_block=1000, units_per_block=800,
            now=now,
        )  # fmt: skip
        for n in range(36):  # contacts over six weeks, so a month has first-contact resolutions
            started = now - timedelta(days=42 - n, hours=n % 5)
            desk.log_contact(
                session,
                contact=desk.ContactInput(
                    id=f"SC-C{n}",
                    member_ref=people[n % len(people)][0],
                    channel=("phone", "email", "chat")[n % 3],
                    direction="inbound",
                    agent=f"agent-{n % 6}",
                    team=TEAMS[n % len(TEAMS)],
                    reason=REASONS[(n * n) % len(REASONS)],
                    started_at=started,
                    ended_at=started + timedelta(minutes=6),
                    notes="",
                    outcome="resolved" if n % 4 else "pending",
                ),
                now=started + timedelta(minutes=6),
            )
        desk.order_card_replacement(
            session,
            order=desk.CardReplacementInput(
                id="SC-R1", member_ref="SC-0001", city="Paris", country="FR", address="12 rue de Rivoli"
            ),
            now=now - timedelta(minutes=35),
        )
        for n, (city, late) in enumerate([("Lyon", False), ("Marseille", False), ("Paris", True)]):
            ordered = now - timedelta(days=20 - n)
            order_id = f"SC-R{n + 2}"
            desk.order_card_replacement(
                session,
                order=desk.CardReplacementInput(
                    id=order_id, member_ref=people[n + 1][0], city=city, country="FR", address=""
                ),
                now=ordered,
            )
            desk.advance_card_replacement(session, replacement_id=order_id, action="dispatch", now=ordered)
            delivered = ordered + timedelta(hours=3 if late else 1)
            desk.advance_card_replacement(session, replacement_id=order_id, action="deliver", now=delivered)
        desk.set_contact_preference(
            session, member_ref="SC-0001", mode="has_time", preferred_channel="phone", by="showcase", now=now
        )
        desk.log_communication(
            session,
            communication=desk.CommunicationInput(
                id="SC-N1",
                member_ref="SC-0001",
                kind="statement",
                template="statement-monthly",
                channel="email",
                language="fr",
                sent_at=now - timedelta(days=3),
                subject="Votre relevé du mois",
                summary="Relevé mensuel et points gagnés",
            ),
            source="showcase",
            now=now - timedelta(days=3),
        )
        concierge.set_tastes(
            session, member_ref="SC-0001", notes="Allergique aux noix ; aime les tables calmes.",
            likes=["jazz", "vins de Loire"], dislikes=["fruits de mer"], by="showcase", now=now,
        )  # fmt: skip
        for code, name, city, category, rating in [
            ("PAUL", "Chez Paul", "Lyon", "restaurant", 4),
            ("FLEURS", "Fleurs de Paris", "Paris", "flowers", 5),
            ("OPERA", "Billetterie Opéra", "Paris", "tickets", 3),
        ]:
            concierge.put_partner(
                session, code=code, name=name, country="FR", city=city, category=category, rating=rating,
                by="showcase", now=now,
            )  # fmt: skip
        requests = [
            ("SC-Q1", "restaurant", "Table pour deux, samedi soir", "Lyon", 6),
            ("SC-Q2", "tickets", "Deux places pour l'opéra complet", "Paris", 30),
            ("SC-Q3", "flowers", "Bouquet pour un anniversaire", "Paris", 2),
        ]
        for request_id, category, title, city, hours in requests:
            concierge.create_request(
                session,
                request=concierge.ConciergeRequestInput(
                    id=request_id, member_ref="SC-0001", category=category, title=title, details="",
                    city=city, country="FR", due_at=now + timedelta(hours=hours),
                ),
                by="showcase",
                now=now,
            )  # fmt: skip
        concierge.change_status(
            session, request_id="SC-Q3", status="in_progress", partner=None, cost=None, solution=None, now=now
        )
        concierge.change_status(
            session, request_id="SC-Q3", status="solved", partner="FLEURS", cost="85.00",
            solution="Bouquet de pivoines livré par Fleurs de Paris", now=now,
        )  # fmt: skip
        for username, role in [("agent", "agent"), ("concierge", "concierge"), ("supervisor", "supervisor"),
                               ("admin", "admin")]:  # fmt: skip
            users.create_user(
                session,
                username=username,
                password=PASSWORD,
                role=role,
                language="fr",
                member_ref=None,
                now=now,
            )
        users.create_user(
            session, username="camille", password=PASSWORD, role="member", language="fr", member_ref="SC-0001",
            now=now,
        )  # fmt: skip
        users.create_user(
            session, username="alice", password=PASSWORD, role="member", language="en", member_ref="SC-0003",
            now=now,
        )  # fmt: skip
        points = loyalty.get_balance(session, member_ref="SC-0001")["points"]
    return Showcase(
        member_ref="SC-0001",
        member_name="Camille Martin",
        member_points=int(points),
        poor_ref="SC-0003",
        catalogue_sku="KNIFE",
        catalogue_points=600,
        month=(now - timedelta(days=20)).strftime("%Y-%m"),
    )
