"""The desk's e-mail in the demo: what past contacts said (the words the reason classifier learns
from), a few threads written by members (acknowledged, answered, continued), an auto-reply that opens
nothing, one unknown sender linked to a member from triage and one left waiting there.

Every message has a fixed Message-ID and every answer a fixed key, so loading the demo again adds
nothing. Messages go through the same service as the SMTP listener (``mail_in.service.receive``)."""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import TYPE_CHECKING

from sqlalchemy import Engine

from prevenance.db import read_session, run_in_transaction
from prevenance.desk.mail_in import service as mail

if TYPE_CHECKING:
    from prevenance.demo.plan import Person

DESK = "service@prevenance.example"
AGENT = "demo-agent"
# What members say about each reason (French and English), mixed at random into past contacts'
# notes: overlapping words (carte, points, frais) keep the classifier honest.
PHRASES: dict[str, list[str]] = {
    "card.lost_stolen": [
        "carte perdue, faire opposition",
        "lost my card, please block it",
        "carte volée dans le métro",
        "wallet stolen with the card",
    ],
    "card.damaged": [
        "carte abîmée, la puce ne marche plus",
        "card chip damaged, not read",
        "carte cassée en deux",
    ],
    "card.declined": [
        "paiement refusé chez le commerçant",
        "card declined at the hotel",
        "carte refusée à l'étranger",
    ],
    "card.pin": ["code confidentiel oublié", "forgot my PIN", "code bloqué après trois essais"],
    "statement.question": [
        "question sur une ligne du relevé",
        "statement line I do not recognise",
        "relevé du mois incompréhensible",
    ],
    "statement.dispute": [
        "je conteste cette opération",
        "dispute a charge I never made",
        "débit en double à rembourser",
    ],
    "statement.fees": [
        "frais annuels trop élevés",
        "why these fees on my statement",
        "frais de change sur le relevé",
    ],
    "rewards.balance": ["solde de points", "how many points do I have", "combien de points sur mon compte"],
    "rewards.missing_points": [
        "points manquants sur un achat",
        "points not credited for my purchase",
        "achat sans points",
    ],
    "rewards.redemption": [
        "utiliser mes points pour un cadeau",
        "redeem points for the catalogue",
        "échanger des points",
    ],
    "rewards.partner_transfer": [
        "transfert de points vers la compagnie aérienne",
        "transfer points to airline miles",
        "miles non reçus",
    ],
    "rewards.referral": ["parrainage d'un ami", "referral bonus missing", "mon filleul a souscrit"],
    "travel.booking": [
        "réservation de vol à modifier",
        "change my hotel booking",
        "annuler la réservation du train",
    ],
    "travel.insurance": [
        "assurance voyage, bagage perdu",
        "travel insurance claim for a delayed flight",
        "annulation voyage remboursée ?",
    ],
    "travel.lounge": ["accès salon aéroport refusé", "airport lounge access", "invité au salon"],
    "concierge.request": [
        "réserver une table ce soir",
        "tickets for the opera",
        "fleurs pour un anniversaire",
    ],
    "account.details": ["changement d'adresse postale", "update my phone number", "nouvelle adresse e-mail"],
    "account.benefits": [
        "quels avantages avec ma carte",
        "what benefits come with my card",
        "garanties incluses",
    ],
    "account.closure": ["je veux résilier ma carte", "close my account", "fermeture du compte"],
    "complaint.service": [
        "conseiller désagréable au téléphone",
        "waited an hour on the phone",
        "personne ne me rappelle",
    ],
    "complaint.other": ["je suis mécontent", "not happy at all", "réclamation générale"],
}
FILLER = ["bonjour", "merci", "hello", "please", "rapidement", "urgent", "hier", "today", "encore", "again"]


def contact_note(reason: str, contact_id: str) -> str:
    """A past contact's note: a phrase of its reason, often with filler, sometimes with another
    reason's phrase (what real notes look like); the same for the same contact on every load."""
    rng = random.Random(contact_id)
    phrases = PHRASES.get(reason, ["demande du client"])
    words = [rng.choice(phrases)]
    if rng.random() < 0.5:
        words.append(rng.choice(FILLER))
    if rng.random() < 0.2:
        words.append(rng.choice(PHRASES[rng.choice(sorted(PHRASES))]))
    rng.shuffle(words)
    return " ; ".join(words)


def _message(
    *,
    message_id: str,
    sender: str,
    subject: str,
    body: str,
    at: datetime,
    in_reply_to: str | None = None,
    html: bool = False,
    headers: dict[str, str] | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = DESK
    message["Subject"] = subject
    message["Date"] = format_datetime(at)
    message["Message-ID"] = message_id
    if in_reply_to:
        message["In-Reply-To"] = in_reply_to
        message["References"] = in_reply_to
    for name, value in (headers or {}).items():
        message[name] = value
    if html:
        message.set_content(body.replace("<p>", "").replace("</p>", "\n"))
        message.add_alternative(body + '<img src="https://tracker.example/open.gif">', subtype="html")
    else:
        message.set_content(body)
    return message.as_bytes()


def load_mail_demo(
    engine: Engine, *, people: Sequence[Person], seed: int, anchor: datetime
) -> dict[str, int]:
    """Play the demo's e-mail (members 2 to 5 write; member 6 is the one found from triage)."""
    if len(people) < 6:
        return {}
    with read_session(engine) as session:
        model = mail.load_model(session)
    french = [p for p in people[1:] if p.language == "fr"]
    english = [p for p in people[1:] if p.language == "en"]
    if len(french) < 3 or not english:
        return {}
    lost, points, found = french[0], french[1], french[2]
    traveller = english[0]
    tag = f"demo-{seed}"
    counts = {"mail_messages": 0, "mail_contacts": 0}

    def receive(raw: bytes, at: datetime, sender: str) -> mail.Received:
        received = run_in_transaction(
            engine,
            lambda s: mail.receive(
                s,
                raw=raw,
                envelope_sender=sender,
                our_addresses=frozenset({DESK}),
                attachment_max_bytes=1_000_000,
                model=model,
                now=at,
            ),
        )
        counts["mail_messages"] += not received.duplicate
        counts["mail_contacts"] += (not received.duplicate) and received.state == "filed"
        return received

    def answer(case_id: str, key: str, text: str, outcome: str, at: datetime) -> str:
        reply = mail.ReplyInput(id=f"{tag}-{key}", body=text, outcome=outcome)
        outcome_ = run_in_transaction(
            engine,
            lambda s: mail.reply_to_case(s, case_id=case_id, reply=reply, agent=AGENT, team="email", now=at),
        )
        counts["mail_contacts"] += not outcome_.replayed
        return str(outcome_.body["message_id"])

    start = anchor - timedelta(days=3)
    # 1. A lost card: acknowledged, answered, the member writes back, answered and resolved.
    first_id = f"<{tag}-lost-1@{lost.email.split('@')[1]}>"
    case = receive(
        _message(
            message_id=first_id,
            sender=lost.email,
            subject="Carte perdue",
            body=f"Bonjour,\n\nJ'ai perdu ma carte hier soir au restaurant, merci de faire opposition.\n\n{lost.name}",
            at=start,
        ),
        start,
        lost.email,
    ).case_id
    assert case is not None
    sent = answer(
        case,
        "lost-a1",
        "Votre carte est en opposition. Une nouvelle carte part demain.",
        "pending",
        start + timedelta(hours=1),
    )
    receive(
        _message(
            message_id=f"<{tag}-lost-2@{lost.email.split('@')[1]}>",
            sender=lost.email,
            subject=f"Re: Carte perdue [#{case}]",
            body="Merci ! Pouvez-vous l'envoyer à mon hôtel à Lyon ?",
            at=start + timedelta(hours=2),
            in_reply_to=sent,
        ),
        start + timedelta(hours=2),
        lost.email,
    )
    answer(
        case,
        "lost-a2",
        "C'est noté : livraison à votre hôtel de Lyon demain matin.",
        "resolved",
        start + timedelta(hours=3),
    )
    # The member's out-of-office answering our answer: kept, opens nothing, acknowledged by nobody.
    receive(
        _message(
            message_id=f"<{tag}-lost-ooo@{lost.email.split('@')[1]}>",
            sender=lost.email,
            subject="Absence du bureau",
            body="Je suis absent jusqu'à lundi.",
            at=start + timedelta(hours=3, minutes=1),
            headers={"Auto-Submitted": "auto-replied"},
        ),
        start + timedelta(hours=3, minutes=1),
        lost.email,
    )
    # 2. Missing points, in HTML: acknowledged, waiting for an answer.
    receive(
        _message(
            message_id=f"<{tag}-points-1@{points.email.split('@')[1]}>",
            sender=points.email,
            subject="Points manquants",
            body="<p>Bonjour,</p><p>Mon achat du 3 n'a pas rapporté de <b>points</b>.</p>",
            at=start + timedelta(days=1),
            html=True,
        ),
        start + timedelta(days=1),
        points.email,
    )
    # 3. A traveller writing in English: acknowledged in English, answered, resolved.
    travel = receive(
        _message(
            message_id=f"<{tag}-travel-1@{traveller.email.split('@')[1]}>",
            sender=traveller.email,
            subject="Hotel booking",
            body="Hello, I need to change my hotel booking in Rome to next Friday. Thank you.",
            at=start + timedelta(days=1, hours=4),
        ),
        start + timedelta(days=1, hours=4),
        traveller.email,
    ).case_id
    assert travel is not None
    answer(
        travel,
        "travel-a1",
        "Your booking now starts next Friday; the confirmation follows.",
        "resolved",
        start + timedelta(days=1, hours=6),
    )
    # 4. An unknown sender (a private address): triaged and linked to the member by an agent.
    private = f"{tag}.private@example.net"
    stranger = receive(
        _message(
            message_id=f"<{tag}-stranger-1@example.net>",
            sender=private,
            subject="Frais sur mon relevé",
            body=f"Bonjour, je vous écris de mon adresse personnelle : pourquoi ces frais annuels ?\n{found.name} ({found.ref})",
            at=start + timedelta(days=2),
        ),
        start + timedelta(days=2),
        private,
    )
    linked = run_in_transaction(
        engine,
        lambda s: mail.link_message(
            s,
            message_id=stranger.id,
            member_ref=found.ref,
            reason=None,
            by=AGENT,
            now=start + timedelta(days=2, hours=1),
        ),
    )
    counts["mail_contacts"] += stranger.state == "triage"
    assert linked["state"] == "filed"
    # 5. Someone nobody knows: waiting in triage for an agent.
    receive(
        _message(
            message_id=f"<{tag}-unknown-1@example.org>",
            sender="who.am.i@example.org",
            subject="Question",
            body="Bonjour, je voudrais des informations sur vos cartes.",
            at=start + timedelta(days=2, hours=5),
        ),
        start + timedelta(days=2, hours=5),
        "who.am.i@example.org",
    )
    return counts
