"""Demo voice-of-the-customer data: a survey invitation for every demo contact, answers from 40 % of
them (a realistic answer rate for a survey sent right after the contact), comments, suggestions (some adopted), and market barometers.

Answers come from one latent experience per contact (the agent's skill plus noise) written on the
French scale, then shifted by each country's answer style, planted so the calibration has something
to find: for the same experience **GB answers +1.5 points, ES +0.8, IT +0.5 and DE −0.5** relative to
FR on recommend (0–10). The interaction question (1–5) follows the same experience.

Deterministic: each contact draws from ``random.Random(f"{seed}:voice:{contact id}")``, and ids derive
from the contact id, so a rerun adds nothing (contacts that already have an invitation are left as
they are, whoever created it). Invitations are written as ``sent`` (the demo sends no mail).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from prevenance.common.periods import month_of
from prevenance.customers.tables import Member
from prevenance.db import read_session, unit_of_work
from prevenance.desk.tables import Contact
from prevenance.voice import invitations, rules, service
from prevenance.voice.tables import Answer, Invitation, Suggestion

CHUNK = 1_000  # contacts per unit of work
RESPONSE_RATE = 0.40
COUNTRY_STYLE = {"FR": 0.0, "GB": 1.5, "DE": -0.5, "IT": 0.5, "ES": 0.8}
COMMENTS = {
    "fr": [
        ("Conseiller très aimable et efficace.", 8.5),
        ("Beaucoup trop d'attente au téléphone.", 4.0),
        ("Problème réglé du premier coup, merci.", 9.0),
        ("L'application plante souvent à la connexion.", 5.0),
        ("Les frais de la carte sont trop élevés.", 4.5),
        ("J'ai dû rappeler plusieurs fois.", 3.5),
    ],
    "en": [
        ("Very friendly and helpful adviser.", 8.5),
        ("Far too long on hold.", 4.0),
        ("Solved first time, thank you.", 9.0),
        ("The app keeps crashing when I log in.", 5.0),
        ("Card fees are too high.", 4.5),
        ("I had to call back several times.", 3.5),
    ],
}
SUGGESTIONS = {
    "fr": [
        "Proposer un rappel automatique plutôt que l'attente.",
        "Pouvoir bloquer la carte depuis l'application.",
        "Un chat ouvert le soir et le week-end.",
        "Envoyer le relevé des points chaque mois par e-mail.",
    ],
    "en": [
        "Offer a call back instead of waiting on hold.",
        "Let me freeze my card in the app.",
        "A chat open in the evening and at weekends.",
        "Email my points statement every month.",
    ],
}
LINKS = {
    "adopted": "https://prevenance.example/changes/",
    "declined": None,
}
BAROMETER_SOURCES = {
    # source: (metric, base value, n); countries' figures move with their answer style.
    "Baromètre relation client": ("rtf", 18.0, 1_000),
    "Market satisfaction index": ("satisfaction", 72.0, 800),
}


def _skill(seed: int, agent: str) -> float:
    """An agent's lasting effect on the experience (−1.2 … +1.2 points)."""
    return random.Random(f"{seed}:voice:agent:{agent}").uniform(-1.2, 1.2)


def _answer_values(rng: random.Random, *, skill: float, country: str) -> tuple[int, int, float]:
    experience = rng.gauss(7.4 + skill, 1.7)
    recommend = max(0, min(10, round(experience + COUNTRY_STYLE.get(country, 0.0))))
    interaction = max(1, min(5, round(1 + (experience - 2.0) / 2.0 + rng.gauss(0, 0.4))))
    return recommend, interaction, experience


def _quarters(start: datetime, end: datetime) -> list[str]:
    found: list[str] = []
    month = datetime(start.year, start.month, 1, tzinfo=start.tzinfo)
    while month <= end:
        quarter = rules.quarter_of(month.strftime("%Y-%m"))
        if quarter not in found:
            found.append(quarter)
        month = (month + timedelta(days=32)).replace(day=1)
    return found


def _play_contact(
    session: Session, row: Any, *, seed: int, now: datetime, counts: dict[str, int], skills: dict[str, float]
) -> None:
    rng = random.Random(f"{seed}:voice:{row.id}")
    invitation_id = invitations.invitation_id_for(row.id)
    sent_at = row.ended_at + timedelta(minutes=rng.randint(5, 90))
    if sent_at > now:
        return
    answered_at = sent_at + timedelta(hours=rng.uniform(0.2, 96.0))
    answers = rng.random() < RESPONSE_RATE and answered_at <= now
    language = row.language if row.language in rules.LANGUAGES else "en"
    session.add(
        Invitation(
            id=invitation_id,
            contact_id=row.id,
            member_id=row.member_id,
            language=language,
            agent=row.agent,
            team=row.team,
            channel=row.channel,
            reason=row.reason,
            product=row.product,
            country=row.country,
            contact_ended_at=row.ended_at,
            status="sent",
            skip_reason=None,
            created_at=row.ended_at,
            sent_at=sent_at,
            answered_at=answered_at if answers else None,
        )
    )
    counts["invitations"] += 1
    if not answers:
        return
    if row.agent not in skills:
        skills[row.agent] = _skill(seed, row.agent)
    recommend, interaction, experience = _answer_values(rng, skill=skills[row.agent], country=row.country)
    comment = None
    if rng.random() < 0.2:
        # Comments follow the experience: pick among those whose tone is closest.
        options = sorted(COMMENTS[language], key=lambda item: abs(item[1] - experience))[:2]
        comment = rng.choice(options)[0]
    suggestion = rng.choice(SUGGESTIONS[language]) if rng.random() < 0.06 else None
    answer = Answer(
        id=f"survey:{invitation_id}",
        invitation_id=invitation_id,
        contact_id=row.id,
        member_id=row.member_id,
        agent=row.agent,
        team=row.team,
        channel=row.channel,
        reason=row.reason,
        product=row.product,
        country=row.country,
        month=month_of(answered_at),
        answered_at=answered_at,
        recommend=recommend,
        interaction=interaction,
        comment=comment,
        suggestion=suggestion,
        language=language,
        source="demo",
        fingerprint="",
        created_at=answered_at,
    )
    session.flush()
    service.store_answer(session, row=answer, now=answered_at)
    counts["answers"] += 1
    if suggestion is not None:
        counts["suggestions"] += 1
        # Older suggestions have been looked at: some adopted (with what was done), some declined.
        age = (now - answered_at).days
        if age > 60:
            status = rng.choice(["adopted", "declined", "under_review", "under_review"])
            found = session.scalars(select(Suggestion).where(Suggestion.answer_id == answer.id)).one()
            found.status = status
            found.updated_at, found.updated_by = answered_at + timedelta(days=30), "demo-marketing"
            if status == "adopted":
                found.link = f"{LINKS['adopted']}{found.id}"


def load_voice_demo(
    engine: Engine, *, seed: int, now: datetime, progress: Callable[[int, int], None] | None = None
) -> dict[str, int]:
    """Survey the demo's contacts (read from the desk tables) and add barometers; returns counts."""
    with read_session(engine) as session:
        done = set(session.scalars(select(Invitation.contact_id)))
        rows = [
            row
            for row in session.execute(
                select(
                    Contact.id,
                    Contact.member_id,
                    Contact.agent,
                    Contact.team,
                    Contact.channel,
                    Contact.reason,
                    Contact.ended_at,
                    Member.language,
                    Member.product,
                    Member.country,
                )
                .join(Member, Member.id == Contact.member_id)
                .where(Contact.ended_at <= now)
                .order_by(Contact.ended_at, Contact.id)
            )
            if row.id not in done
        ]
    counts = {"invitations": 0, "answers": 0, "suggestions": 0, "barometers": 0}
    skills: dict[str, float] = {}
    for start in range(0, len(rows), CHUNK):
        with unit_of_work(engine) as session:
            for row in rows[start : start + CHUNK]:
                _play_contact(session, row, seed=seed, now=now, counts=counts, skills=skills)
        if progress is not None:
            progress(min(start + CHUNK, len(rows)), len(rows))
    if rows:
        first = rows[0].ended_at
        lines: list[dict[str, str | None]] = []
        for quarter in _quarters(first, now):
            for source, (metric, base, n) in BAROMETER_SOURCES.items():
                for country, style in COUNTRY_STYLE.items():
                    noise = random.Random(f"{seed}:voice:barometer:{source}:{country}:{quarter}").gauss(
                        0, 2.0
                    )
                    value = base + style * (8.0 if metric == "rtf" else 3.0) + noise
                    lines.append(
                        {
                            "source": source,
                            "country": country,
                            "quarter": quarter,
                            "metric": metric,
                            "value": f"{value:.1f}",
                            "n": str(n),
                        }
                    )
        with unit_of_work(engine) as session:
            stored = service.import_barometers(session, rows=lines, now=now)
        counts["barometers"] = stored["inserted"]
    return counts
