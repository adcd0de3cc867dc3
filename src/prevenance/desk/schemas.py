"""Wire models of the service desk."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from prevenance.common.inputs import Moment
from prevenance.common.text import HEADER_SAFE, ONE_LINE


def _path_segment(value: str) -> str:
    if "/" in value:
        raise ValueError("must not contain '/': the record is read and changed at its address, /v1/…/{id}")
    return value


PATH_SEGMENT = AfterValidator(_path_segment)
"""A record's id is one segment of its address (``/v1/callbacks/{id}/complete``): the server decodes
``%2F`` before routing, so no URL names an id holding ``/`` and the record could never be read or
moved on again (a card order never dispatched breaches its promise for ever)."""
# Ids, names and labels are printed on one line by lists, reports and the CLI (``ONE_LINE``).
Id = Annotated[str, Field(min_length=1, max_length=200), ONE_LINE, PATH_SEGMENT]
MemberRef = Annotated[str, Field(min_length=1, max_length=64)]
Name = Annotated[str, Field(min_length=1, max_length=120), ONE_LINE]
City = Annotated[str, Field(min_length=1, max_length=120), ONE_LINE]
Channel = Literal["phone", "email", "chat", "social", "web", "letter"]
Outcome = Literal["resolved", "pending", "transferred", "callback_scheduled", "escalated"]
Mode = Literal["in_a_hurry", "has_time", "leave_me_alone"]
CommunicationChannel = Literal["email", "sms", "letter", "push", "phone", "in_app"]
CommunicationKind = Literal["statement", "marketing", "incident", "survey", "service", "other"]


class ContactCreate(BaseModel):
    """One interaction, logged when it ends; ``id`` is the idempotency key.

    Without ``case_id`` the contact opens a new case owned by its agent; with it, the contact joins
    that case. An outcome of ``resolved`` resolves the case; any other outcome leaves it open.
    """

    model_config = ConfigDict(extra="forbid")

    id: Id
    member_ref: MemberRef
    channel: Channel
    direction: Literal["inbound", "outbound"]
    agent: Name
    team: Name
    reason: Annotated[str, Field(min_length=3, max_length=80, examples=["card.lost_stolen"])]
    started_at: Moment
    ended_at: Moment
    notes: Annotated[str, Field(max_length=20_000)] = ""
    outcome: Outcome
    case_id: Id | None = None


class ContactRead(BaseModel):
    id: str
    member_ref: str
    case_id: str
    channel: str
    direction: str
    agent: str
    team: str
    reason: str
    reason_label_fr: str
    reason_label_en: str
    started_at: datetime
    ended_at: datetime
    notes: str
    outcome: str


class CaseRead(BaseModel):
    id: str
    member_ref: str
    reason: str
    status: Literal["open", "resolved"]
    owner: str
    country: str
    contact_count: int
    first_contact_id: str
    opened_at: datetime
    resolved_at: datetime | None
    contacts: list[ContactRead] = []


class CaseResolve(BaseModel):
    """Body of ``POST /v1/cases/{id}/resolve`` (optional): who resolved it."""

    model_config = ConfigDict(extra="forbid")

    owner: Name | None = None


class ContactsPage(BaseModel):
    member_ref: str
    items: list[ContactRead]


class ReasonRead(BaseModel):
    code: str
    group: str
    label_fr: str
    label_en: str
    group_label_fr: str
    group_label_en: str
    self_care: bool


class RateRow(BaseModel):
    """One group of a report: a share with its Wilson 95% interval."""

    key: str
    value: float | None
    n: int
    successes: int
    ci_low: float | None
    ci_high: float | None


class FcrReport(BaseModel):
    by: str
    month: str | None
    window_days: int
    undetermined: int = Field(description="resolved cases whose repeat window is still open (not counted)")
    overall: RateRow
    rows: list[RateRow]


class ReasonVolume(BaseModel):
    reason: str
    label_fr: str
    label_en: str
    contacts: int
    previous: int = Field(description="contacts on this reason in the previous month")
    growth_z: float = Field(description="z of the log ratio of daily rates, this month over the previous")
    growing: bool = Field(description="the daily rate rose significantly (z > 1.96)")
    avoidable: bool = Field(description="the answer is available in self-care")
    avoidable_contacts: int = Field(description="contacts avoidable by self-care or by a proactive notice")
    avoidable_by_notice: int = Field(
        description="contacts from members affected by an active incident that explains this reason, "
        "made before their notice was sent"
    )
    repeat: RateRow = Field(description="share of these contacts followed by another on the same reason")
    channels: dict[str, int]
    countries: dict[str, int]


class ReasonReport(BaseModel):
    """Why customers contact us in a month: the reasons to remove."""

    month: str
    previous_month: str
    window_days: int
    contacts: int
    previous_contacts: int
    repeat: RateRow
    avoidable: RateRow = Field(description="share avoidable: self-care or a proactive notice")
    avoidable_self_care: RateRow = Field(description="share whose answer was available in self-care")
    avoidable_by_notice: RateRow = Field(description="share a proactive incident notice would have prevented")
    by_channel: dict[str, int]
    by_country: dict[str, int]
    growing: list[str]
    reasons: list[ReasonVolume]


class CardReplacementCreate(BaseModel):
    """An emergency card order; ``id`` is the idempotency key."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    city: City
    country: Annotated[str, Field(min_length=2, max_length=2, description="ISO 3166-1 alpha-2")]
    address: Annotated[str, Field(max_length=2000)] = ""


class CardReplacementRead(BaseModel):
    id: str
    member_ref: str
    city: str
    country: str
    address: str
    city_team: bool
    promise_hours: int
    status: Literal["ordered", "dispatched", "delivered"]
    state: Literal["on_track", "at_risk", "breached", "delivered_on_time", "delivered_late"]
    ordered_at: datetime
    due_at: datetime
    dispatched_at: datetime | None
    delivered_at: datetime | None


class CardReplacementReport(BaseModel):
    """Share of the month's orders delivered within their promise (orders still in time excluded)."""

    month: str
    ordered: int
    open_in_time: int
    within_promise: RateRow


class CommunicationCreate(BaseModel):
    """Something the brand sent a member, logged by the system that sent it; ``id`` is the key."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    member_ref: MemberRef
    kind: CommunicationKind = "other"
    template: Annotated[str, Field(min_length=1, max_length=120), ONE_LINE]
    channel: CommunicationChannel
    language: Literal["fr", "en"]
    sent_at: Moment
    subject: Annotated[str, Field(max_length=300), HEADER_SAFE] = ""
    summary: Annotated[str, Field(max_length=5000)] = ""


class MemberCommunicationRead(BaseModel):
    """What a member key reads of a communication: an allow-list without ``source`` (the staff
    member or internal system that logged it is staff-only, as in the 360 and the GDPR export)."""

    id: str
    member_ref: str
    kind: str
    template: str
    channel: str
    language: str
    sent_at: datetime
    subject: str
    summary: str


class CommunicationRead(MemberCommunicationRead):
    """What staff read: the member's view and who or what logged it."""

    source: str


class CommunicationsPage(BaseModel):
    member_ref: str
    items: list[CommunicationRead]


class MemberCommunicationsPage(BaseModel):
    member_ref: str
    items: list[MemberCommunicationRead]


class ContactPreferencePut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Mode
    preferred_channel: Channel | None = None


class ContactPreferenceRead(BaseModel):
    member_ref: str
    mode: Mode | None
    preferred_channel: str | None
    may_send_marketing: bool
    updated_at: datetime | None
    updated_by: str | None


class MemberContactPreferenceRead(BaseModel):
    """What a member key reads of its contact preference: an allow-list without ``updated_by`` (a
    staff identity, staff-only as in the 360 and the GDPR export)."""

    member_ref: str
    mode: str | None
    preferred_channel: str | None
    may_send_marketing: bool
    updated_at: datetime | None


BenefitCode = Annotated[str, Field(min_length=1, max_length=60, examples=["lounge_access"])]


class BenefitRead(BaseModel):
    """One benefit of the catalogue and the card products entitled to it."""

    code: str
    label_fr: str
    label_en: str
    products: list[str]


class BenefitUsageCreate(BaseModel):
    """A member used a benefit; ``id`` is the idempotency key; ``source`` defaults to the caller."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    benefit: BenefitCode
    used_at: Moment
    source: Name | None = None


class BenefitUsageRead(BaseModel):
    id: str
    member_ref: str
    benefit: str
    label_fr: str
    label_en: str
    used_at: datetime
    source: str


class BenefitsExplainedCreate(BaseModel):
    """The benefits the agent explained at the contact (added to those already recorded)."""

    model_config = ConfigDict(extra="forbid")

    benefits: Annotated[list[BenefitCode], Field(min_length=1, max_length=50)]


class BenefitsExplainedRead(BaseModel):
    contact_id: str
    member_ref: str
    agent: str
    explained_at: datetime
    benefits: list[str]


class MemberBenefitRead(BaseModel):
    code: str
    label_fr: str
    label_en: str
    last_used_at: datetime | None
    last_explained_at: datetime | None
    unused_12m: bool = Field(description="not used in the twelve months up to now")


class MemberBenefits(BaseModel):
    member_ref: str
    product: str
    items: list[MemberBenefitRead]


class BenefitAttributionRow(BaseModel):
    agent: str
    benefit: str
    label_fr: str
    label_en: str
    explained: int
    used: int = Field(description="explanations followed by a usage credited to them")
    pending: int = Field(description="nothing credited yet, window still open: left out of the rate")
    rate: RateRow


class BenefitAttributionReport(BaseModel):
    """Benefits explained at the month's contacts and how many were then used, per agent and benefit."""

    month: str
    window_days: int
    explained: int
    used: int
    pending: int
    overall: RateRow
    rows: list[BenefitAttributionRow]


RoutingChannel = Literal["chat", "callback", "phone", "web", "email", "letter", "social"]


class ChannelFiguresRead(BaseModel):
    channel: RoutingChannel
    median_hours: float | None = Field(
        description="median hours from the case's first contact to its resolution (resolved cases)"
    )
    resolved: int = Field(description="resolved cases behind the median")
    enough_data: bool = Field(description="resolved >= min_cases: the channel is compared")
    fcr: RateRow


class ChannelRecommendation(BaseModel):
    member_ref: str
    reason: str
    window_days: int
    min_cases: int
    mode: Mode | None
    preferred_channel: str | None
    recommended: RoutingChannel
    basis: Literal["measured", "preferred", "default_order"]
    explanation: str
    channels: list[ChannelFiguresRead]


class CallbackCreate(BaseModel):
    """A call-back to book; ``id`` is the idempotency key."""

    model_config = ConfigDict(extra="forbid")

    id: Id
    reason: Annotated[str, Field(min_length=1, max_length=80, examples=["statement.question"])]
    scheduled_for: Moment
    phone: Annotated[str, Field(max_length=40), ONE_LINE] = ""


class CallbackComplete(BaseModel):
    model_config = ConfigDict(extra="forbid")

    contact_id: Id


class CallbackRead(BaseModel):
    id: str
    member_ref: str
    reason: str
    phone: str
    status: Literal["scheduled", "completed"]
    scheduled_for: datetime
    booked_by: str
    booked_at: datetime
    completed_at: datetime | None
    contact_id: str | None


# --- proactive incidents ------------------------------------------------------------------------

Title = Annotated[str, Field(min_length=1, max_length=300), HEADER_SAFE]  # the notices' Subject
IncidentText = Annotated[str, Field(min_length=1, max_length=20_000)]


class IncidentAffects(BaseModel):
    """Who is affected: members with one of ``products`` in one of ``countries`` and ``cities``, and
    who paid at ``merchant`` in ``[window_start, window_end)``. Criteria combine with AND; at least
    one is needed. ``reasons`` (optional) are the contact reasons the incident explains: contacts on
    them from affected members before their notice count as avoidable in the reason analysis (empty:
    any reason)."""

    model_config = ConfigDict(extra="forbid")

    products: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=40), ONE_LINE]], Field(max_length=50)
    ] = []
    countries: Annotated[list[Annotated[str, Field(pattern=r"^[A-Z]{2}$")]], Field(max_length=250)] = []
    cities: Annotated[list[City], Field(max_length=250)] = []
    merchant: Annotated[str | None, Field(min_length=1, max_length=200), ONE_LINE] = None
    reasons: Annotated[list[Annotated[str, Field(min_length=1, max_length=80)]], Field(max_length=100)] = []
    window_start: Moment | None = None
    window_end: Moment | None = None

    @model_validator(mode="after")
    def _has_a_criterion(self) -> IncidentAffects:
        if not (self.products or self.countries or self.cities or self.merchant):
            raise ValueError("affects needs products, countries, cities or merchant")
        if (self.window_start or self.window_end) and not self.merchant:
            raise ValueError("window_start and window_end apply to a merchant")
        if self.window_start and self.window_end and self.window_end <= self.window_start:
            raise ValueError("window_end must be after window_start")
        return self


class IncidentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    title_fr: Title
    title_en: Title
    body_fr: IncidentText
    body_en: IncidentText
    since: Moment
    affects: IncidentAffects


class IncidentUpdateCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: Id
    body_fr: IncidentText
    body_en: IncidentText


class IncidentResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body_fr: IncidentText
    body_en: IncidentText


class IncidentRead(BaseModel):
    id: str
    title_fr: str
    title_en: str
    body_fr: str
    body_en: str
    since: datetime
    affects: dict[str, Any]
    status: Literal["active", "resolved"]
    affected: int
    declared_by: str
    declared_at: datetime
    resolved_at: datetime | None


class IncidentUpdateRead(BaseModel):
    incident_id: str
    id: str
    notices: int
    created_at: datetime
