"""What the GDPR export and erasure do with every column of every table (``privacy``): each
column exported or withheld with its reason, each text column erased, pseudonymised, deleted or
kept with its reason. Data only: a test walks the metadata against these tables, so a new column is
refused until someone classifies it here.

One table on purpose, not one per domain: whoever answers for the member's data (the data protection
officer, a reviewer of a new column) reads every column's fate in one place, against one set of
reasons, and the completeness test checks it in one walk over the metadata."""

from __future__ import annotations

ERASED_PASSWORD = "!erased"  # not an argon2 hash: no password ever verifies against it

# --- export: every column of every exported table, exported or withheld with its reason ----------

EXPORTED = "exported"
STAFF_ID = "withheld: a staff member's identity, their own personal data"
STAFF_NOTE = "withheld: written by staff for staff; released only by the data protection officer"
CREDENTIAL = "withheld: a credential or its hash"
DIGEST = "withheld: a digest used for deduplication, not data about the member"


def _all(columns: str) -> dict[str, str]:
    """Columns exported, named in one space-separated string."""
    return dict.fromkeys(columns.split(), EXPORTED)


EXPORT: dict[str, dict[str, str]] = {
    "members": _all("id ref name email language country product city phone created_at updated_at"),
    "accounts": _all("id code unit member_id tracks_balance balance"),
    "postings": _all(
        "id idempotency_key debit_account_id credit_account_id amount unit reason reference "
        "member_id balance_after created_at"
    ),
    "card_transactions": _all(
        "id member_id amount_minor currency merchant category occurred_at fx_rate amount_eur "
        "product unit units_per_euro minimum_earn units_earned units_current refunded_minor "
        "created_at"
    ),
    "redemptions": _all("id member_id kind status points details created_at expires_at resolved_at"),
    "referrals": _all(
        "id referrer_id referee_id status bonus unit created_at rewarded_at rewarding_transaction_id"
    ),
    "expired_lots": _all("expiry_posting_id earn_posting_id member_id points expired_on"),
    "expiry_warnings": _all(
        "id key member_id earn_posting_id points expires_on language status attempts next_attempt_at "
        "last_attempt_at last_error sent_at created_at"
    ),
    "console_users": {
        **_all("username role member_ref language created_at disabled"),
        "id": "withheld: internal row id of the sign-in",
        "member_id": "withheld: internal row id; member_ref names the member",
        "password_hash": CREDENTIAL,
        "session_generation": "withheld: a session-revocation counter, part of the credential",
    },
    "customer_access_log": {
        **_all("id member_id at actor_role action channel method route status"),
        "actor": "withheld: a staff member's identity, their own personal data; actor_role names the recipient",
        "request_id": "withheld: internal correlation id of the server's logs",
    },
    "desk_cases": {
        **_all(
            "id member_id reason country status contact_count first_contact_id opened_at resolved_at "
            "updated_at"
        ),
        "owner": STAFF_ID,
    },
    "desk_contacts": {
        **_all("id member_id case_id channel direction team reason started_at ended_at outcome created_at"),
        "agent": STAFF_ID,
        "notes": STAFF_NOTE,
    },
    "desk_communications": {
        **_all("id member_id kind template channel language subject summary sent_at created_at"),
        "source": "withheld: the staff member or system that logged it",
    },
    "desk_contact_preferences": {
        **_all("member_id mode preferred_channel updated_at"),
        "updated_by": STAFF_ID,
    },
    "desk_card_replacements": _all(
        "id member_id member_ref city country address city_team promise_hours status ordered_at "
        "due_at dispatched_at delivered_at"
    ),
    "desk_callbacks": {
        **_all("id member_id member_ref reason phone status scheduled_for booked_at completed_at contact_id"),
        "booked_by": STAFF_ID,
    },
    "desk_benefit_usages": _all("id member_id benefit used_at source created_at"),
    "chat_conversations": {
        **_all(
            "id member_id member_ref language moment_kind moment_ref team reason status last_seq opened_at "
            "taken_at closed_at contact_id"
        ),
        "agent": STAFF_ID,
    },
    "chat_messages": {
        **_all("id conversation_id member_id seq client_id author_role text sent_at"),
        "author": STAFF_ID,
    },
    "goodwill_grants": {
        **_all(
            "id key cause reference member_id form points credit_minor currency cost_eur country "
            "product team month posting_id granted_at"
        ),
        "granted_by": STAFF_ID,
    },
    "desk_recovery_cases": {
        **_all(
            "id member_id member_ref answer_id contact_id team channel country cause recommend "
            "interaction answered_at opened_at due_at status outcome closed_at follow_up_answer_id "
            "follow_up_recommend follow_up_at"
        ),
        "agent": STAFF_ID,
        "opened_by": STAFF_ID,
        "closed_by": STAFF_ID,
        "note": STAFF_NOTE,
    },
    "desk_benefit_explanations": {
        **_all("contact_id benefit member_id explained_at created_at"),
        "agent": STAFF_ID,
    },
    "desk_incident_notices": _all(
        "id incident_id member_id kind language subject body status created_at sent_at attempts "
        "last_attempt_at next_attempt_at last_error"
    ),
    "desk_mail_messages": {
        **_all(
            "id member_id case_id contact_id direction kind state message_id sender sender_name "
            "recipients subject text_body html_body in_reply_to thread_references language size_bytes "
            "automated received_at sent_at attempts last_attempt_at next_attempt_at last_error"
        ),
        "message_key": DIGEST,
        "once_key": "withheld: an internal key that makes the thread's acknowledgement unique",
        "suggested_reason": "withheld: the desk's internal triage suggestion; the contact's reason is exported",
        "suggestion_words": "withheld: the desk's internal triage suggestion",
        "discard_reason": STAFF_NOTE,
        "handled_by": STAFF_ID,
        "handled_at": "withheld: when a staff member handled it, part of their work record",
    },
    "desk_mail_attachments": {
        **_all("id message_pk member_id position filename content_type size_bytes kept"),
        "content": "withheld: the file the member sent, given back as a file on request, not inside JSON",
    },
    "desk_goodwill_mails": _all(
        "id member_id cause language subject body status created_at sent_at attempts last_attempt_at "
        "next_attempt_at last_error"
    ),
    "desk_concierge_requests": {
        **_all(
            "id member_id member_ref category title details city country due_at status created_at updated_at"
        ),
        "partner": "withheld: the concierge's partner network is internal",
        "cost": "withheld: what the service cost the issuer is internal",
        "solution": STAFF_NOTE,
        "requested_by": STAFF_ID,
    },
    "desk_member_tastes": {
        **_all("member_id updated_at"),
        "notes": STAFF_NOTE,
        "likes": "withheld: the concierge's file, staff-only like GET /tastes",
        "dislikes": "withheld: the concierge's file, staff-only like GET /tastes",
        "updated_by": STAFF_ID,
    },
    "offer_suppressions": {
        **_all("id offer_id member_id transaction_id reason decided_at"),
        "arm": "withheld: the experiment's assignment, treatment or control, is internal",
    },
    "offer_decisions": {
        **_all(
            "id offer_id member_id transaction_id decided_at expires_at status activated_at rewarded_at "
            "reward_points reward_transaction_id"
        ),
        "arm": "withheld: the experiment's assignment, treatment or control, is internal",
        "propensity": "withheld: marketing model internals; the logic is in docs/methods.md",
        "expected_value": "withheld: marketing model internals; the logic is in docs/methods.md",
        "model_version": "withheld: marketing model internals",
    },
    "voice_invitations": {
        **_all(
            "id contact_id member_id language team channel reason product country contact_ended_at "
            "status skip_reason created_at sent_at answered_at attempts last_attempt_at next_attempt_at last_error"
        ),
        "agent": STAFF_ID,
    },
    "voice_answers": {
        **_all(
            "id invitation_id contact_id member_id team channel reason product country month "
            "answered_at recommend interaction comment suggestion language source created_at"
        ),
        "agent": STAFF_ID,
        "fingerprint": DIGEST,
    },
    "voice_suggestions": {
        **_all("id answer_id text language country month status created_at updated_at"),
        "link": "withheld: staff's link to an internal backlog",
        "note": STAFF_NOTE,
        "updated_by": STAFF_ID,
    },
    "voice_survey_consents": {
        **_all("member_id opted_out updated_at"),
        "updated_by": STAFF_ID,
    },
}

# Rows of an exported table the member does not see, with the reason (the doc lists them).
EXPORT_ROWS_WITHHELD = {
    "offer_decisions": "the control group's rows (arm 'control'): they would tell the experiment's assignment",
}


# --- erase: every text column of every table, erased, pseudonymised, deleted or kept -------------

ERASED_NAME = "Erased customer"
PSEUDONYM = "{pseudonym}"  # replaced by the member's pseudonymous ref
SCRUBBED = "{scrubbed}"  # a JSON copy of the member's data: refs pseudonymised, free text blanked
# table -> column -> what it becomes on the member's rows ("" blank, None null, PSEUDONYM, SCRUBBED).
# ``members`` itself is written by ``erase_member``; console users and API keys by their modules.
PERSONAL: dict[str, dict[str, str | None]] = {
    "members": {
        "ref": PSEUDONYM,
        "name": ERASED_NAME,
        "email": PSEUDONYM + "@erased.invalid",
        "city": None,
        "phone": None,
    },
    "console_users": {
        "username": PSEUDONYM + ".<id>",
        "member_ref": PSEUDONYM,
        "password_hash": ERASED_PASSWORD,
    },
    "api_keys": {"member_ref": PSEUDONYM, "name": PSEUDONYM},
    "desk_contacts": {"notes": ""},
    "desk_card_replacements": {"address": "", "member_ref": PSEUDONYM},
    "desk_communications": {"subject": "", "summary": ""},
    "desk_concierge_requests": {"title": "[erased]", "details": "", "solution": "", "member_ref": PSEUDONYM},
    "desk_callbacks": {"phone": "", "member_ref": PSEUDONYM},
    "chat_conversations": {"member_ref": PSEUDONYM},
    "chat_messages": {"text": ""},
    "desk_incident_notices": {"subject": "", "body": "", "last_error": None},
    "desk_mail_messages": {
        "message_id": "",
        "sender": "",
        "sender_name": "",
        "recipients": "",
        "subject": "",
        "text_body": "",
        "html_body": None,
        "in_reply_to": None,
        "thread_references": "",
        "suggestion_words": None,
        "discard_reason": None,
        "last_error": None,
    },
    "desk_recovery_cases": {"note": "", "member_ref": PSEUDONYM},
    "desk_goodwill_mails": {"subject": "", "body": "", "last_error": None},
    "miles_export_lines": {"member_ref": PSEUDONYM},
    "voice_answers": {"comment": "", "suggestion": ""},
    "voice_suggestions": {"text": "", "note": ""},
    "idempotency_keys": {"response": SCRUBBED},
    "outbox_events": {"payload": SCRUBBED},
    "voice_invitations": {"last_error": None},  # the relay's answer can quote the address
    "expiry_warnings": {"last_error": None},  # likewise
}
# Written by their own functions (the rest of PERSONAL by the generic loop).
WRITTEN_APART = ("members", "console_users", "api_keys", "idempotency_keys", "outbox_events")
# Tables whose rows about the member are deleted outright (preferences of a person, nothing counted).
DELETED = ("desk_member_tastes", "desk_mail_attachments")

_CODE = "a code or status from a fixed list, no free text"
_STAFF = "a staff member's or system's identity, not the customer's data"
_CATALOGUE = "reference data of the programme, about no customer"
_STAFF_TEXT = "written by staff about many customers at once, never about one"
_ID = "an identifier minted by the system or the issuer, no free text"
# table -> text column -> why it is kept as it is on erasure.
KEPT: dict[str, dict[str, str]] = {
    "members": {"language": _CODE, "country": _CODE, "product": _CODE},
    "api_keys": {
        "id": _ID,
        "role": _CODE,
        "key_hash": "the digest of a revoked key, nothing about the person",
        "prefix": "ten characters of a revoked random key",
    },
    "console_users": {"role": _CODE, "language": _CODE},
    "accounts": {"code": _ID, "unit": _CODE},
    "postings": {
        "idempotency_key": _ID,
        "unit": _CODE,
        "reason": _CODE,
        "reference": "the business reference (transaction, redemption, referral id); postings are immutable",
    },
    "card_transactions": {
        "id": _ID,
        "currency": _CODE,
        "category": _CODE,
        "product": _CODE,
        "unit": _CODE,
        "merchant": "the ledger's record of the purchase, kept exactly (no free text of the customer)",
        "fx_rate": "a decimal amount",
        "amount_eur": "a decimal amount",
    },
    "refunds": {"id": _ID, "transaction_id": _ID},
    "redemptions": {
        "id": _ID,
        "kind": _CODE,
        "status": _CODE,
        "details": "what was redeemed (sku, partner, code, booking reference), part of the ledger's record",
    },
    "referrals": {
        "id": "the caller's key; without one it is 'referrer->referee' (their refs), which the ledger's "
        "immutable postings also carry as their reference: kept with the ledger",
        "status": _CODE,
        "unit": _CODE,
        "rewarding_transaction_id": _ID,
    },
    "ecodes": {"partner_code": _ID, "code": "a partner's voucher code, issued stock", "redemption_id": _ID},
    "miles_exports": {"partner_code": _ID, "export_date": "a date written as text"},
    "miles_export_lines": {},
    "catalogue_items": {"sku": _ID, "name": _CATALOGUE},
    "partners": {"code": _ID, "kind": _CODE, "name": _CATALOGUE},
    "products": {"code": _ID, "name": _CATALOGUE, "tier": _CODE},
    "programme_versions": {
        "document": _CATALOGUE,
        "fingerprint": "a digest of the programme",
        "created_by": _STAFF,
    },
    "offers": {
        "id": _ID,
        "partner_merchant": _CATALOGUE,
        "partner_category": _CODE,
        "reward_kind": _CODE,
        "reward": _CATALOGUE,
        "eligibility": _CATALOGUE,
        "unit_cost_eur": "a decimal amount",
        "margin_rate": "a decimal amount",
        "expected_spend_eur": "a decimal amount",
        "holdout_share": "a decimal amount",
        "title_fr": _CATALOGUE,
        "title_en": _CATALOGUE,
        "text_fr": _CATALOGUE,
        "text_en": _CATALOGUE,
        "status": _CODE,
        "fingerprint": "a digest of the offer",
    },
    "offer_models": {"features": _CATALOGUE, "coefficients": _CATALOGUE, "metrics": _CATALOGUE},
    "offer_programme_holdouts": {
        "salt": "a random salt of the holdout period: no member data",
        "share": "a decimal amount",
        "started_by": _STAFF,
    },
    "offer_suppressions": {
        "id": _ID,
        "offer_id": _ID,
        "transaction_id": _ID,
        "arm": _CODE,
        "reason": _CODE,
    },
    "offer_decisions": {
        "id": _ID,
        "offer_id": _ID,
        "transaction_id": _ID,
        "arm": _CODE,
        "status": _CODE,
        "reward_transaction_id": _ID,
    },
    "customer_access_log": {
        "actor": "who read the record: kept to account for every access (the staff's identity)",
        "actor_role": _CODE,
        "action": _CODE,
        "channel": _CODE,
        "method": _CODE,
        "route": "a route template",
        "request_id": _ID,
    },
    "idempotency_keys": {
        "scope": _CODE,
        "key": _ID,
        "fingerprint": "a digest of the request, so a retry is still recognised; no text can be read back",
    },
    "outbox_events": {"event_id": _ID, "type": _CODE},
    "desk_cases": {
        "id": _ID,
        "reason": _CODE,
        "country": _CODE,
        "status": _CODE,
        "owner": _STAFF,
        "first_contact_id": _ID,
    },
    "desk_contacts": {
        "id": _ID,
        "case_id": _ID,
        "channel": _CODE,
        "direction": _CODE,
        "agent": _STAFF,
        "team": _STAFF,
        "reason": _CODE,
        "outcome": _CODE,
    },
    "desk_card_replacements": {
        "id": _ID,
        "city": "the city served, kept for the promise statistics; the row is pseudonymous",
        "country": _CODE,
        "status": _CODE,
    },
    "desk_communications": {
        "id": _ID,
        "kind": _CODE,
        "template": _CODE,
        "channel": _CODE,
        "language": _CODE,
        "source": _STAFF,
    },
    "desk_contact_preferences": {"mode": _CODE, "preferred_channel": _CODE, "updated_by": _STAFF},
    "desk_benefit_usages": {"id": _ID, "benefit": _CODE, "source": _STAFF},
    "desk_benefit_explanations": {"contact_id": _ID, "benefit": _CODE, "agent": _STAFF},
    "desk_callbacks": {"id": _ID, "reason": _CODE, "status": _CODE, "booked_by": _STAFF, "contact_id": _ID},
    "chat_conversations": {
        "id": _ID,
        "language": _CODE,
        "moment_kind": _CODE,
        "moment_ref": _ID,
        "team": _STAFF,
        "reason": _CODE,
        "status": _CODE,
        "agent": _STAFF,
        "contact_id": _ID,
    },
    "chat_messages": {
        "id": _ID,
        "conversation_id": _ID,
        "client_id": "an identifier minted by the sender's browser, no free text",
        "author_role": _CODE,
        "author": "the agent's name, or the word 'member'",
    },
    "chat_agents": {"name": _STAFF, "teams": _STAFF},
    "goodwill_grants": {
        "key": _ID,
        "cause": _CODE,
        "reference": _ID,
        "form": _CODE,
        "currency": _CODE,
        "country": _CODE,
        "product": _CODE,
        "team": _STAFF,
        "month": _CODE,
        "granted_by": _STAFF,
    },
    "desk_recovery_cases": {
        "id": _ID,
        "answer_id": _ID,
        "contact_id": _ID,
        "team": _STAFF,
        "agent": _STAFF,
        "channel": _CODE,
        "country": _CODE,
        "cause": _CODE,
        "opened_by": _STAFF,
        "status": _CODE,
        "outcome": _CODE,
        "closed_by": _STAFF,
        "follow_up_answer_id": _ID,
    },
    "desk_incidents": {
        "id": _ID,
        "title_fr": _STAFF_TEXT,
        "title_en": _STAFF_TEXT,
        "body_fr": _STAFF_TEXT,
        "body_en": _STAFF_TEXT,
        "affects": _STAFF_TEXT,
        "status": _CODE,
        "declared_by": _STAFF,
    },
    "expiry_warnings": {"key": _ID, "language": _CODE, "status": _CODE},
    "expired_lots": {},
    "desk_goodwill_mails": {"id": _ID, "cause": _CODE, "language": _CODE, "status": _CODE},
    "desk_incident_notices": {
        "id": _ID,
        "incident_id": _ID,
        "kind": _CODE,
        "language": _CODE,
        "status": _CODE,
    },
    "desk_mail_messages": {
        "id": _ID,
        "message_key": "the digest of a Message-ID: keeps a redelivered message from reopening anything",
        "once_key": _ID,
        "direction": _CODE,
        "kind": _CODE,
        "state": _CODE,
        "case_id": _ID,
        "contact_id": _ID,
        "language": _CODE,
        "automated": _CODE,
        "suggested_reason": _CODE,
        "handled_by": _STAFF,
    },
    "desk_concierge_requests": {
        "id": _ID,
        "category": _CODE,
        "country": _CODE,
        "status": _CODE,
        "partner": _ID,
        "city": "the city served, kept for the network's statistics; the row is pseudonymous",
        "requested_by": _STAFF,
    },
    "desk_concierge_partners": {
        "code": _ID,
        "name": _CATALOGUE,
        "country": _CODE,
        "city": _CATALOGUE,
        "category": _CODE,
        "updated_by": _STAFF,
    },
    "voice_invitations": {
        "id": _ID,
        "contact_id": _ID,
        "language": _CODE,
        "agent": _STAFF,
        "team": _STAFF,
        "channel": _CODE,
        "reason": _CODE,
        "product": _CODE,
        "country": _CODE,
        "status": _CODE,
        "skip_reason": _CODE,
    },
    "voice_answers": {
        "id": _ID,
        "invitation_id": _ID,
        "contact_id": _ID,
        "agent": _STAFF,
        "team": _STAFF,
        "channel": _CODE,
        "reason": _CODE,
        "product": _CODE,
        "country": _CODE,
        "month": _CODE,
        "language": _CODE,
        "source": _CODE,
        "fingerprint": "a digest of the answer for deduplication; no text can be read back",
    },
    "voice_answer_topics": {"answer_id": _ID, "part": _CODE, "topic": _CODE, "month": _CODE},
    "voice_suggestions": {
        "id": _ID,
        "answer_id": _ID,
        "language": _CODE,
        "country": _CODE,
        "month": _CODE,
        "status": _CODE,
        "link": "staff's link to an internal backlog item",
        "updated_by": _STAFF,
    },
    "voice_survey_consents": {"updated_by": _STAFF},
    "voice_scorecard_versions": {
        "month": _CODE,
        "fingerprint": "a digest of the grid",
        "grid": "published aggregates, about agents",
        "published_by": _STAFF,
        "reason": _STAFF_TEXT,
    },
    "voice_scorecard_rows": {
        "month": _CODE,
        "agent": _STAFF,
        "team": _STAFF,
        "data": "aggregates about an agent",
    },
    "voice_barometers": {"source": _CATALOGUE, "country": _CODE, "quarter": _CODE, "metric": _CODE},
}

# Where a copy of the member's data waits in the idempotency store: scope -> the table whose ids are
# the keys of that scope (the write's own resource id).
IDEMPOTENT_SCOPES = {
    "contact": "desk_contacts",
    "card_replacement": "desk_card_replacements",
    "communication": "desk_communications",
    "callback": "desk_callbacks",
    "chat-open": "chat_conversations",
    "chat-close": "chat_conversations",
    "chat-message": "chat_messages",
    "recovery_case": "desk_recovery_cases",
    "mail_reply": "desk_mail_messages",
    "concierge-request": "desk_concierge_requests",
    "benefit_usage": "desk_benefit_usages",
    "transaction": "card_transactions",
    "refund": "refunds",
    "redemption": "redemptions",
    "referral": "referrals",
}
# Keys of an event's payload that name a member by ref.
REF_KEYS = ("member_ref", "referrer_ref", "referee_ref")
# Keys of a JSON copy (a stored response, an event) whose values are personal free text.
FREE_TEXT_KEYS = frozenset(
    {
        "name",
        "email",
        "phone",
        "city",
        "address",
        "notes",
        "subject",
        "summary",
        "title",
        "details",
        "solution",
        "comment",
        "suggestion",
        "text",
        "note",
        "body",
        "preview",
        "sender",
        "sender_name",
        "recipients",
        "html",
        "discard_reason",
    }
)
