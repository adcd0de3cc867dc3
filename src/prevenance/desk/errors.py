"""Errors of the service desk; each maps to one problem ``type``."""

from __future__ import annotations

from prevenance.common.problems import Conflict, Forbidden, InvalidInput, NotFound


class UnknownReason(InvalidInput):
    type_slug = "unknown-contact-reason"
    title = "Unknown contact reason"


class UnknownCaseInBody(InvalidInput):
    type_slug = "unknown-case"
    title = "Unknown case"


class CaseOfAnotherMember(InvalidInput):
    type_slug = "case-of-another-member"
    title = "The case belongs to another member"


class UnknownContact(NotFound):
    type_slug = "unknown-contact"
    title = "Unknown contact"


class UnknownCase(NotFound):
    type_slug = "unknown-case"
    title = "Unknown case"


class UnknownCardReplacement(NotFound):
    type_slug = "unknown-card-replacement"
    title = "Unknown card replacement"


class ReplacementStatusConflict(Conflict):
    type_slug = "card-replacement-status"
    title = "The card replacement is not in a status that allows this"


class UnknownBenefit(InvalidInput):
    type_slug = "unknown-benefit"
    title = "Unknown benefit"


class BenefitNotEntitled(InvalidInput):
    type_slug = "benefit-not-entitled"
    title = "The member's card is not entitled to this benefit"


class UnknownCallback(NotFound):
    type_slug = "unknown-callback"
    title = "Unknown call-back"


class UnknownContactInBody(InvalidInput):
    type_slug = "unknown-contact"
    title = "Unknown contact"


class ContactOfAnotherMember(InvalidInput):
    type_slug = "contact-of-another-member"
    title = "The contact belongs to another member"


class CallbackAlreadyCompleted(Conflict):
    type_slug = "callback-completed"
    title = "The call-back was already completed by another contact"


class UnknownIncident(NotFound):
    type_slug = "unknown-incident"
    title = "Unknown incident"


class IncidentResolved(Conflict):
    type_slug = "incident-resolved"
    title = "The incident is already resolved"


class ConciergeNotEntitled(Forbidden):
    type_slug = "concierge-not-entitled"
    title = "The member's card does not include the concierge"


class UnknownConciergeRequest(NotFound):
    type_slug = "unknown-concierge-request"
    title = "Unknown concierge request"


class ConciergeStatusConflict(Conflict):
    type_slug = "concierge-request-status"
    title = "The concierge request is not in a status that allows this"
