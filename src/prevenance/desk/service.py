"""The desk's public surface: what the API, the console, the views and the domains above the desk
(voice, and offers through ``prevenance.wiring``) call. Each use case lives in its module —
``contacts`` (contacts, cases, reasons), ``reports`` (first-contact resolution, reasons, card and
benefit attribution), ``cards`` (emergency replacement), ``communications`` (the log and contact
preferences), ``benefits``, ``routing``, ``callbacks`` — and runs inside the caller's unit of work:
none commits, each write claims its idempotency key first (see ``common.idempotency``)."""

from __future__ import annotations

from prevenance.desk.benefits import (
    BenefitUsageInput,
    benefit_usage_events,
    benefit_usages,
    count_benefit_usages,
    explain_benefits,
    list_benefit_catalogue,
    list_member_benefits,
    record_benefit_usage,
)
from prevenance.desk.callbacks import (
    CallbackInput,
    book_callback,
    complete_callback,
    get_callback,
    list_callbacks,
)
from prevenance.desk.cards import (
    CardReplacementInput,
    advance_card_replacement,
    get_card_replacement,
    list_card_replacements,
    list_member_card_replacements,
    order_card_replacement,
)
from prevenance.desk.communications import (
    CommunicationInput,
    get_contact_preference,
    list_member_communications,
    log_communication,
    may_send_marketing,
    record_communication,
    set_contact_preference,
)
from prevenance.desk.contacts import (
    ContactInput,
    get_case,
    get_contact,
    list_member_cases,
    list_member_contacts,
    list_reasons,
    log_contact,
    resolve_case,
)
from prevenance.desk.recovery import counts as recovery_counts
from prevenance.desk.recovery import list_member_cases as list_member_recovery_cases
from prevenance.desk.reports import (
    benefit_attribution_report,
    card_replacement_report,
    fcr_report,
    reason_report,
)
from prevenance.desk.routing import (
    channel_recommendation,
)

__all__ = [
    "BenefitUsageInput",
    "CallbackInput",
    "CardReplacementInput",
    "CommunicationInput",
    "ContactInput",
    "advance_card_replacement",
    "benefit_attribution_report",
    "benefit_usage_events",
    "benefit_usages",
    "book_callback",
    "card_replacement_report",
    "channel_recommendation",
    "complete_callback",
    "count_benefit_usages",
    "explain_benefits",
    "fcr_report",
    "get_callback",
    "get_card_replacement",
    "get_case",
    "get_contact",
    "get_contact_preference",
    "list_benefit_catalogue",
    "list_callbacks",
    "list_card_replacements",
    "list_member_benefits",
    "list_member_card_replacements",
    "list_member_cases",
    "list_member_communications",
    "list_member_contacts",
    "list_member_recovery_cases",
    "list_reasons",
    "log_communication",
    "log_contact",
    "may_send_marketing",
    "order_card_replacement",
    "reason_report",
    "record_benefit_usage",
    "record_communication",
    "recovery_counts",
    "resolve_case",
    "set_contact_preference",
]
