"""The agent's customer search: prefix of the name, e-mail, reference or phone number,
case-insensitive, 20 rows.

Phone numbers are stored in E.164; what the agent types is read as international (``+44 7…``,
``0044 7…``) or national in each of the brand's countries (``06 12…`` → ``+33612…``, ``+44612…``),
each an indexed range of ``members.phone``. Each other prefix query reads one range of a
lower-cased index (``customers.tables``): PostgreSQL runs ``lower(col) LIKE 'abc%'`` on a
``text_pattern_ops`` index; SQLite, whose LIKE would not use an expression index, runs the same
search as the range ``'abc' <= lower(col) < 'abd'``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from prevenance.customers import rules as customer_rules
from prevenance.customers.tables import Member

LIMIT = 20
# Where the brand's members live: a national number typed by an agent is tried in each.
COUNTRIES = ("FR", "GB", "DE", "IT", "ES")
_COLUMNS = (
    Member.ref,
    Member.name,
    Member.email,
    Member.country,
    Member.product,
    Member.language,
    Member.phone,
)


def prefix_successor(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``."""
    return prefix[:-1] + chr(ord(prefix[-1]) + 1)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _prefix(column: Any, prefix: str, postgres: bool) -> ColumnElement[bool]:
    lowered = func.lower(column)
    if postgres:
        return lowered.like(_escape_like(prefix) + "%", escape="\\")
    return (lowered >= prefix) & (lowered < prefix_successor(prefix))


def _sqlite_forms(prefix: str) -> list[str]:
    """The forms ``prefix`` may take in SQLite's ``lower()``, which lowers ASCII letters only.

    A stored "Émile" reads "Émile" there and "Zoé" reads "zoé": the prefix is looked up with its
    non-ASCII letters as typed lowered and upper-cased (two ranges at most, each indexed).
    """
    ascii_lowered = "".join(c.lower() if c.isascii() else c for c in prefix)
    forms = {
        "".join(c if c.isascii() else c.lower() for c in ascii_lowered),
        "".join(c if c.isascii() else c.upper() for c in ascii_lowered),
    }
    return sorted(forms)


def search_members(session: Session, *, q: str, limit: int = LIMIT) -> list[dict[str, Any]]:
    """Members whose name, e-mail, reference or phone number starts with ``q`` (ignoring case), by
    name."""
    typed = q.strip()
    if not typed:
        return []
    postgres = session.get_bind().dialect.name == "postgresql"
    prefixes = [typed.lower()] if postgres else _sqlite_forms(typed)
    # One indexed range per column (and form), read in index order and merged here: an OR across
    # three columns would defeat the indexes.
    found: dict[str, dict[str, Any]] = {}
    for phone in customer_rules.phone_search_prefixes(typed, countries=COUNTRIES):
        statement = (
            select(*_COLUMNS)
            .where(Member.phone >= phone, Member.phone < prefix_successor(phone))
            .order_by(Member.phone)
            .limit(limit)
        )
        for row in session.execute(statement):
            found.setdefault(row.ref, dict(row._mapping))
    for column in (Member.name, Member.email, Member.ref):
        for prefix in prefixes:
            statement = select(*_COLUMNS).where(_prefix(column, prefix, postgres))
            if not postgres:
                # SQLite reads the range in index order and stops at the limit. PostgreSQL's
                # text_pattern_ops index does not serve ORDER BY in the database's collation (it would
                # sort every match); unordered, the planner walks the index and stops at the limit.
                statement = statement.order_by(func.lower(column))
            for row in session.execute(statement.limit(limit)):
                found.setdefault(row.ref, dict(row._mapping))
    return sorted(found.values(), key=lambda r: (r["name"].lower(), r["ref"]))[:limit]
