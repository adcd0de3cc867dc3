"""Request and response models of the offers API."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from prevenance.common.inputs import Moment


class OfferPut(BaseModel):
    """An offer definition. Decimals travel as text; the reward's keys depend on ``reward_kind``:
    bonus_points ``{points, min_spend_eur?}``, category_multiplier ``{category, multiplier,
    max_points?, min_spend_eur?}``, ecode ``{sku, points?, min_spend_eur?}``."""

    model_config = ConfigDict(extra="forbid")

    partner_merchant: str = Field(min_length=1, max_length=200)
    partner_category: str | None = Field(default=None, max_length=60)
    reward_kind: Literal["bonus_points", "category_multiplier", "ecode"]
    reward: dict[str, Any]
    eligibility: dict[str, Any] = Field(default_factory=dict)
    cap_per_member: int = Field(default=1, ge=1, le=1000)
    budget_points: int | None = Field(default=None, ge=0, le=10**15)
    unit_cost_eur: str = Field(max_length=40)
    margin_rate: str = Field(max_length=40)
    expected_spend_eur: str = Field(default="100", max_length=40)
    holdout_share: str = Field(default="0.10", max_length=40)
    decision_days: int = Field(default=30, ge=1, le=366)
    valid_from: Moment
    valid_until: Moment
    title_fr: str = Field(min_length=1, max_length=200)
    title_en: str = Field(min_length=1, max_length=200)
    text_fr: str = Field(min_length=1, max_length=2000)
    text_en: str = Field(min_length=1, max_length=2000)


class OfferRead(BaseModel):
    id: str
    partner_merchant: str
    partner_category: str | None
    reward_kind: str
    reward: dict[str, Any]
    eligibility: dict[str, Any]
    cap_per_member: int
    budget_points: int | None
    spent_points: int
    unit_cost_eur: str
    margin_rate: str
    expected_spend_eur: str
    holdout_share: str
    decision_days: int
    valid_from: str
    valid_until: str
    title_fr: str
    title_en: str
    text_fr: str
    text_en: str
    status: str
    created_at: str
    updated_at: str
    decisions: dict[str, dict[str, int]] | None = None


class MemberOfferRead(BaseModel):
    decision_id: str
    offer_id: str
    partner_merchant: str
    reward_kind: str
    reward: dict[str, Any]
    language: str
    title: str
    text: str
    status: str
    decided_at: str
    expires_at: str
    activated_at: str | None
    rewarded_at: str | None
    reward_points: int | None


class MemberOffersPage(BaseModel):
    member_ref: str
    language: str
    items: list[MemberOfferRead]


class ModelRead(BaseModel):
    version: int
    created_at: str
    features: list[str]
    coefficients: dict[str, Any]
    metrics: dict[str, Any]
