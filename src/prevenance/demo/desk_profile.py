"""The figures the desk demo is drawn from: volumes, reason and channel weights, how each channel
behaves, the concierge's kinds of request, benefit usage and members' tastes.

Data only; ``prevenance.demo.desk_plan`` turns them into a year of events. Change a figure here and
the plan changes with it (the plan is deterministic for a given seed, scale and these figures).
"""

from __future__ import annotations

DAY = 86_400.0
YEAR_DAYS = 365
CONTACTS_PER_DAY = 5_000
CONCIERGE_PER_DAY = 700
PREMIUM = ("platinum", "centurion")
TEAMS_PER_COUNTRY = 5
AGENTS_PER_TEAM = 8

CHANNELS = {"phone": 58, "email": 15, "chat": 12, "social": 4, "web": 8, "letter": 3}
# Relative weights of the reasons the general desk sees (a code not listed here weighs 1).
REASON_WEIGHTS = {
    "card.lost_stolen": 8,
    "card.damaged": 3,
    "card.declined": 8,
    "card.pin": 5,
    "statement.question": 10,
    "statement.dispute": 7,
    "statement.fees": 4,
    "rewards.balance": 7,
    "rewards.missing_points": 6,
    "rewards.redemption": 5,
    "rewards.partner_transfer": 2,
    "rewards.referral": 2,
    "travel.booking": 3,
    "travel.insurance": 3,
    "travel.lounge": 2,
    "account.details": 6,
    "account.benefits": 4,
    "account.closure": 2,
    "complaint.service": 3,
    "complaint.other": 2,
}
CONCIERGE_REASON = "concierge.request"
GROWING_REASON = "card.declined"  # rises over the last two months, so the analysis sees a trend
FIRST_RESOLVED = 0.80  # matters resolved at the first contact (phone; other channels below)
REPEAT_AFTER_RESOLVED = 0.08  # of those, the member calls again on the reason within the window
# How each channel behaves, as the practices the product cites describe it (chat or a call-back
# rather than e-mail when it is urgent): chat and the phone settle most matters at once and follow
# up within hours; an e-mail waits for its reply, settles fewer matters and brings more members
# back. channel -> (resolved at the first contact, repeat after a resolution, follow-up delay in
# hours (low, high), reply or handling time in minutes (median)).
CHANNEL_BEHAVIOUR: dict[str, tuple[float, float, tuple[float, float], float]] = {
    "phone": (FIRST_RESOLVED, REPEAT_AFTER_RESOLVED, (0.5, 24.0), 7.0),
    "chat": (0.85, 0.06, (0.2, 4.0), 12.0),
    "email": (0.62, 0.20, (8.0, 72.0), 240.0),
    "social": (0.70, 0.12, (2.0, 48.0), 60.0),
    "web": (0.70, 0.12, (4.0, 48.0), 180.0),
    "letter": (0.60, 0.15, (48.0, 120.0), 2_880.0),
}
CALLBACK_DELAY_HOURS = (0.25, 3.0)  # an agent calls back within hours
# Cities without a city team, per country (the city teams come from the desk configuration).
OTHER_CITIES = {
    "FR": ["Bordeaux", "Nantes", "Lille"],
    "GB": ["Manchester", "Edinburgh", "Bristol"],
    "DE": ["Hamburg", "Cologne", "Leipzig"],
    "IT": ["Naples", "Turin", "Bologna"],
    "ES": ["Valencia", "Seville", "Bilbao"],
}
# Statements and marketing mail cover the last months only (per member, not per contact: a year of
# them would be most of the demo's load time); the 360 shows the last 20 communications.
COMMUNICATION_MONTHS = 3
MODES = {"in_a_hurry": 40, "has_time": 35, "leave_me_alone": 25}
# Concierge requests: category -> (weight, hours from request to due (low, high), cost EUR (low, high),
# (title FR, title EN), solution template).
CONCIERGE_KINDS: dict[str, tuple[int, tuple[float, float], tuple[float, float], tuple[str, str], str]] = {
    "restaurant": (
        35,
        (3, 72),
        (0, 0),
        ("Table pour {n} à {city}", "Table for {n} in {city}"),
        "Table booked at {partner} for {n}; confirmation sent by text.",
    ),
    "flowers": (
        15,
        (2, 48),
        (60, 300),
        ("Bouquet livré à {city}", "Flowers delivered in {city}"),
        "Bouquet of seasonal roses by {partner}, delivered with a handwritten card.",
    ),
    "tickets": (
        18,
        (24, 720),
        (80, 900),
        ("Places de concert complet à {city}", "Sold-out concert tickets in {city}"),
        "Two category 1 seats found through {partner}; e-tickets sent.",
    ),
    "travel": (
        14,
        (48, 720),
        (300, 5000),
        ("Week-end à {city}", "Weekend in {city}"),
        "Suite and transfers arranged with {partner}; itinerary sent.",
    ),
    "gifts": (
        10,
        (24, 240),
        (100, 2000),
        ("Cadeau d'anniversaire à {city}", "Birthday present in {city}"),
        "Engraved gift sourced by {partner}, wrapped and delivered.",
    ),
    "events": (
        8,
        (72, 1440),
        (500, 20000),
        ("Soirée privée à {city}", "Private party in {city}"),
        "Private room, caterer and music organised with {partner}.",
    ),
}
PARTNERS_PER_CITY = 2  # per category
# Monthly probability that a member entitled to a benefit uses it (the rest is used on request).
BENEFIT_MONTHLY_USE = {
    "purchase_protection": 0.03,
    "extended_warranty": 0.02,
    "travel_insurance": 0.08,
    "lounge_access": 0.15,
    "travel_desk": 0.06,
}
EXPLAINED_LIFT = 2.0
DROP = ("lounge_access", "DE", 1 / 3)  # planted: last month's usage falls to a third
TASTES = (
    [
        "quiet tables",
        "window seat",
        "seafood",
        "modern art",
        "opera",
        "jazz",
        "white roses",
        "vintage champagne",
        "boutique hotels",
        "aisle seat",
        "vegetarian",
        "Italian wines",
    ],
    ["crowds", "loud music", "lilies", "red meat", "early mornings", "chain hotels"],
)
