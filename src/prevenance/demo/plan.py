"""The demo's story, planned in memory before anything is written: members across FR, GB, DE, IT, ES
on the five card products (names from a seeded Faker), who referred whom, a year of card payments
ending at the load date, refunds, and the moments members want to redeem — all from
``random.Random(seed)``, as offsets before an *anchor* (the load moment), so the plan does not depend
on the day it runs. ``generator`` plays it through the services.
"""

from __future__ import annotations

import random
import unicodedata
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from faker import Faker

YEAR = timedelta(days=365)

# country: (Faker locale, language, share of members, e-mail top-level domain, home currency)
COUNTRIES: dict[str, tuple[str, str, float, str, str]] = {
    "FR": ("fr_FR", "fr", 0.40, "fr", "EUR"),
    "GB": ("en_GB", "en", 0.20, "co.uk", "GBP"),
    "DE": ("de_DE", "en", 0.16, "de", "EUR"),
    "IT": ("it_IT", "en", 0.13, "it", "EUR"),
    "ES": ("es_ES", "en", 0.11, "es", "EUR"),
}

# Home cities per country with their weights; the first ones have a city team for emergency cards.
HOME_CITIES: dict[str, dict[str, int]] = {
    "FR": {"Paris": 40, "Lyon": 14, "Bordeaux": 10, "Nantes": 8, "Lille": 8, "Marseille": 12, "Nice": 8},
    "GB": {"London": 45, "Manchester": 15, "Edinburgh": 12, "Bristol": 10, "Leeds": 10, "Glasgow": 8},
    "DE": {"Frankfurt": 18, "Munich": 20, "Berlin": 25, "Hamburg": 17, "Cologne": 12, "Leipzig": 8},
    "IT": {"Milan": 30, "Rome": 28, "Naples": 14, "Turin": 12, "Bologna": 10, "Florence": 6},
    "ES": {"Madrid": 35, "Barcelona": 25, "Valencia": 14, "Seville": 12, "Bilbao": 8, "Malaga": 6},
}


def home_city(seed: int, ref: str, country: str) -> str | None:
    """A member's home city, drawn from a generator of its own so adding cities changed nothing
    else in the plan."""
    cities = HOME_CITIES.get(country)
    if not cities:
        return None
    return random.Random(f"{seed}:city:{ref}").choices(list(cities), list(cities.values()))[0]


# product: (share of members, payments a year, spending scale)
PRODUCTS: dict[str, tuple[float, float, float]] = {
    "green": (0.36, 18.0, 0.9),
    "gold": (0.30, 26.0, 1.2),
    "platinum": (0.15, 38.0, 1.8),
    "centurion": (0.03, 60.0, 3.0),
    "cobrand-airline": (0.16, 28.0, 1.2),
}
POINTS_PRODUCTS = ("green", "gold", "platinum", "centurion")

# category: (share of payments, median amount in euros, spread of the log-normal)
CATEGORIES: dict[str, tuple[float, float, float]] = {
    "groceries": (0.22, 48.0, 0.6),
    "dining": (0.20, 38.0, 0.7),
    "fuel": (0.09, 62.0, 0.3),
    "fashion": (0.09, 120.0, 0.8),
    "books": (0.07, 24.0, 0.5),
    "entertainment": (0.08, 35.0, 0.6),
    "electronics": (0.05, 190.0, 0.9),
    "travel": (0.12, 240.0, 0.9),
    "hotels": (0.08, 260.0, 0.7),
}

# Merchants by category: those every country sees, then each country's own.
MERCHANTS: dict[str, dict[str, list[str]]] = {
    "groceries": {
        "FR": ["Monoprix", "Carrefour Market", "Grand Frais", "La Grande Épicerie de Paris"],
        "GB": ["Waitrose", "Tesco", "Marks & Spencer Food", "Sainsbury's"],
        "DE": ["Edeka", "REWE", "Alnatura", "Kaufland"],
        "IT": ["Esselunga", "Coop", "Eataly", "Conad"],
        "ES": ["Mercadona", "El Corte Inglés Supermercado", "Carrefour", "Sánchez Romero"],
    },
    "dining": {
        "*": ["Deliveroo", "Uber Eats"],
        "FR": ["Brasserie Lipp", "Le Comptoir du Relais", "Café de Flore", "Bouillon Chartier"],
        "GB": ["Dishoom", "The Ivy", "Pret A Manger", "Hawksmoor"],
        "DE": ["Borchardt", "Café Einstein", "Hofbräuhaus", "Nordsee"],
        "IT": ["Trattoria da Enzo", "Caffè Florian", "Pizzeria Da Michele", "Cracco"],
        "ES": ["Casa Lucio", "Botín", "El Nacional", "Café Gijón"],
    },
    "fuel": {
        "*": ["Shell", "BP"],
        "FR": ["TotalEnergies"],
        "GB": ["Esso"],
        "DE": ["Aral"],
        "IT": ["Eni"],
        "ES": ["Repsol", "Cepsa"],
    },
    "fashion": {
        "*": ["Zara", "COS"],
        "FR": ["Galeries Lafayette", "Printemps", "Le Bon Marché"],
        "GB": ["Selfridges", "Harrods", "Liberty London"],
        "DE": ["KaDeWe", "Breuninger"],
        "IT": ["La Rinascente", "Coin"],
        "ES": ["El Corte Inglés", "Loewe"],
    },
    "books": {
        "*": ["Page & Platine"],
        "FR": ["Librairie Gallimard", "Shakespeare and Company"],
        "GB": ["Waterstones", "Foyles"],
        "DE": ["Hugendubel", "Thalia"],
        "IT": ["Feltrinelli", "Libreria Acqua Alta"],
        "ES": ["Casa del Libro", "Librería Bertrand"],
    },
    "entertainment": {
        "*": ["Spotify", "Netflix", "Ticketmaster"],
        "FR": ["Opéra national de Paris", "UGC Ciné Cité"],
        "GB": ["Royal Albert Hall", "Odeon"],
        "DE": ["Berliner Philharmoniker", "CinemaxX"],
        "IT": ["Teatro alla Scala", "UCI Cinemas"],
        "ES": ["Teatro Real", "Cinesa"],
    },
    "electronics": {
        "*": ["Apple Store"],
        "FR": ["Fnac Darty", "Boulanger"],
        "GB": ["Currys", "John Lewis"],
        "DE": ["MediaMarkt", "Saturn"],
        "IT": ["Unieuro", "MediaWorld"],
        "ES": ["MediaMarkt", "PcComponentes"],
    },
    "travel": {
        "*": ["Skyline Airways", "easyJet", "Hertz", "Sixt"],
        "FR": ["Air France", "SNCF Connect", "Eurostar"],
        "GB": ["British Airways", "Eurostar", "Trainline"],
        "DE": ["Lufthansa", "Deutsche Bahn"],
        "IT": ["ITA Airways", "Trenitalia", "Italo"],
        "ES": ["Iberia", "Renfe", "Vueling"],
    },
    "hotels": {
        "*": ["Maison Hotels & Resorts", "Marriott Bonvoy", "Four Seasons"],
        "FR": ["Hôtel Plaza Athénée", "Accor Live Limitless"],
        "GB": ["The Savoy", "Claridge's"],
        "DE": ["Hotel Adlon Kempinski", "Bayerischer Hof"],
        "IT": ["Hotel Danieli", "Hotel Hassler Roma"],
        "ES": ["Hotel Ritz Madrid", "Hotel Arts Barcelona"],
    },
}

# Payments abroad: (currency, merchant, category, median amount in that currency)
ABROAD: list[tuple[str, str, str, float]] = [
    ("GBP", "Harrods", "fashion", 180.0),
    ("GBP", "The Savoy", "hotels", 420.0),
    ("GBP", "Dishoom", "dining", 55.0),
    ("USD", "Macy's Herald Square", "fashion", 140.0),
    ("USD", "The Plaza New York", "hotels", 650.0),
    ("USD", "Uber", "travel", 28.0),
    ("USD", "Delta Air Lines", "travel", 720.0),
    ("CHF", "Hotel Baur au Lac", "hotels", 690.0),
    ("CHF", "SBB CFF FFS", "travel", 84.0),
    ("CHF", "Confiserie Sprüngli", "dining", 46.0),
    ("EUR", "Galeries Lafayette", "fashion", 150.0),  # a British member in Paris
]

# sku: (name, points, stock)
CATALOGUE: dict[str, tuple[str, int, int]] = {
    "umbrella": ("Folding umbrella", 1_500, 400),
    "knife-set": ("Six-piece kitchen knife set", 4_500, 300),
    "champagne": ("Champagne magnum", 6_000, 300),
    "espresso": ("Espresso machine", 12_000, 150),
    "weekend-bag": ("Leather weekend bag", 18_000, 100),
    "headphones": ("Noise-cancelling headphones", 25_000, 80),
    "smartwatch": ("Smartwatch", 32_000, 50),
    "hifi": ("Hi-fi system", 60_000, 15),
}

# code: (kind, name, points per block, partner units per block)
PARTNERS: dict[str, tuple[str, str, int, int]] = {
    "skyline": ("airline", "Skyline Airways Miles", 1_000, 1_000),
    "maison": ("hotel", "Maison Hotels & Resorts", 2_000, 1_000),
    "page-platine": ("merchant", "Page & Platine (books and music)", 1_000, 10),
}
ECODE_PARTNER = "page-platine"
ECODE_VALUES = (1_000, 2_500)  # points per e-code (a €10 and a €25 voucher)


@dataclass(frozen=True)
class Person:
    ref: str
    name: str
    email: str
    language: str
    country: str
    product: str
    joined_before: timedelta  # how long before the anchor the member joined
    city: str | None = None  # home city (drawn from its own generator: the rest of the plan is unchanged)


@dataclass(order=True)
class Event:
    """One call to play, ``before`` the anchor (larger = earlier)."""

    at: float  # seconds after the start of the year, for sorting
    seq: int
    kind: str = field(compare=False)
    data: dict[str, Any] = field(compare=False)


@dataclass
class Plan:
    people: list[Person]
    referrals: list[tuple[str, int, int]]  # (id, referrer index, referee index)
    events: list[Event]


def _ascii(text: str) -> str:
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    return "".join(c for c in plain.lower() if c.isalnum())


def _weighted(rng: random.Random, table: dict[str, Any], index: int = 0) -> str:
    keys = list(table)
    return rng.choices(keys, weights=[table[k][index] for k in keys])[0]


def _money(value: float) -> str:
    return f"{max(value, 0.3):.2f}"


def _people(rng: random.Random, *, members: int, seed: int) -> list[Person]:
    fakers = {country: Faker(locale) for country, (locale, *_) in COUNTRIES.items()}
    for offset, fake in enumerate(fakers.values()):
        fake.seed_instance(seed * 101 + offset)
    people = []
    for i in range(members):
        if i == 0:  # the showcase member a demo member key acts for
            country, product = "FR", "platinum"
        elif i <= 10:  # even a small demo has every country and every product
            country, product = list(COUNTRIES)[i % 5], list(PRODUCTS)[(i * 2) % 5]
        else:
            country, product = _weighted(rng, COUNTRIES, 2), _weighted(rng, PRODUCTS, 0)
        _, language, _, tld, _ = COUNTRIES[country]
        fake = fakers[country]
        first, last = fake.first_name(), fake.last_name()
        email = f"{_ascii(first)}.{_ascii(last)}{i}@example.{tld}"
        joined = YEAR + timedelta(days=int(rng.expovariate(1 / 900)), seconds=rng.randrange(86_400))
        ref = f"demo-{seed}-{i + 1:05d}"
        city = home_city(seed, ref, country)
        people.append(Person(ref, f"{first} {last}", email, language, country, product, joined, city))
    return people


def plan(*, members: int, seed: int) -> Plan:
    """The demo's whole story, as offsets from the anchor (no database, no clock)."""
    rng = random.Random(seed)
    people = _people(rng, members=members, seed=seed)
    year = YEAR.total_seconds()

    # About one member in fifteen joined this year, referred by an older member.
    referrals: list[tuple[str, int, int]] = []
    referees = sorted(rng.sample(range(1, members), k=max(1, members // 15))) if members > 2 else []
    referred = set(referees)
    veterans = [i for i in range(members) if i not in referred]
    for n, referee in enumerate(referees):
        referrer = 0 if n == 0 else rng.choice(veterans)
        person = people[referee]
        joined = timedelta(days=rng.randint(30, 300), seconds=rng.randrange(86_400))
        people[referee] = Person(**{**person.__dict__, "joined_before": joined})
        referrals.append((f"demo-{seed}-ref{n + 1:05d}", referrer, referee))

    events: list[Event] = []
    seq = 0

    def add(before: float, what: str, **data: Any) -> None:
        nonlocal seq
        seq += 1
        events.append(Event(year - before, seq, what, data))

    tx_number = refund_number = redemption_number = 0
    for index, person in enumerate(people):
        active = min(person.joined_before.total_seconds(), year) - 3_600
        _, per_year, scale = PRODUCTS[person.product]
        count = per_year * rng.lognormvariate(-0.08, 0.4) * active / year
        count = max(3, round(count * (1.6 if index == 0 else 1)))
        home = COUNTRIES[person.country][4]
        for _ in range(count):
            tx_number += 1
            tx_id = f"demo-{seed}-tx{tx_number:07d}"
            before = rng.uniform(60, active)
            if rng.random() < 0.05:
                currency, merchant, category, median = rng.choice(ABROAD)
                if currency == home:
                    currency, merchant, category, median = ABROAD[-1]
                amount = median * rng.lognormvariate(0, 0.5)
            else:
                category = _weighted(rng, CATEGORIES, 0)
                _, median, spread = CATEGORIES[category]
                shops = MERCHANTS[category]
                merchant = rng.choice(shops.get("*", []) + shops[person.country])
                currency = home
                amount = median * scale * rng.lognormvariate(0, spread)
                if category == "dining" and rng.random() < 0.15:
                    amount = rng.uniform(0.4, 4.5)  # a coffee still earns a point
                if currency == "GBP":
                    amount /= 1.17
            amount_text = _money(amount)
            add(
                before,
                "tx",
                id=tx_id,
                member=index,
                amount=amount_text,
                currency=currency,
                merchant=merchant,
                category=category,
            )
            refund_odds = 0.06 if category in ("fashion", "electronics", "travel", "hotels") else 0.01
            if rng.random() < refund_odds and before > 86_400:
                refund_number += 1
                cents = round(float(amount_text) * 100)
                part = cents if rng.random() < 0.6 else max(1, round(cents * rng.uniform(0.1, 0.9)))
                later = rng.uniform(3_600, min(before - 60, 30 * 86_400))
                add(
                    before - later,
                    "refund",
                    id=f"demo-{seed}-rf{refund_number:06d}",
                    tx=tx_id,
                    member=index,
                    amount=f"{part / 100:.2f}",
                )

        # Redemption wishes of points members, mostly late in the year when points have built up.
        if person.product not in POINTS_PRODUCTS:
            continue
        wishes: list[str] = []
        if index == 0:
            wishes = ["catalogue", "ecode", "transfer", "travel", "travel", "catalogue"]
        elif rng.random() < 0.4:
            wishes = rng.choices(
                ["catalogue", "ecode", "transfer", "travel"], [30, 25, 25, 20], k=rng.randint(1, 3)
            )
        travels = 0
        for kind in wishes:
            redemption_number += 1
            latest = 60 * 86_400 if index == 0 else year * 0.7  # the showcase redeems late
            before = rng.uniform(3_600, min(active, latest))
            data = {
                "id": f"demo-{seed}-rd{redemption_number:06d}",
                "member": index,
                "kind": kind,
                "u": rng.random(),
                "v": rng.random(),
            }
            add(before, "redeem", **data)
            if kind == "travel":
                travels += 1
                void = rng.random() < 0.2 if index else travels == 2
                add(
                    before - rng.uniform(120, 1_200),
                    "resolve",
                    id=data["id"],
                    action="void" if void else "confirm",
                )
    events.sort()
    return Plan(people, referrals, events)
