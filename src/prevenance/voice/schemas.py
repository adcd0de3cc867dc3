"""Request and response models of the voice API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

SuggestionStatus = Literal["new", "under_review", "adopted", "declined"]


class SurveyConsentPut(BaseModel):
    model_config = ConfigDict(extra="forbid")

    opted_out: bool


class SurveyConsentRead(BaseModel):
    member_ref: str
    opted_out: bool
    updated_at: str | None


class ScoresRead(BaseModel):
    month: str
    by: str
    n: int = Field(description="answers of the month")
    items: list[dict[str, Any]] = Field(description="per key: n, rtf and excellence with 95% intervals")
    method: str


class ScorecardPublish(BaseModel):
    model_config = ConfigDict(extra="forbid")

    by: str = Field(min_length=1, max_length=120, description="who publishes")
    reason: str = Field(min_length=1, max_length=2000, description="why (first publication, correction…)")


class ScorecardVersionRead(BaseModel):
    month: str
    version: int
    published_by: str
    reason: str
    published_at: str | None
    fingerprint: str
    agents: int
    grid: dict[str, Any]
    method: str


class ScorecardRead(ScorecardVersionRead):
    rows: list[dict[str, Any]]
    versions: list[ScorecardVersionRead]


class BarometerRead(BaseModel):
    source: str
    country: str
    quarter: str
    metric: str
    value: float
    n: int | None
    imported_at: str | None


class CountriesRead(BaseModel):
    quarter: str
    reference: str
    n: int
    countries: list[dict[str, Any]]
    barometers: list[BarometerRead]
    method: str


class SuggestionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: SuggestionStatus | None = None
    link: str | None = Field(default=None, max_length=2000, description="what was done: a URL or a name")
    note: str | None = Field(default=None, max_length=4000)


class SuggestionRead(BaseModel):
    id: str
    answer_id: str
    text: str
    language: str
    country: str
    month: str
    topics: list[str]
    status: SuggestionStatus
    link: str | None
    note: str | None
    created_at: str | None
    updated_at: str | None
    updated_by: str | None


class TopicCount(BaseModel):
    month: str
    topic: str
    answers: int


class TopicsRead(BaseModel):
    month: str | None
    items: list[TopicCount]
