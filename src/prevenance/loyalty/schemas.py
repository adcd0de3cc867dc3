"""Wire models of the rewards programme."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prevenance.common.inputs import INT32_MAX, Moment
from prevenance.common.money import AMOUNT_PATTERN, CURRENCY_PATTERN

Id = Annotated[str, Field(min_length=1, max_length=200)]
DecimalString = Annotated[str, Field(min_length=1, max_length=40, examples=["42.50"])]
# The pattern is stated for clients; the API checks the same rule itself (with the currency's own
# number of decimal digits) and answers a 422 naming the field.
Amount = Annotated[
    str,
    Field(
        min_length=1,
        max_length=40,
        examples=["42.50"],
        description="a positive decimal string below 10^12, with no more decimal digits than the"
        " currency allows (EUR 2, JPY 0, KWD 3)",
        json_schema_extra={"pattern": AMOUNT_PATTERN},
    ),
]
Currency = Annotated[
    str,
    Field(
        min_length=3,
        max_length=3,
        examples=["EUR"],
        description="ISO 4217 code of a currency the programme has a rate for",
        json_schema_extra={"pattern": CURRENCY_PATTERN},
    ),
]
# Upper bounds keep every value inside its column (BIGINT points, INTEGER stock and blocks), so an
# absurd number is a 422 naming the field rather than a database overflow (500). A trillion points
# times the largest quantity (1,000) still fits a signed 64-bit integer.
MAX_POINTS = 10**12
MAX_INT32 = INT32_MAX
Points = Annotated[int, Field(gt=0, le=MAX_POINTS)]


class TransactionCreate(BaseModel):
    """A card transaction; ``id`` is the idempotency key."""

    id: Id
    member_ref: Annotated[str, Field(min_length=1, max_length=64)]
    amount: Amount
    currency: Currency
    merchant: Annotated[str, Field(min_length=1, max_length=200)]
    category: Annotated[str, Field(min_length=1, max_length=60, examples=["travel"])]
    occurred_at: Moment


class TransactionRead(BaseModel):
    id: str
    member_ref: str
    points_earned: int
    unit: Literal["points", "miles"]
    balance: int
    offer: dict[str, Any] | None = Field(
        default=None, description="the offer made on this transaction, if any (FR/EN texts)"
    )
    offer_rewards: list[dict[str, Any]] | None = Field(
        default=None, description="rewards of activated offers this transaction qualified for"
    )


class RefundCreate(BaseModel):
    """A refund; ``id`` is the idempotency key."""

    id: Id
    amount: Amount


class RefundRead(BaseModel):
    id: str
    transaction_id: str
    points_reversed: int
    unit: Literal["points", "miles"]
    balance: int


class BalanceRead(BaseModel):
    member_ref: str
    points: int
    miles: int


class Movement(BaseModel):
    id: int
    at: datetime
    reason: str
    reference: str
    unit: str
    amount: int = Field(description="signed, from the member's point of view")
    balance_after: int | None


class MovementsPage(BaseModel):
    member_ref: str
    items: list[Movement]
    next_cursor: str | None


class CatalogueItemPut(BaseModel):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    points: Points
    stock: Annotated[int, Field(ge=0, le=MAX_INT32)]


class CatalogueItemRead(BaseModel):
    sku: str
    name: str
    points: int
    stock: int


class PartnerPut(BaseModel):
    kind: Literal["airline", "hotel", "merchant"]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    points_per_block: Annotated[int, Field(gt=0, le=MAX_INT32)]
    units_per_block: Annotated[int, Field(gt=0, le=MAX_INT32)]


class PartnerRead(PartnerPut):
    code: str


class ECodesLoad(BaseModel):
    points: Points
    codes: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=200)]], Field(min_length=1, max_length=100_000)
    ]


class ECodesLoaded(BaseModel):
    partner: str
    points: int
    loaded: int
    skipped: int
    available: int


class CatalogueRedemption(BaseModel):
    id: Id
    kind: Literal["catalogue"]
    sku: Annotated[str, Field(min_length=1, max_length=80)]
    quantity: Annotated[int, Field(ge=1, le=1000)] = 1


class ECodeRedemption(BaseModel):
    id: Id
    kind: Literal["ecode"]
    partner: Annotated[str, Field(min_length=1, max_length=60)]
    points: Annotated[int | None, Field(gt=0, le=MAX_POINTS)] = None


class TransferRedemption(BaseModel):
    id: Id
    kind: Literal["transfer"]
    partner: Annotated[str, Field(min_length=1, max_length=60)]
    points: Points


class TravelRedemption(BaseModel):
    id: Id
    kind: Literal["travel"]
    booking_ref: Annotated[str, Field(min_length=1, max_length=120)]
    amount: Amount
    points: Points


RedemptionCreate = Annotated[
    CatalogueRedemption | ECodeRedemption | TransferRedemption | TravelRedemption, Field(discriminator="kind")
]


class RedemptionRead(BaseModel):
    """A redemption; kind-specific fields (code, partner_units, points_used, cash_due…) follow."""

    model_config = ConfigDict(extra="allow")

    id: str
    kind: str
    member_ref: str
    status: str
    points_debited: int
    balance: int


class ReferralCreate(BaseModel):
    referrer_ref: Annotated[str, Field(min_length=1, max_length=64)]
    referee_ref: Annotated[str, Field(min_length=1, max_length=64)]


class ReferralRead(BaseModel):
    id: str
    referrer_ref: str
    referee_ref: str
    status: str
    bonus: int
    unit: str


class ReferralListed(BaseModel):
    id: str
    referrer_ref: str | None = Field(
        description="left out (null) for a member key: the other party is not theirs to see"
    )
    referee_ref: str | None = Field(
        description="left out (null) for a member key: the other party is not theirs to see"
    )
    status: str = Field(description="pending until the referee's first transaction, then rewarded")
    bonus: int
    unit: str
    created_at: datetime
    rewarded_at: datetime | None


class MemberReferralsRead(BaseModel):
    member_ref: str
    as_referrer: list[ReferralListed]
    as_referee: ReferralListed | None
    points_earned: int = Field(description="referral bonuses credited to the member, in points")


class ReferralsPage(BaseModel):
    referrals: list[ReferralListed]
    truncated: bool = Field(description="more referrals match than the limit returned")


class ReferralInterval(BaseModel):
    low: float
    high: float
    level: float
    method: str


class ReferralReportRead(BaseModel):
    month: str
    made: int = Field(description="referrals made in the month")
    converted: int = Field(description="of those, how many referees have transacted since")
    conversion_rate: float | None = Field(description="converted / made; null when none was made")
    conversion_interval: ReferralInterval | None = Field(description="95 % Wilson interval of the rate")
    rewarded_in_month: int = Field(description="bonuses paid in the month, whenever the referral was made")
    points_paid: int
    miles_paid: int


class ReferralCodeRead(BaseModel):
    member_ref: str
    referral_code: str = Field(description="what the member gives a friend, XXXX-XXXX-XXXX")
    bonus: int = Field(description="what the member earns at the friend's first transaction")
    unit: str


class ReferralCodeRedeem(BaseModel):
    referral_code: Annotated[
        str,
        Field(
            min_length=1, max_length=40, description="the referrer's code, as given (case and dashes free)"
        ),
    ]


class ReferredRead(BaseModel):
    id: str
    referee_ref: str
    referral_code: str
    status: str


class FxRatePut(BaseModel):
    rate: DecimalString = Field(description="euros per one unit of the currency")


class ProgrammeRead(BaseModel):
    version: int
    document: dict[str, Any]


class AuditRead(BaseModel):
    model_config = ConfigDict(extra="allow")

    ok: bool
    postings: int
    accounts: int
    checks: list[dict[str, Any]]
