"""structlog set-up: JSON in production, key-value in a terminal; a request id on every line.

No log line carries what a URL may hold of a person: the survey token of ``/survey/<token>`` (it is
the customer's credential), and the query string of the search routes (names, e-mails, phone numbers
typed into the desk or the concierge search) or any ``q``/``next``/``token``/``email``/``phone``/
``name`` parameter elsewhere are replaced by ``[redacted]``. The same rule (``redact_text``) runs on
every structlog event (a processor, after the traceback is formatted) and on uvicorn's access and
error logs (a ``logging.Filter``), so a path written by either reaches no file whole.

A token or a search term can also surface away from its URL: in an exception's message, or in the
parameters SQLAlchemy prints with a failed statement. ``redact_request_secrets`` notes the personal
values of each request (the survey token, the search words) and every line logged while that request
is served has them replaced too, tracebacks included.
"""

from __future__ import annotations

import copy
import logging
import re
import sys
from collections.abc import Mapping, MutableMapping
from contextvars import ContextVar
from typing import Any, TextIO
from urllib.parse import parse_qsl, unquote_plus

import structlog
from starlette.types import Scope

REDACTED = "[redacted]"
# Routes whose whole query string is what someone typed about a person (search boxes), and sign-in
# pages (their ``next`` carries the search the visitor was sent back from).
PERSONAL_QUERY_PATHS = frozenset(
    {
        "/console/desk",
        "/console/desk/search",
        "/v1/concierge-requests/search",
        "/console/login",
        "/portal/login",
    }
)
# Query parameters redacted on every route.
PERSONAL_PARAMS = frozenset({"q", "next", "token", "email", "phone", "name", "search"})
_SURVEY_TOKEN = re.compile(r"(/survey/)(?!static/)[^\s?#\"'<>]+")
_SURVEY_PATH = re.compile(r"^/survey/(?!static/)([^/]+)")
_MIN_SECRET = 3  # shorter values would blot out ordinary words of every line
# The personal values of the request being served (set per request by ``redact_request_secrets``).
_REQUEST_SECRETS: ContextVar[re.Pattern[str] | None] = ContextVar("prevenance_log_secrets", default=None)
_HOST = re.compile(r"^//[^/]*")
_TARGET = re.compile(r"(?P<path>/[^\s?#\"'<>]*)?\?(?P<query>[^\s#\"'<>]+)")


def _redact_query(match: re.Match[str]) -> str:
    path, query = match.group("path") or "", match.group("query")
    route = _HOST.sub("", path)  # a whole URL: its path only
    if route in PERSONAL_QUERY_PATHS or route.rstrip("/") in PERSONAL_QUERY_PATHS:
        return f"{path}?{REDACTED}"
    parts = []
    for part in query.split("&"):
        key, sep, _ = part.partition("=")
        if sep and unquote_plus(key).strip().lower() in PERSONAL_PARAMS:
            part = f"{key}={REDACTED}"
        parts.append(part)
    return f"{path}?{'&'.join(parts)}"


def redact_text(text: str) -> str:
    """``text`` with survey tokens and personal query values replaced by ``[redacted]``."""
    if "/survey/" in text:
        text = _SURVEY_TOKEN.sub(rf"\g<1>{REDACTED}", text)
    if "?" in text:
        text = _TARGET.sub(_redact_query, text)
    secrets = _REQUEST_SECRETS.get()
    if secrets is not None:
        text = secrets.sub(REDACTED, text)
    return text


def personal_values(path: str, query_string: bytes) -> list[str]:
    """What a request carries of a person: the survey token of its path, the values (and words) of
    its query on a search route or under a personal parameter name."""
    found = []
    if survey := _SURVEY_PATH.match(path):
        found.append(survey.group(1))
    whole = path in PERSONAL_QUERY_PATHS or path.rstrip("/") in PERSONAL_QUERY_PATHS
    if query_string:
        for key, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=False):
            if whole or key.strip().lower() in PERSONAL_PARAMS:
                found.extend([value, *value.split()])
    return sorted({value for value in found if len(value) >= _MIN_SECRET}, key=len, reverse=True)


def redact_request_secrets(scope: Scope) -> None:
    """Redact the personal values of an HTTP request from every line logged while it is served (the
    context of the request's task, uvicorn's access and error lines included); ``prevenance.edge``
    calls it first on every request."""
    values = personal_values(scope.get("path", ""), scope.get("query_string", b""))
    pattern = re.compile("|".join(map(re.escape, values)), re.IGNORECASE) if values else None
    # Set, not reset: uvicorn logs the failure of a request after the app has returned.
    _REQUEST_SECRETS.set(pattern)


def _redact(value: Any) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {key: _redact(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_redact(item) for item in value)
    return value


def redact_event(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> Mapping[str, Any]:
    """structlog processor: every value of the event redacted (``redact_text``)."""
    return {key: _redact(value) for key, value in event_dict.items()}


class RedactingFilter(logging.Filter):
    """A stdlib logging filter applying ``redact_text`` to a record's message and arguments (uvicorn's
    access line is ``'%s - "%s %s HTTP/%s" %d'`` with the path and query as an argument)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact_text(record.exc_text)
        if isinstance(record.msg, str):
            record.msg = redact_text(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact_text(arg) if isinstance(arg, str) else arg for arg in record.args)
        elif isinstance(record.args, dict):
            record.args = {k: redact_text(v) if isinstance(v, str) else v for k, v in record.args.items()}
        return True


def install_uvicorn_redaction() -> None:
    """Put the redacting filter on uvicorn's loggers (once per process, whoever started uvicorn)."""
    for name in ("uvicorn.access", "uvicorn.error"):
        logger = logging.getLogger(name)
        if not any(isinstance(existing, RedactingFilter) for existing in logger.filters):
            logger.addFilter(RedactingFilter())


def uvicorn_log_config(*, json: bool = False) -> dict[str, Any]:
    """uvicorn's default logging configuration with the redacting filter on its handlers (``serve``
    passes it, so every worker process configures it before the first request). With ``json``
    (``PREVENANCE_LOG_JSON``) uvicorn's own lines, access log included, are JSON objects like every
    other line: ``event`` (the message), ``level``, ``logger`` and a UTC ``timestamp``."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": "prevenance.logging.RedactingFilter"}
    for handler in config.get("handlers", {}).values():
        handler.setdefault("filters", []).append("redact")
    if json:
        formatter = {
            "()": "structlog.stdlib.ProcessorFormatter",
            "processors": [
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                structlog.processors.JSONRenderer(),
            ],
            "foreign_pre_chain": [
                structlog.stdlib.add_logger_name,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
            ],
        }
        config["formatters"] = {name: dict(formatter) for name in config.get("formatters", {})}
    return config


def configure(*, json: bool, stream: TextIO | None = None) -> None:
    """Configure structlog once for the process (``stream``: stderr unless a test gives one)."""
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer()
        if json
        else structlog.dev.ConsoleRenderer(colors=stream is None and sys.stderr.isatty())
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
        logger_factory=structlog.PrintLoggerFactory(file=stream or sys.stderr),
        cache_logger_on_first_use=True,
    )
    install_uvicorn_redaction()
