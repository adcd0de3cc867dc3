"""Wire models of the customer record."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from prevenance.common.text import ONE_LINE, HeaderSafeText


class MemberPut(BaseModel):
    """Body of ``PUT /v1/members/{ref}``: the whole record (PUT replaces)."""

    model_config = ConfigDict(extra="forbid")

    # Both reach mail headers or greetings: one line, no control characters.
    name: HeaderSafeText = Field(min_length=1, max_length=200)
    # Formats stated for clients; the service checks them itself and answers a 422 naming the field.
    email: HeaderSafeText = Field(min_length=3, max_length=254, json_schema_extra={"format": "email"})
    language: str = Field(description="fr or en", json_schema_extra={"enum": ["fr", "en"]})
    country: str = Field(
        description="ISO 3166-1 alpha-2 (UK is read as GB)",
        examples=["FR"],
        json_schema_extra={"pattern": "^[A-Za-z]{2}$"},
    )
    product: str = Field(min_length=1, max_length=40)
    # Printed on one line by lists and matched by incidents: no line break or control character.
    city: Annotated[str | None, ONE_LINE] = Field(
        default=None, max_length=120, description="home city (optional)"
    )
    phone: str | None = Field(
        default=None,
        max_length=32,
        description="phone number (optional): international, or national in the member's country;"
        " stored and returned in E.164",
    )


class MemberRead(BaseModel):
    ref: str
    name: str
    email: str
    language: str
    country: str
    product: str
    city: str | None = None
    phone: str | None = None
    tier: str
    premium: bool
    created_at: datetime
    updated_at: datetime
