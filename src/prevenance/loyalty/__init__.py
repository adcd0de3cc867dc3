"""The rewards programme: earn rules, the double-entry points ledger, redemptions, referral."""
