"""The redaction rule of every log line: survey tokens and personal query values become
``[redacted]``; the rest of the line (method, route, status, harmless parameters) stays readable."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
import structlog

from prevenance.logging import REDACTED, RedactingFilter, configure, redact_text, uvicorn_log_config

TOKEN = "eyJpIjoiaW52XzAxSiJ9.Z3n0aA.c2lnbmF0dXJlLXNlY3JldA"


@pytest.mark.parametrize(
    ("line", "secret", "kept"),
    [
        (f'1.2.3.4:5 - "GET /survey/{TOKEN}?lang=en HTTP/1.1" 200', TOKEN, "lang=en"),
        (f'"POST /survey/{TOKEN} HTTP/1.1" 429', TOKEN, "POST /survey/"),
        ('"GET /console/desk/search?q=Jean+Dupont HTTP/1.1" 200', "Dupont", "/console/desk/search?"),
        ('"GET /console/desk?q=camille%40example.fr&page=2 HTTP/1.1" 200', "camille", "/console/desk?"),
        (
            '"GET /v1/concierge-requests/search?q=%2B33612345678&limit=5 HTTP/1.1" 200',
            "33612345678",
            "search?",
        ),
        (
            '"GET /console/login?next=/console/desk%3Fq%3DZo%C3%A9 HTTP/1.1" 200',
            "Zo%C3%A9",
            "/console/login?",
        ),
        ('"GET /anything?email=zoe@example.fr&lang=fr HTTP/1.1" 200', "zoe@example.fr", "lang=fr"),
        ('"GET /anything?%71=Martin HTTP/1.1" 200', "Martin", "/anything?"),  # an encoded "q" too
        ("path=/survey/abc.def-ghi_jkl", "abc.def-ghi_jkl", "path=/survey/"),
    ],
)
def test_tokens_and_personal_query_values_are_redacted(line: str, secret: str, kept: str) -> None:
    redacted = redact_text(line)
    assert secret not in redacted and REDACTED in redacted
    assert kept in redacted


def test_lines_without_personal_data_are_left_alone() -> None:
    for line in (
        '"GET /survey/static/survey.css HTTP/1.1" 200',
        '"GET /v1/members/M1/movements?limit=50&cursor=abc HTTP/1.1" 200',
        "maintenance done=3 what? nothing",
    ):
        assert redact_text(line) == line


def test_the_filter_redacts_uvicorns_access_line_arguments() -> None:
    record = logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("198.51.100.7:0", "GET", f"/survey/{TOKEN}", "1.1", 200),
        None,
    )
    assert RedactingFilter().filter(record)
    assert TOKEN not in record.getMessage() and "/survey/[redacted]" in record.getMessage()


def test_serve_configures_the_filter_on_every_uvicorn_handler() -> None:
    config = uvicorn_log_config()
    assert config["filters"]["redact"]["()"] == "prevenance.logging.RedactingFilter"
    assert config["handlers"] and all("redact" in h["filters"] for h in config["handlers"].values())


def test_uvicorn_lines_are_json_when_the_logs_are() -> None:
    config = uvicorn_log_config(json=True)

    def written(formatter_name: str, record: logging.LogRecord) -> dict[str, Any]:
        spec = dict(config["formatters"][formatter_name])
        assert spec.pop("()") == "structlog.stdlib.ProcessorFormatter"
        assert RedactingFilter().filter(record)
        line: dict[str, Any] = json.loads(structlog.stdlib.ProcessorFormatter(**spec).format(record))
        return line

    access = written(
        "access",
        logging.LogRecord(
            "uvicorn.access",
            logging.INFO,
            __file__,
            1,
            '%s - "%s %s HTTP/%s" %d',
            ("198.51.100.7:0", "GET", f"/survey/{TOKEN}", "1.1", 200),
            None,
        ),
    )
    assert (access["logger"], access["level"]) == ("uvicorn.access", "info")
    assert access["timestamp"].endswith("Z")
    assert "/survey/[redacted]" in access["event"] and TOKEN not in json.dumps(access)
    startup = written(
        "default",
        logging.LogRecord(
            "uvicorn.error", logging.INFO, __file__, 1, "Application startup complete.", (), None
        ),
    )
    assert startup["event"] == "Application startup complete." and startup["logger"] == "uvicorn.error"


def test_uvicorn_lines_stay_plain_text_without_json() -> None:
    config = uvicorn_log_config()
    assert all(f["()"].startswith("uvicorn.") for f in config["formatters"].values())


@pytest.fixture
def restore_structlog() -> Iterator[None]:
    previous = structlog.get_config()
    yield
    structlog.configure(**previous)


def test_structlog_events_are_redacted_even_inside_a_traceback(restore_structlog: None) -> None:
    stream = io.StringIO()
    configure(json=True, stream=stream)
    try:
        raise RuntimeError(f"cannot read /survey/{TOKEN}")
    except RuntimeError:
        structlog.get_logger().exception(
            "unhandled_error", path=f"/survey/{TOKEN}", url="https://crm.example.com/console/desk?Jean"
        )
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert TOKEN not in stream.getvalue() and "Jean" not in stream.getvalue()
    assert line["path"] == "/survey/[redacted]" and line["event"] == "unhandled_error"
