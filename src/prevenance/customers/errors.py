"""Errors of the customer record."""

from __future__ import annotations

from prevenance.common.problems import InvalidInput, NotFound


class UnknownMember(NotFound):
    """No member has this reference."""

    type_slug = "unknown-member"
    title = "Unknown member"


class UnknownMemberInBody(InvalidInput):
    """A body names a member that does not exist (422: the payload cannot be accepted)."""

    type_slug = "unknown-member"
    title = "Unknown member"


class UnknownProduct(InvalidInput):
    type_slug = "unknown-product"
    title = "Unknown card product"
