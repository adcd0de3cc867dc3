"""Errors of the customer record."""

from __future__ import annotations

from prevenance.common.problems import Conflict, InvalidInput, NotFound


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


class MemberErased(Conflict):
    """The member was erased (GDPR): the row is kept under its pseudonym for the ledger's sums and
    is never written to again, so no call lays new personal data on it (409: the member's state
    forbids it, whoever asks)."""

    type_slug = "member-erased"
    title = "The member was erased"
