"""What the GDPR export does with every column of every exported table: exported, or withheld with
its reason (``privacy.export_member``). Data only; erasure's table is ``privacy_columns``, and a test
walks the metadata against both."""

from __future__ import annotations

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
