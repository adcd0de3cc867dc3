"""A contact as the desk service takes it, for tests that log contacts without the API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from prevenance.desk.contacts import ContactInput
from tests.integration.desk.test_contacts_contract import contact_body


def contact_input(contact_id: str, member_ref: str, at: datetime, **overrides: Any) -> ContactInput:
    """The API's contact body (``contact_body``) of ``member_ref`` at ``at`` (ending then), without
    notes unless given: a closed inbound phone contact, resolved."""
    fields = {"notes": "", "started_at": at, "ended_at": at, **overrides}
    return ContactInput(**contact_body(contact_id, member_ref=member_ref, **fields))
