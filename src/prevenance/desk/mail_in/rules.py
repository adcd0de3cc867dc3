"""Inbound e-mail rules, free of I/O: reading a raw message, telling an automated one (auto-reply,
bounce, list mail) from a person's, finding the thread it answers, the promised response time and the
HTML shown to agents. The service and the SMTP listener call these; tests call them directly."""

from __future__ import annotations

import email
import email.errors
import hashlib
import html as html_entities
import re
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import datetime
from email.header import decode_header, make_header
from email.message import Message
from email.parser import BytesParser
from email.utils import getaddresses, parsedate_to_datetime
from typing import Any

import nh3

MESSAGE_ID_LENGTH = 998  # RFC 5322's line limit: longer ids are cut (the key is a hash anyway)
SUBJECT_LENGTH = 500
TEXT_LENGTH = 200_000  # characters of body kept; a longer body is cut (the raw size is recorded)
REFERENCES_KEPT = 20  # the newest ids of a References header used for threading
ATTACHMENTS_LISTED = 100  # files listed one by one; the others of a message are summed up in one line
CASE_TOKEN = re.compile(r"\[#(case_[0-9a-f]{32})\]")
_MSGID = re.compile(r"<[^<>\s]+>")
AUTOMATED_PRECEDENCE = {"bulk", "junk", "list", "auto_reply"}
# Tags and attributes an agent may see: text formatting, lists, tables and links; never images,
# scripts, forms, styles or frames (nh3 drops what is not listed, keeping the text inside).
_ALLOWED_TAGS = {
    "a", "b", "blockquote", "br", "code", "div", "em", "h1", "h2", "h3", "h4", "hr", "i", "li", "ol",
    "p", "pre", "span", "strong", "table", "tbody", "td", "th", "thead", "tr", "u", "ul",
}  # fmt: skip
_ALLOWED_ATTRIBUTES = {"a": {"href", "title"}, "td": {"colspan", "rowspan"}, "th": {"colspan", "rowspan"}}


@dataclass(frozen=True)
class Attachment:
    """One attached file as received; ``content`` is None when it was over the size cap."""

    filename: str
    content_type: str
    size: int
    content: bytes | None


@dataclass(frozen=True)
class ParsedMail:
    """What the desk keeps of one message."""

    message_id: str
    key: str  # sha256 of the Message-ID: the one-row-per-message key
    sender: str  # the From address, lower-cased ('' when none could be read)
    sender_name: str
    to: str
    subject: str
    date: datetime | None
    in_reply_to: str | None
    references: list[str]
    text: str
    html: str | None
    attachments: list[Attachment] = field(default_factory=list)
    automated: str | None = None  # why the message is automated (never answered), else None
    language_hint: str | None = None


def message_key(message_id: str) -> str:
    """The stable key of a Message-ID (angle brackets and case of the domain kept as sent)."""
    return hashlib.sha256(message_id.strip().encode("utf-8", "replace")).hexdigest()


def message_ids(header: str | None) -> list[str]:
    """The ``<id>`` items of an In-Reply-To or References header, in order, each cut to
    ``MESSAGE_ID_LENGTH`` (the column's length: encoded words on folded lines make an id of any
    length; a cut id still finds the message whose own id was cut the same way)."""
    return [found[:MESSAGE_ID_LENGTH] for found in _MSGID.findall(header or "")]


def _no_nul(text: str) -> str:
    """``text`` with each NUL written U+FFFD, as a decoder writes a byte it cannot read. PostgreSQL
    refuses U+0000 in text; a message it refused would be answered 451, retried by the sending
    server for days and bounced, so the customer's mail would never reach the desk."""
    return text.replace("\x00", "\ufffd")


def automated_reason(headers: Message, *, envelope_sender: str | None) -> str | None:
    """Why a message must never open a case nor be acknowledged (no mail loops), else None:
    an empty envelope sender or Return-Path (a bounce), ``Auto-Submitted`` other than ``no``,
    ``Precedence: bulk/junk/list``, a delivery or disposition report, list or auto-reply markers."""
    if envelope_sender is not None and envelope_sender.strip() in ("", "<>"):
        return "null-sender"
    return_path = headers.get("Return-Path")
    if return_path is not None and str(return_path).strip() in ("", "<>"):
        return "null-return-path"
    auto = str(headers.get("Auto-Submitted", "")).strip().lower()
    if auto and auto != "no":
        return "auto-submitted"
    if str(headers.get("Precedence", "")).strip().lower() in AUTOMATED_PRECEDENCE:
        return "precedence"
    content_type = headers.get_content_type()
    if content_type == "multipart/report" or content_type.startswith("message/delivery-status"):
        return "delivery-report"
    if headers.get("X-Autoreply") or headers.get("X-Autorespond") or headers.get("List-Id"):
        return "auto-reply" if not headers.get("List-Id") else "list"
    if str(headers.get("X-Auto-Response-Suppress", "")).strip().lower() in ("all", "oof"):
        return "auto-reply"
    return None


def _decoded(part: Message) -> str:
    payload = part.get_payload(decode=True)
    data = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    try:
        text = data.decode(charset, "replace")
    except (LookupError, UnicodeError):  # a charset Python does not know, or without a replace
        text = data.decode("utf-8", "replace")  # mode (idna, punycode raise whatever the bytes)
    return _no_nul(text[:TEXT_LENGTH])


def _header(message: Message, name: str) -> str:
    """A header decoded (RFC 2047 encoded words) on one line; '' when absent or unreadable."""
    value = message.get(name)
    if value is None:
        return ""
    try:
        text = str(make_header(decode_header(str(value))))
    except (ValueError, LookupError, email.errors.HeaderParseError):
        text = str(value)
    return _no_nul(" ".join(text.split()))


def _parts(message: Message, attachment_max_bytes: int) -> tuple[str | None, str | None, list[Attachment]]:
    """The first plain-text and HTML parts that are not attachments, and the attachments: the first
    ``ATTACHMENTS_LISTED`` one by one, the others summed up in one line, not kept (a row for each of
    the tens of thousands of tiny parts 10 MiB can hold would let one message fill the table)."""
    text = html = None
    attachments: list[Attachment] = []
    more = more_bytes = 0
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        disposition = str(part.get("Content-Disposition", "")).split(";")[0].strip().lower()
        inline_text = disposition != "attachment" and content_type in ("text/plain", "text/html")
        if inline_text and content_type == "text/plain" and text is None:
            text = _decoded(part)
        elif inline_text and content_type == "text/html" and html is None:
            html = _decoded(part)
        else:
            payload = part.get_payload(decode=True)
            data = payload if isinstance(payload, bytes) else b""
            if len(attachments) == ATTACHMENTS_LISTED:
                more, more_bytes = more + 1, more_bytes + len(data)
                continue
            filename = part.get_filename() or "attachment"
            with suppress(ValueError, LookupError, email.errors.HeaderParseError):
                filename = str(make_header(decode_header(filename)))
            attachments.append(
                Attachment(
                    filename=_no_nul(" ".join(filename.split()))[:255] or "attachment",
                    content_type=_no_nul(content_type)[:120],
                    size=len(data),
                    content=data if len(data) <= attachment_max_bytes else None,
                )
            )
    if more:
        summary = f"{more} more attachments (not kept)"
        attachments.append(Attachment(summary, "application/octet-stream", more_bytes, None))
    return text, html, attachments


def parse(raw: bytes, *, envelope_sender: str | None, attachment_max_bytes: int) -> ParsedMail:
    """Read a raw RFC 5322 message (the compat32 parser: headers decoded only when read, which
    keeps a burst of mail cheap). A message without a Message-ID gets one derived from its bytes,
    so the same bytes delivered twice are still one message. Parts nested deeper than the parser
    can recurse (no mail client nests more than a few) leave the headers read and the body kept
    whole as one attachment: an error here would be a 451 the sender retries for days."""
    try:
        message = email.message_from_bytes(raw)
        text, html, attachments = _parts(message, attachment_max_bytes)
    except RecursionError:
        message = BytesParser().parsebytes(raw, headersonly=True)
        text, html, attachments = _parts(message, attachment_max_bytes)
    message_id = (message_ids(_header(message, "Message-ID")) or [""])[0][:MESSAGE_ID_LENGTH]
    if not message_id:
        message_id = f"<{hashlib.sha256(raw).hexdigest()}@no-message-id.invalid>"
    addresses = getaddresses([_header(message, "From")])
    name, sender = addresses[0] if addresses else ("", "")
    date = None
    if _header(message, "Date"):
        try:
            date = parsedate_to_datetime(_header(message, "Date"))
        except (TypeError, ValueError, IndexError):
            date = None
    if date is not None and date.tzinfo is None:
        date = None
    references = message_ids(_header(message, "References"))[-REFERENCES_KEPT:]
    language = _header(message, "Content-Language")[:2].lower() or None
    return ParsedMail(
        message_id=message_id,
        key=message_key(message_id),
        sender=sender.strip().lower()[:320],
        sender_name=name.strip()[:200],
        to=_header(message, "To")[:1000],
        subject=_header(message, "Subject")[:SUBJECT_LENGTH],
        date=date,
        in_reply_to=next(iter(message_ids(_header(message, "In-Reply-To"))), None),
        references=references,
        text=text if text is not None else (html_to_text(html) if html else ""),
        html=html,
        attachments=attachments,
        automated=automated_reason(message, envelope_sender=envelope_sender),
        language_hint=language if language in ("fr", "en") else None,
    )


def thread_candidates(mail: ParsedMail) -> list[str]:
    """The Message-IDs this message answers, the most direct first: In-Reply-To, then the
    References from the newest to the oldest."""
    ids = [mail.in_reply_to] if mail.in_reply_to else []
    ids += [ref for ref in reversed(mail.references) if ref not in ids]
    return ids


def case_token(case_id: str) -> str:
    """The token a subject carries so a reply finds its case even when a client drops the headers."""
    return f"[#{case_id}]"


def case_in_subject(subject: str) -> str | None:
    """The case id of a token in the subject, if any."""
    found = CASE_TOKEN.search(subject or "")
    return found.group(1) if found else None


def reply_subject(subject: str, case_id: str) -> str:
    """``Re: <subject> [#case]``: one ``Re:`` and one token, whatever the subject held."""
    base = CASE_TOKEN.sub("", subject or "").strip()
    while base.lower().startswith(("re:", "tr:", "fw:", "fwd:")):
        base = base.split(":", 1)[1].strip()
    return f"Re: {base} {case_token(case_id)}".replace("  ", " ").strip()[:SUBJECT_LENGTH]


def references_after(parent_references: list[str], parent_id: str) -> list[str]:
    """The References of an answer: its parent's, then the parent (RFC 5322 3.6.4), the newest kept."""
    chain = [ref for ref in parent_references if ref != parent_id] + [parent_id]
    return chain[-REFERENCES_KEPT:]


def promised_hours(reason: str, promises: dict[str, int]) -> int:
    """The response time promised for a reason: the reason's own, its group's, else ``default``."""
    if reason in promises:
        return promises[reason]
    group = reason.split(".", 1)[0]
    return promises.get(group, promises["default"])


def parse_promises(data: Any) -> dict[str, int]:
    """The configured promises (reason or group → hours); ``default`` is required."""
    if not isinstance(data, dict) or "default" not in data:
        raise ValueError("response_hours must be an object with a 'default'")
    hours: dict[str, int] = {}
    for key, value in data.items():
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ValueError(f"response_hours[{key!r}] must be a positive whole number of hours")
        hours[str(key)] = value
    return hours


def sanitise_html(html: str) -> str:
    """The HTML an agent may see: formatting and links only; no script, style, form, frame or image
    (so no remote content is ever loaded), links opened without referrer."""
    return nh3.clean(
        html,
        tags=_ALLOWED_TAGS,
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer nofollow",
        strip_comments=True,
    )


def html_to_text(html: str) -> str:
    """A plain-text reading of an HTML-only message (for the contact's notes and the classifier)."""
    text = html_entities.unescape(
        nh3.clean(re.sub(r"(?i)<br\s*/?>|</p>|</div>|</li>", "\n", html), tags=set())
    )
    return re.sub(r"[ \t\xa0]+", " ", text).strip()[:TEXT_LENGTH]


def contact_notes(subject: str, text: str, limit: int = 4000) -> str:
    """What the contact records of a message: subject and the start of its text."""
    return f"{subject}\n\n{text}".strip()[:limit]
