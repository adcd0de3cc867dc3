"""Refuse to run a networked process with a guessable ``PREVENANCE_SECRET_KEY``.

The secret signs console and portal session cookies and survey links, and keys the erasure
pseudonyms: whoever knows it can sign in as any console user. The shipped default, a placeholder
(``CHANGE-ME``, "…example…"), an empty value or anything shorter than 32 characters is *weak*.

A weak secret is accepted, with a warning, only where nobody else can reach the process:

* ``prevenance serve`` binding a loopback address only (127.0.0.1, ::1, localhost) — `make demo`;
* ``prevenance stream run`` (it binds nothing, but it turns closed contacts into survey invitations
  and works beside an API that must share its secret) when both its NATS server and its database
  are on this machine (loopback hosts, or a SQLite file): a development setup;
* ``prevenance voice send-invitations`` (it mails links signed with the secret) likewise when its
  mail relay and its database are on this machine;
* the ASGI module (``uvicorn prevenance.asgi:app``) cannot see the address it is bound to, so it
  trusts only what ``prevenance serve`` tells it through ``PREVENANCE_SERVE_HOST`` (set by
  ``serve`` itself); run directly, it needs a real secret whatever the ``--host``.

Everywhere else the process exits with code 2 and one line on stderr saying how to make one.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from sqlalchemy.engine import make_url

SHIPPED_DEFAULT = "change-me-in-production"
MIN_LENGTH = 32
# Fewer distinct characters than this is a pattern, not a random value ("a" * 40, "0" * 64).
MIN_DISTINCT = 8
PLACEHOLDER_WORDS = ("changeme", "placeholder", "example", "replaceme", "yoursecret", "secretkey")
HOW_TO_MAKE = "python -c 'import secrets; print(secrets.token_urlsafe(48))'"
# Set by `prevenance serve` for the uvicorn it starts: the address it binds (see the docstring).
SERVE_HOST_ENV = "PREVENANCE_SERVE_HOST"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.", "ip6-localhost"})


def weakness(secret: str | None) -> str | None:
    """Why ``secret`` cannot protect a networked process; None when it can."""
    value = (secret or "").strip()
    if not value:
        return "is not set"
    if value == SHIPPED_DEFAULT:
        return "is the shipped default"
    squashed = re.sub(r"[^a-z0-9]", "", value.lower())
    if any(word in squashed for word in PLACEHOLDER_WORDS):
        return "is a placeholder"
    if len(value) < MIN_LENGTH:
        return f"is shorter than {MIN_LENGTH} characters"
    if len(set(value)) < MIN_DISTINCT:
        return "is a repeated pattern, not a random value"
    return None


def is_loopback(host: str | None) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; False for every other name or address (0.0.0.0,
    ::, a public name: they reach other machines)."""
    if not host:
        return False
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def url_is_local(url: str | None) -> bool:
    """A NATS or database URL that stays on this machine: a loopback host, or a SQLite file."""
    if not url:
        return True  # nothing configured: nothing to reach
    if url.startswith("sqlite"):
        return True
    if "://" in url and url.split("://", 1)[0].startswith(("postgres", "mysql")):
        try:
            parsed = make_url(url)
        except Exception:
            return False
        # No host in the URL: a Unix socket on this machine.
        return parsed.host is None or is_loopback(parsed.host)
    hosts = [urlsplit(part if "://" in part else f"x://{part}").hostname for part in url.split(",")]
    return all(is_loopback(host) for host in hosts)


@dataclass(frozen=True)
class Verdict:
    """What a process does with its secret: start (maybe with a warning) or exit 2 with ``line``."""

    refuse: bool
    line: str | None  # the one line for stderr; None when the secret is fine


def judge(secret: str | None, *, local: bool, where: str) -> Verdict:
    """``local`` says the process is reachable from this machine only (``where`` says how)."""
    why = weakness(secret)
    if why is None:
        return Verdict(refuse=False, line=None)
    if local:
        return Verdict(
            refuse=False,
            line=(
                f"warning: PREVENANCE_SECRET_KEY {why}; accepted only because {where}. "
                f"Anywhere else set a random one: {HOW_TO_MAKE}"
            ),
        )
    return Verdict(
        refuse=True,
        line=(
            f"error: PREVENANCE_SECRET_KEY {why} and {where}: refusing to start. "
            f"Set it to a random value of {MIN_LENGTH}+ characters, e.g. {HOW_TO_MAKE}"
        ),
    )


def judge_server(secret: str | None, host: str | None) -> Verdict:
    """``prevenance serve`` (and the ASGI module it starts) binding ``host``."""
    if is_loopback(host):
        return judge(secret, local=True, where=f"the server binds the loopback address {host} only")
    shown = host if host else "an address it cannot see (uvicorn run directly)"
    return judge(secret, local=False, where=f"the server binds {shown}")


def judge_worker(secret: str | None, *, peers: dict[str, str | None]) -> Verdict:
    """A process that binds nothing but works with a network: local when every peer URL (by name,
    e.g. ``{"NATS server": …, "database": …}``) stays on this machine."""
    remote = [name for name, url in peers.items() if not url_is_local(url)]
    if remote:
        verb = "is" if len(remote) == 1 else "are"
        return judge(secret, local=False, where=f"its {' and '.join(remote)} {verb} on another machine")
    return judge(secret, local=True, where=f"its {' and '.join(peers)} are on this machine")


def judge_stream(secret: str | None, *, nats_url: str | None, database_url: str | None) -> Verdict:
    """``prevenance stream run``: local when its NATS server and its database are both local."""
    return judge_worker(secret, peers={"NATS server": nats_url, "database": database_url})


def judge_mailer(secret: str | None, *, smtp_url: str | None, database_url: str | None) -> Verdict:
    """``prevenance voice send-invitations``: it mails links signed with the secret to customers."""
    return judge_worker(secret, peers={"mail relay": smtp_url, "database": database_url})
