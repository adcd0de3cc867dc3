"""The inbound-mail configuration shipped with the package (promised response times per reason,
the reason used when nothing can be suggested), parsed once."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from prevenance.desk import config as desk_config
from prevenance.desk.mail_in.rules import parse_promises


@dataclass(frozen=True)
class MailInConfig:
    response_hours: dict[str, int]
    default_reason: str
    team: str
    agent: str


@lru_cache(maxsize=1)
def current() -> MailInConfig:
    """The shipped configuration; a default reason outside the taxonomy is refused at load."""
    text = resources.files("prevenance.desk.mail_in").joinpath("mail_in_config.json").read_text("utf-8")
    data = json.loads(text)
    default_reason = str(data["default_reason"])
    if default_reason not in desk_config.current().reasons:
        raise ValueError(f"mail_in_config.json: unknown default_reason {default_reason!r}")
    return MailInConfig(
        response_hours=parse_promises(data["response_hours"]),
        default_reason=default_reason,
        team=str(data.get("team", "email")),
        agent=str(data.get("agent", "mail-in")),
    )


def addresses(raw: str) -> frozenset[str]:
    """The configured addresses, lower-cased."""
    return frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
