"""Demo desk data, the plan: a year of contacts, cases, emergency cards, communications and contact
preferences, at the desk's target volume scaled by ``scale``, written through ``prevenance.desk.service``.

Rates: 5,000 contacts a day and 700 concierge requests a day, times
``scale`` (0.01 → 50 contacts and 7 concierge contacts a day). The contacts are spread over the
demo's members in all its countries. Concierge matters come from premium members (platinum,
centurion) to the concierge team: each is a contact on ``concierge.request`` and a concierge request
(restaurant, flowers, tickets, travel, gifts, events) in the member's city, solved through a partner
of the network (a code of the partner directory, with its cost) or, now and then, cancelled; a
third of the premium members have tastes on file. Two incidents are declared: a resolved one on
declined cards in Lyon two months ago, and one still active at the anchor on the showcase
member's city (their notices wait for an SMTP relay). Each country has 40 agents in 5 teams (and a
concierge team of 4).

Benefits: each month a member uses each benefit of their card with a benefit's own probability
(twice as likely after an agent explained it at an ``account.benefits`` contact, where two of the
card's benefits are explained); lounge access in Germany drops to a third in the last month, so
the monthly usage monitoring has an alert to raise.

Contacts come as *matters*: most are resolved on the first contact, the others take one or two
follow-ups in the same case (call-backs, transfers, escalations), and a few first-contact
resolutions are followed by a new contact on the same reason within the FCR window, so the
computed first-contact resolution lands near 70-80 %. Channels behave as the sources describe
(``CHANNEL_BEHAVIOUR``): chat and call-backs settle a matter faster than e-mail. Lost or stolen cards order an emergency
replacement (half of them in a city-team city; a tenth delivered late). Over the last
``COMMUNICATION_MONTHS`` months every member receives a monthly statement and a monthly marketing
mail (never a ``leave_me_alone`` member); some resolved contacts are followed by a survey
invitation. A quarter of the members state a contact
preference.

Everything is planned here (``plan_desk``, no database) from ``random.Random(f"{seed}:desk:{scale}")`` as offsets before the
anchor of the loyalty demo, then played in time order by ``prevenance.demo.desk`` (the clock of each call is the event's
time; events after the anchor are left out), a unit of work per chunk. Ids derive from the seed and
the scale, and every write is idempotent (by id, or by nature for preferences and card steps), so a
rerun adds nothing.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol

from prevenance.demo.desk_profile import (
    AGENTS_PER_TEAM,
    BENEFIT_MONTHLY_USE,
    CALLBACK_DELAY_HOURS,
    CHANNEL_BEHAVIOUR,
    CHANNELS,
    COMMUNICATION_MONTHS,
    CONCIERGE_KINDS,
    CONCIERGE_PER_DAY,
    CONCIERGE_REASON,
    CONTACTS_PER_DAY,
    DAY,
    DROP,
    EXPLAINED_LIFT,
    GROWING_REASON,
    MODES,
    OTHER_CITIES,
    PARTNERS_PER_CITY,
    PREMIUM,
    REASON_WEIGHTS,
    TASTES,
    TEAMS_PER_COUNTRY,
    YEAR_DAYS,
)
from prevenance.desk import config as desk_config
from prevenance.desk import service as desk

CHUNK = 2_000  # events per unit of work


class Person(Protocol):
    """What the desk demo needs of a planned member (``plan.Person``)."""

    @property
    def ref(self) -> str: ...
    @property
    def language(self) -> str: ...
    @property
    def country(self) -> str: ...
    @property
    def product(self) -> str: ...
    @property
    def joined_before(self) -> timedelta: ...
    @property
    def city(self) -> str | None: ...


@dataclass(order=True)
class DeskEvent:
    before: float  # seconds before the anchor (larger = earlier)
    seq: int
    kind: str = field(compare=False)
    data: dict[str, Any] = field(compare=False)


def _weighted(rng: random.Random, weights: Mapping[str, float]) -> str:
    return rng.choices(list(weights), list(weights.values()))[0]


def _agent(rng: random.Random, country: str, *, concierge: bool = False) -> tuple[str, str]:
    c = country.lower()
    if concierge:
        return f"{c}-concierge-{rng.randint(1, 4):02d}", f"{c}-concierge"
    team = rng.randint(1, TEAMS_PER_COUNTRY)
    return (
        f"{c}-agent-{(team - 1) * AGENTS_PER_TEAM + rng.randint(1, AGENTS_PER_TEAM):02d}",
        f"{c}-team-{team}",
    )


def _duration(rng: random.Random, channel: str) -> float:
    """Seconds from the contact's start to its end: the call or chat, or the wait for a reply."""
    minutes = CHANNEL_BEHAVIOUR[channel][3]
    return max(45.0, minutes * 60 * rng.lognormvariate(0, 0.5))


def _capital(country: str) -> str:
    return {"FR": "Paris", "GB": "London", "DE": "Berlin", "IT": "Rome", "ES": "Madrid"}.get(country, "Paris")


def _partner_code(country: str, city: str, category: str, k: int) -> str:
    return f"{country.lower()}-{city.lower().replace(' ', '-')}-{category}-{k + 1}"


def _directory_cities(people: Sequence[Person]) -> dict[str, list[str]]:
    """Every city where a premium member lives, per country (the partner directory covers them)."""
    found: dict[str, set[str]] = {}
    for person in people:
        if person.product in PREMIUM:
            found.setdefault(person.country, set()).add(person.city or _capital(person.country))
    return {country: sorted(cities) for country, cities in sorted(found.items())}


def id_prefix(seed: int, scale: float) -> str:
    return f"demo-{seed}-desk{round(scale * 1_000_000)}"


def plan_desk(people: Sequence[Person], *, seed: int, scale: float) -> list[DeskEvent]:
    """The desk's year as events before the anchor, sorted oldest first; deterministic."""
    planner = _DeskPlanner(people, seed=seed, scale=scale)
    planner.contacts_of_the_year()
    planner.preferences_and_mailings()
    planner.benefit_usage()
    planner.directory_and_tastes()
    planner.incidents()
    # Oldest first: largest ``before`` first; ties in planning order.
    planner.events.sort(key=lambda e: (-e.before, e.seq))
    return [e for e in planner.events if e.before > 0]


class _DeskPlanner:
    """One plan in the making: the random stream, the events so far and the ids handed out.

    Every step draws from the one ``rng`` in a fixed order (the phases of ``plan_desk``, in turn), so
    the same seed and scale give the same events.
    """

    def __init__(self, people: Sequence[Person], *, seed: int, scale: float) -> None:
        self.people = people
        self.scale = scale
        self.rng = random.Random(f"{seed}:desk:{scale}")
        self.prefix = id_prefix(seed, scale)
        reasons = [r["code"] for r in desk.list_reasons() if r["code"] != CONCIERGE_REASON]
        self.base_weights = {code: float(REASON_WEIGHTS.get(code, 1)) for code in reasons}
        self.known_reasons = {r["code"] for r in desk.list_reasons()}
        catalogue = desk_config.current().benefits.catalogue
        self.benefit_products = {code: set(b.products) for code, b in catalogue.items()}
        self.city_teams: dict[str, list[str]] = {}
        for team in desk_config.current().card.city_teams:
            self.city_teams.setdefault(team.country, []).append(team.city)
        self.premium = [i for i, p in enumerate(people) if p.product in PREMIUM]
        self.events: list[DeskEvent] = []
        self.seq = 0
        self.counters: dict[str, int] = {}
        self.explained: dict[int, dict[str, float]] = {}  # member -> benefit -> when (before anchor)

    def new_id(self, kind: str) -> str:
        self.counters[kind] = self.counters.get(kind, 0) + 1
        return f"{self.prefix}-{kind}{self.counters[kind]:07d}"

    def add(self, before: float, what: str, **data: Any) -> None:
        self.seq += 1
        self.events.append(DeskEvent(before, self.seq, what, data))

    def member_at(self, before: float, pool: Sequence[int]) -> int | None:
        """A member of ``pool`` who had joined an hour before ``before`` (None after 20 tries)."""
        for _ in range(20):
            index = pool[self.rng.randrange(len(pool))]
            if self.people[index].joined_before.total_seconds() > before + 3_600:
                return index
        return None

    # --- contacts and what they lead to -----------------------------------------------------------

    def contacts_of_the_year(self) -> None:
        """A year of days, oldest first, weekdays busier than weekends: general and concierge matters."""
        rng = self.rng
        general = CONTACTS_PER_DAY * self.scale / 1.3  # matters a day (a matter is about 1.3 contacts)
        concierge = CONCIERGE_PER_DAY * self.scale / 1.3
        everyone = list(range(len(self.people)))
        for day in range(YEAR_DAYS, 0, -1):
            weekday = (YEAR_DAYS - day) % 7 < 5
            factor = 1.15 if weekday else 0.6
            weights = dict(self.base_weights)
            if day < 60 and GROWING_REASON in weights:
                weights[GROWING_REASON] *= 1.8
            for rate, pool, is_concierge in ((general, everyone, False), (concierge, self.premium, True)):
                if not pool:
                    continue
                expected = rate * factor
                count = int(expected) + (rng.random() < expected - int(expected))
                for _ in range(count):
                    before = (day - 1) * DAY + rng.uniform(7 * 3_600, 20 * 3_600)
                    member = self.member_at(before, pool)
                    if member is None:
                        continue
                    if is_concierge:
                        if CONCIERGE_REASON not in self.known_reasons:
                            continue
                        reason = CONCIERGE_REASON
                    else:
                        reason = _weighted(rng, weights)
                    self.matter(before, member, reason, concierge=is_concierge)
                    if is_concierge:
                        self.concierge_request(before, member)

    def contact(
        self,
        before: float,
        member: int,
        reason: str,
        channel: str,
        outcome: str,
        matter: str,
        *,
        concierge: bool,
        direction: str = "inbound",
    ) -> float:
        """Add one contact starting ``before`` the anchor; returns when it ended (before the anchor)."""
        rng = self.rng
        agent, team = _agent(rng, self.people[member].country, concierge=concierge)
        ended = before - min(_duration(rng, channel), before * 0.9)  # never past the anchor
        contact_id = self.new_id("ct")
        self.add(
            ended - rng.uniform(5, 120),  # logged when it ends
            "contact",
            id=contact_id,
            member=member,
            matter=matter,
            channel=channel,
            direction=direction,
            agent=agent,
            team=team,
            reason=reason,
            started=before,
            ended=ended,
            outcome=outcome,
        )
        if reason == "account.benefits" and outcome == "resolved":
            self.explain(ended - 300, member, contact_id)
        return ended

    def matter(self, before: float, member: int, reason: str, *, concierge: bool) -> None:
        """One matter: resolved at the first contact (perhaps back later), or followed up in its case."""
        rng = self.rng
        channel = "phone" if concierge and rng.random() < 0.7 else _weighted(rng, CHANNELS)
        key = self.new_id("m")
        first_resolved, repeat_after, (wait_low, wait_high), _ = CHANNEL_BEHAVIOUR[channel]
        if rng.random() < first_resolved:
            ended = self.contact(before, member, reason, channel, "resolved", key, concierge=concierge)
            if rng.random() < repeat_after:  # it came back: a new case on the same reason
                again = ended - rng.uniform(3_600, 6.5 * DAY)
                if again > 0:
                    repeat_channel = _weighted(rng, CHANNELS)
                    self.contact(
                        again,
                        member,
                        reason,
                        repeat_channel,
                        "resolved",
                        self.new_id("m"),
                        concierge=concierge,
                    )
            if reason == "card.lost_stolen" and rng.random() < 0.6:
                self.replacement(ended - 60, member)
            if rng.random() < 0.3:
                self.add(ended - 3_600, "communication", id=self.new_id("sv"), member=member, kind="survey")
            return
        first = rng.choices(["pending", "transferred", "callback_scheduled", "escalated"], [35, 25, 25, 15])[
            0
        ]
        ended = self.contact(before, member, reason, channel, first, key, concierge=concierge)
        follow_ups = 1 if rng.random() < 0.75 else 2
        for step in range(follow_ups):
            callback = first == "callback_scheduled" and step == 0
            low, high = CALLBACK_DELAY_HOURS if callback else (wait_low, wait_high)
            later = ended - rng.uniform(low, high) * 3_600
            if later <= 0:
                return  # still open at the anchor
            last = step == follow_ups - 1
            outcome = "resolved" if last and rng.random() < 0.95 else "pending"
            if callback:  # the agent calls back
                ended = self.contact(
                    later, member, reason, "phone", outcome, key, concierge=concierge, direction="outbound"
                )
            else:
                ended = self.contact(later, member, reason, channel, outcome, key, concierge=concierge)

    def concierge_request(self, before: float, member: int) -> None:
        """A concierge request in the member's city, solved through a partner of the directory."""
        rng = self.rng
        person = self.people[member]
        city = person.city or _capital(person.country)
        category = _weighted(rng, {k: v[0] for k, v in CONCIERGE_KINDS.items()})
        _, (due_low, due_high), (cost_low, cost_high), titles, solution = CONCIERGE_KINDS[category]
        due = before - rng.uniform(due_low, due_high) * 3_600
        partner = _partner_code(person.country, city, category, rng.randrange(PARTNERS_PER_CITY))
        n = rng.randint(2, 8)
        request = self.new_id("cq")
        self.add(
            before - 60,
            "concierge",
            id=request,
            member=member,
            category=category,
            city=city,
            title=titles[0 if person.language == "fr" else 1].format(n=n, city=city),
            due=due,
        )
        fate = rng.random()
        if fate < 0.05:
            self.add(before - rng.uniform(600, 6 * 3_600), "concierge_status", id=request, status="cancelled")
            return
        started = before - rng.uniform(300, 3_600)
        self.add(started, "concierge_status", id=request, status="in_progress")
        done = started - (started - due) * rng.uniform(0.2, 0.9 if fate < 0.93 else 1.2)
        cost = round(rng.uniform(cost_low, cost_high), 2) if cost_high else None
        self.add(
            done,
            "concierge_status",
            id=request,
            status="solved",
            partner=partner,
            cost=None if cost is None else f"{cost:.2f}",
            solution=solution.format(partner=partner, n=n),
        )

    def explain(self, before: float, member: int, contact_id: str) -> None:
        """Two of the member's card benefits explained at a contact (their usage rises after)."""
        entitled = [b for b in BENEFIT_MONTHLY_USE if self.people[member].product in self.benefit_products[b]]
        if entitled:
            chosen = self.rng.sample(entitled, min(2, len(entitled)))
            self.add(before, "explain", contact=contact_id, benefits=chosen)
            for benefit in chosen:
                self.explained.setdefault(member, {})[benefit] = before

    def replacement(self, before: float, member: int) -> None:
        """An emergency card ordered, dispatched and delivered (a tenth of them late)."""
        rng = self.rng
        country = self.people[member].country
        teams = self.city_teams.get(country, [])
        if teams and rng.random() < 0.5:
            city, promise = rng.choice(teams), desk_config.current().card.city_team_hours * 3_600.0
        else:
            city = rng.choice(OTHER_CITIES.get(country, ["Elsewhere"]))
            promise = desk_config.current().card.elsewhere_hours * 3_600.0
        rid = self.new_id("cr")
        self.add(before, "order", id=rid, member=member, city=city, country=country)
        late = rng.random() < 0.1
        delivered = before - promise * (rng.uniform(1.05, 1.8) if late else rng.uniform(0.3, 0.95))
        self.add(before - (before - delivered) * rng.uniform(0.2, 0.5), "advance", id=rid, action="dispatch")
        self.add(delivered, "advance", id=rid, action="deliver")

    # --- per member, over the year ----------------------------------------------------------------

    def preferences_and_mailings(self) -> None:
        """Contact preferences for a quarter of the members; monthly statements and marketing mail."""
        rng = self.rng
        for index, person in enumerate(self.people):
            joined = person.joined_before.total_seconds()
            alone = False
            if rng.random() < 0.25:
                mode = _weighted(rng, MODES)
                alone = mode == "leave_me_alone"
                channel = rng.choice([None, "phone", "email", "chat"])
                self.add(
                    min(joined, 360 * DAY) - rng.uniform(3_600, 5 * DAY),
                    "preference",
                    member=index,
                    mode=mode,
                    channel=channel,
                )
            for month in range(COMMUNICATION_MONTHS):  # a statement and a marketing mail a month
                sent = month * 30.4 * DAY + 2 * DAY + 6 * 3_600
                if sent < joined - DAY:
                    self.add(sent, "communication", id=self.new_id("st"), member=index, kind="statement")
                sent = month * 30.4 * DAY + 15 * DAY + 10 * 3_600
                if not alone and sent < joined - DAY:
                    self.add(sent, "communication", id=self.new_id("mk"), member=index, kind="marketing")

    def benefit_usage(self) -> None:
        """Benefit usage, month by month (30-day months back from the anchor, oldest first)."""
        rng = self.rng
        for index, person in enumerate(self.people):
            joined = person.joined_before.total_seconds()
            for month in range(12, 0, -1):
                start = month * 30 * DAY
                if start > joined:
                    continue
                for benefit, base in BENEFIT_MONTHLY_USE.items():
                    if person.product not in self.benefit_products.get(benefit, set()):
                        continue
                    rate = base
                    if self.explained.get(index, {}).get(benefit, -1.0) > start:
                        rate *= EXPLAINED_LIFT
                    if month == 1 and (benefit, person.country) == DROP[:2]:
                        rate *= DROP[2]
                    if rng.random() < rate:
                        self.add(
                            start - rng.uniform(0, 29 * DAY),
                            "usage",
                            id=self.new_id("bu"),
                            member=index,
                            benefit=benefit,
                        )

    def directory_and_tastes(self) -> None:
        """The partner directory, there before the year starts; tastes for a third of premium members."""
        rng = self.rng
        for country, cities in _directory_cities(self.people).items():
            for city in cities:
                for category in CONCIERGE_KINDS:
                    for k in range(PARTNERS_PER_CITY):
                        self.add(
                            (YEAR_DAYS + 1) * DAY,
                            "partner",
                            code=_partner_code(country, city, category, k),
                            country=country,
                            city=city,
                            category=category,
                            rating=rng.randint(3, 5),
                        )
        for index in self.premium:
            if rng.random() < 0.33:
                likes = rng.sample(TASTES[0], 3)
                dislikes = rng.sample(TASTES[1], 1)
                self.add(
                    min(self.people[index].joined_before.total_seconds(), YEAR_DAYS * DAY) - DAY,
                    "tastes",
                    member=index,
                    likes=likes,
                    dislikes=dislikes,
                )

    def incidents(self) -> None:
        """Two incidents: one resolved in Lyon, one active at the anchor in the showcase member's city."""
        if not self.people:
            return
        showcase = self.people[0]
        showcase_city = showcase.city or _capital(showcase.country)
        self.add(
            62 * DAY,
            "incident",
            id=f"{self.prefix}-inc-lyon",
            city="Lyon",
            reasons=["card.declined"],
            title=("Paiements refusés à Lyon", "Card payments declined in Lyon"),
            since=62.2 * DAY,
        )
        self.add(60 * DAY, "incident_resolve", id=f"{self.prefix}-inc-lyon")
        self.add(
            2 * DAY,
            "incident",
            id=f"{self.prefix}-inc-now",
            city=showcase_city,
            reasons=["card.declined", "statement.question"],
            title=(
                f"Paiements sans contact indisponibles à {showcase_city}",
                f"Contactless payments unavailable in {showcase_city}",
            ),
            since=2.1 * DAY,
        )
