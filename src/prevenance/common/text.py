"""Text that ends up in a mail header: one line, no control characters, and addresses that name
exactly one mailbox.

A subject, a display name or an address with a line break would either make the mail library
refuse the whole message (so the queue would try it again on every pass) or, in a laxer library,
add headers of the caller's choosing (``Bcc:``). So such values are refused where they enter —
``HeaderSafeText`` in the request models, ``is_header_safe`` / ``is_mail_address`` in the services
— and the mail builder (``common.mail``) still cleans what older rows hold.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# Cc: C0/C1 controls (CR, LF, TAB, NUL, NEL, FS/GS/RS…); Zl/Zp: U+2028 and U+2029. Every character
# ``str.splitlines`` breaks on is in one of these, and so is every byte that has no place in a header.
_UNSAFE_CATEGORIES = frozenset({"Cc", "Zl", "Zp"})
HEADER_UNSAFE_MESSAGE = "must be one line without control characters (it is used in mail headers)"
# One addr-spec: no whitespace, no control character, none of the specials that would start a
# display name, a group, a comment, a route or a second address (``<>()[]\,;:"``).
_ATOM = r"[^@\s<>()\[\]\\,;:\"\x00-\x1f\x7f]+"
_ADDRESS = re.compile(rf"{_ATOM}@{_ATOM}\.{_ATOM}")


def is_header_safe(value: str) -> bool:
    """True when ``value`` can go into a mail header as it is: one line, no control character."""
    return not any(unicodedata.category(character) in _UNSAFE_CATEGORIES for character in value)


def is_utf8(text: str) -> bool:
    """True when ``text`` is UTF-8 text: no lone surrogate, which is how Python hands over the bytes
    of a command-line argument that were not UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def one_line(value: str) -> str:
    """``value`` with every line break and control character replaced by a space (the mail
    builder's last defence for rows stored before the door refused them)."""
    cleaned = "".join(
        " " if unicodedata.category(character) in _UNSAFE_CATEGORIES else character for character in value
    )
    return " ".join(cleaned.split())


def is_mail_address(value: str) -> bool:
    """True when ``value`` is one plain address (``name@domain.tld``), safe in a ``To:`` header."""
    return len(value) <= 254 and _ADDRESS.fullmatch(value) is not None and is_header_safe(value)


def _header_safe(value: str) -> str:
    if not is_header_safe(value):
        raise ValueError(HEADER_UNSAFE_MESSAGE)
    return value


HEADER_SAFE = AfterValidator(_header_safe)
"""The check, to place *after* a ``Field`` in an ``Annotated`` (``Annotated[str, Field(max_length=…),
HEADER_SAFE]``) so length errors keep their own types and messages."""
ONE_LINE_MESSAGE = "must be one line without control characters"


def _one_line(value: str | None) -> str | None:
    if value is not None and not is_header_safe(value):
        raise ValueError(ONE_LINE_MESSAGE)
    return value


ONE_LINE = AfterValidator(_one_line)
"""The same check for a name, a label or an id that lists, reports and command-line tables print
on one line (an agent, a team, a city, a phone number): a line break would forge a line of them, an
escape sequence would drive the operator's terminal. Place it after the ``Field`` like
``HEADER_SAFE``; free text (notes, details, addresses) keeps its lines."""
HeaderSafeText = Annotated[str, HEADER_SAFE]
"""A request field whose value may end up in a mail header (subject, name, address): refused with
422 naming the field when it holds a line break or another control character. Give its length as
the field's default (``name: HeaderSafeText = Field(max_length=…)``) or use ``HEADER_SAFE``."""
