"""Goodwill, the rules without I/O: the programme's ``goodwill`` section, which form a gesture takes
for a member (points, or a statement credit where customers prefer cash) and how much is left under
the member's monthly cap.

The section (every key optional, defaults below)::

    "goodwill": {
      "eur_per_point": "0.0065",          # what a goodwill point costs the programme
      "monthly_cap_eur": "50.00",         # per member and calendar month, both forms together
      "causes": {"late_card": {"points": 2500, "credit_eur": "15.00"},
                 "incident": {"points": 1000, "credit_eur": "10.00"}},
      "statement_credit": [{"country": "DE", "products": ["*"]}]
    }

``statement_credit`` lists where a statement credit replaces the points: a country and the card
products there (``*`` for all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any

CAUSES = ("late_card", "incident")
FORMS = ("points", "credit", "capped")
_KEYS = frozenset({"eur_per_point", "monthly_cap_eur", "causes", "statement_credit"})
_CAUSE_KEYS = frozenset({"points", "credit_eur"})
CENT = Decimal("0.01")


class GoodwillError(ValueError):
    """A goodwill section that cannot be used; ``field`` is its path in the programme."""

    def __init__(self, message: str, field: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Gesture:
    points: int
    credit_eur: Decimal


@dataclass(frozen=True)
class GoodwillPolicy:
    eur_per_point: Decimal
    monthly_cap_eur: Decimal
    causes: Mapping[str, Gesture]
    statement_credit: tuple[tuple[str, frozenset[str]], ...]


DEFAULT: dict[str, Any] = {
    "eur_per_point": "0.0065",
    "monthly_cap_eur": "50.00",
    "causes": {
        "late_card": {"points": 2500, "credit_eur": "15.00"},
        "incident": {"points": 1000, "credit_eur": "10.00"},
    },
    "statement_credit": [{"country": "DE", "products": ["*"]}, {"country": "CH", "products": ["*"]}],
}


def _money(value: Any, field: str, *, positive: bool = True) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise GoodwillError(f"{field} must be a decimal string", field)
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise GoodwillError(f"{field} must be a decimal string", field) from None
    if not amount.is_finite() or amount < 0 or (positive and amount == 0) or amount > Decimal("100000"):
        raise GoodwillError(f"{field} must be between 0 and 100000", field)
    return amount


def parse(section: Any) -> GoodwillPolicy:
    """The policy of a programme's ``goodwill`` section (None: the defaults); unknown keys refused."""
    if section is None:
        section = {}
    if not isinstance(section, Mapping):
        raise GoodwillError("goodwill must be an object", "goodwill")
    for key in section:
        if key not in _KEYS:
            raise GoodwillError(f"unknown key goodwill.{key}", f"goodwill.{key}")
    doc = {**DEFAULT, **section}
    causes_doc = {**DEFAULT["causes"], **(doc["causes"] if isinstance(doc["causes"], Mapping) else {})}
    if not isinstance(doc["causes"], Mapping):
        raise GoodwillError("goodwill.causes must be an object", "goodwill.causes")
    causes: dict[str, Gesture] = {}
    for cause, spec in causes_doc.items():
        path = f"goodwill.causes.{cause}"
        if cause not in CAUSES:
            raise GoodwillError(f"unknown goodwill cause {cause!r}", path)
        if not isinstance(spec, Mapping) or set(spec) - _CAUSE_KEYS:
            raise GoodwillError(f"{path} takes points and credit_eur", path)
        points = spec.get("points", 0)
        if isinstance(points, bool) or not isinstance(points, int) or not 0 <= points <= 10_000_000:
            raise GoodwillError(f"{path}.points must be an integer from 0", f"{path}.points")
        credit = _money(spec.get("credit_eur", "0"), f"{path}.credit_eur", positive=False)
        causes[cause] = Gesture(points=points, credit_eur=credit.quantize(CENT))
    where = doc["statement_credit"]
    if not isinstance(where, list):
        raise GoodwillError("goodwill.statement_credit must be a list", "goodwill.statement_credit")
    credit_where: list[tuple[str, frozenset[str]]] = []
    for index, item in enumerate(where):
        path = f"goodwill.statement_credit[{index}]"
        country = item.get("country") if isinstance(item, Mapping) else None
        products = item.get("products", ["*"]) if isinstance(item, Mapping) else None
        if (
            not isinstance(country, str)
            or len(country) != 2
            or not country.isalpha()
            or not country.isupper()
        ):
            raise GoodwillError(f"{path}.country must be an ISO alpha-2 code", f"{path}.country")
        if not isinstance(products, list) or not products or not all(isinstance(p, str) for p in products):
            raise GoodwillError(f"{path}.products must be a list of product codes or '*'", f"{path}.products")
        credit_where.append((country, frozenset(products)))
    return GoodwillPolicy(
        eur_per_point=_money(doc["eur_per_point"], "goodwill.eur_per_point"),
        monthly_cap_eur=_money(doc["monthly_cap_eur"], "goodwill.monthly_cap_eur", positive=False),
        causes=causes,
        statement_credit=tuple(credit_where),
    )


def prefers_credit(policy: GoodwillPolicy, *, country: str, product: str) -> bool:
    """Whether the member's country and card take goodwill as a statement credit."""
    return any(
        c == country and ("*" in products or product in products) for c, products in policy.statement_credit
    )


@dataclass(frozen=True)
class Decision:
    form: str  # points, credit or capped (nothing left under the cap)
    points: int
    credit_eur: Decimal
    cost_eur: Decimal


def decide(
    policy: GoodwillPolicy, *, cause: str, country: str, product: str, spent_this_month_eur: Decimal
) -> Decision:
    """The gesture for one member, cut to what the monthly cap leaves (``capped`` when nothing)."""
    gesture = policy.causes[cause]
    left = max(Decimal(0), policy.monthly_cap_eur - spent_this_month_eur)
    if prefers_credit(policy, country=country, product=product):
        credit = min(gesture.credit_eur, left).quantize(CENT, rounding=ROUND_DOWN)
        if credit <= 0:
            return Decision("capped", 0, Decimal("0.00"), Decimal("0.00"))
        return Decision("credit", 0, credit, credit)
    points = min(gesture.points, int((left / policy.eur_per_point).to_integral_value(rounding=ROUND_DOWN)))
    if points <= 0:
        return Decision("capped", 0, Decimal("0.00"), Decimal("0.00"))
    return Decision("points", points, Decimal("0.00"), points * policy.eur_per_point)
