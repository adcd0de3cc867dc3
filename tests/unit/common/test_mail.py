"""The mail rules without a server: what a header may hold, what an address is, how the builder
treats a bad row, and the retry schedule."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage

import pytest
from pydantic import BaseModel, ValidationError

from prevenance.common import mail
from prevenance.common.text import HeaderSafeText, is_header_safe, is_mail_address, one_line

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    "value",
    ["a\r\nBcc: x@example.org", "a\nb", "a\rb", "a\tb", "a\x00b", "a\x85b", "a\u2028b", "a\u2029b", "a\x1cb"],
)
def test_line_breaks_and_control_characters_are_not_header_safe(value: str) -> None:
    assert not is_header_safe(value)
    assert is_header_safe(one_line(value))


def test_accents_emoji_and_punctuation_are_header_safe() -> None:
    assert is_header_safe("Paiements refusés — carte 💳 «FR» : 50 % (env.)")


def test_a_header_safe_field_is_refused_by_the_request_model_naming_the_field() -> None:
    class Body(BaseModel):
        title: HeaderSafeText

    with pytest.raises(ValidationError) as refused:
        Body(title="a\nb")
    assert refused.value.errors()[0]["loc"] == ("title",)
    assert Body(title="ok").title == "ok"


@pytest.mark.parametrize(
    "address", ["camille@example.fr", "c.martin+loyalty@mail.example.co.uk", "josé@exemple.fr"]
)
def test_a_plain_address_is_a_mail_address(address: str) -> None:
    assert is_mail_address(address)


@pytest.mark.parametrize(
    "address",
    [
        "camille@example.fr\n",
        "camille@example.fr\r\nBcc: x@example.org",
        "camille@example.fr,x@example.org",
        "camille@example.fr; x@example.org",
        "Camille <camille@example.fr>",
        "camille@example.fr (Camille)",
        '"camille"@example.fr',
        "camille@[127.0.0.1]",
        "camille@@example.fr",
        "camille@localhost",
        " camille@example.fr",
        "camille\x00@example.fr",
        "a" * 250 + "@example.fr",
    ],
)
def test_anything_but_one_plain_address_is_not_a_mail_address(address: str) -> None:
    assert not is_mail_address(address)


def _compose(**overrides: str) -> EmailMessage:
    fields = {"to": "camille@example.fr", "subject": "Incident : Paiements"}
    fields.update(overrides)
    return mail.compose(
        sender="Prévenance <notices@prevenance.example>",
        message_id="<x@prevenance.notices>",
        date=NOW,
        language="fr",
        body="Bonjour",
        **fields,
    )


def test_the_builder_folds_a_subject_with_line_breaks_to_one_line() -> None:
    message = _compose(subject="Incident : a\r\nBcc: x@example.org")
    assert str(message["Subject"]) == "Incident : a Bcc: x@example.org"
    assert message["Bcc"] is None


def test_the_builder_refuses_a_recipient_that_is_not_one_address() -> None:
    with pytest.raises(mail.Unsendable):
        _compose(to="camille@example.fr,x@example.org")


@pytest.mark.parametrize(
    ("code", "outcome"),
    [(550, "permanent"), (554, "permanent"), (553, "permanent"), (451, "temporary"), (421, "temporary")],
)
def test_an_smtp_answer_in_5xx_is_permanent_and_in_4xx_temporary(code: int, outcome: str) -> None:
    attempt = mail.Attempt.answered(code, b"5.1.1 nobody\r\nhere")
    assert (attempt.outcome, attempt.reason) == (outcome, f"{code} 5.1.1 nobody here")


def test_the_wait_doubles_from_a_minute_up_to_an_hour() -> None:
    waits = [mail.retry_delay(n) for n in range(1, 10)]
    assert waits == [timedelta(minutes=m) for m in (1, 2, 4, 8, 16, 32, 60, 60, 60)]
    assert mail.retry_delay(1000) == timedelta(hours=1)


def test_a_permanent_refusal_fails_at_once_and_a_temporary_one_waits() -> None:
    refused = mail.after_failure(mail.Attempt("permanent", "550 gone"), attempts_before=0, now=NOW)
    assert (refused.status, refused.attempts, refused.next_attempt_at, refused.last_error) == (
        "failed",
        1,
        None,
        "550 gone",
    )
    later = mail.after_failure(mail.Attempt("temporary", "451 later"), attempts_before=2, now=NOW)
    assert (later.status, later.attempts, later.next_attempt_at) == ("pending", 3, NOW + timedelta(minutes=4))


def test_the_last_temporary_failure_gives_up_and_the_answer_kept_is_bounded() -> None:
    attempt = mail.Attempt("temporary", "451 " + "x" * 2000)
    given_up = mail.after_failure(attempt, attempts_before=mail.MAX_ATTEMPTS - 1, now=NOW)
    assert (given_up.status, given_up.attempts) == ("failed", mail.MAX_ATTEMPTS)
    assert len(given_up.last_error) == mail.ERROR_LENGTH


def test_retrying_spans_about_a_day() -> None:
    total = sum((mail.retry_delay(n) for n in range(1, mail.MAX_ATTEMPTS)), timedelta())
    assert timedelta(hours=20) < total < timedelta(hours=26)
