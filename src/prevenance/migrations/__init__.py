"""Alembic environment and versions (revisions named YYYY-MM-DD-HHMM_<slug>.py)."""
