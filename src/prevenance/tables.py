"""Every domain's tables, imported so the one metadata knows them all (migrations, tests)."""

from __future__ import annotations

from prevenance.common import auth, idempotency, outbox  # noqa: F401
from prevenance.common.base import Base
from prevenance.customers import tables as customers_tables  # noqa: F401
from prevenance.desk import tables as desk_tables  # noqa: F401
from prevenance.loyalty import tables as loyalty_tables  # noqa: F401

metadata = Base.metadata
