"""Every domain's tables, imported so the one metadata knows them all (migrations, tests)."""

from __future__ import annotations

from prevenance.common import auth, idempotency, outbox  # noqa: F401
from prevenance.common.base import Base
from prevenance.console import tables as console_tables  # noqa: F401
from prevenance.customers import tables as customers_tables  # noqa: F401
from prevenance.desk import tables as desk_tables  # noqa: F401
from prevenance.desk.chat import tables as chat_tables  # noqa: F401
from prevenance.desk.mail_in import tables as mail_in_tables  # noqa: F401
from prevenance.loyalty import tables as loyalty_tables  # noqa: F401
from prevenance.offers import tables as offers_tables  # noqa: F401
from prevenance.voice import tables as voice_tables  # noqa: F401

metadata = Base.metadata

# Search structures created by the migrations with raw SQL and not modelled here: the SQLite FTS5
# table of solved concierge requests (and its shadow tables) and the PostgreSQL GIN index.
UNMODELLED_PREFIX = "desk_concierge_fts"


def include_name(name: str | None, type_: str, parent_names: object) -> bool:
    """Alembic's ``include_name`` hook: leave the unmodelled search structures out of comparisons."""
    return not (name or "").startswith(UNMODELLED_PREFIX)
