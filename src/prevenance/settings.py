"""One settings object, read from the environment (prefix ``PREVENANCE_``)."""

from __future__ import annotations

import ipaddress
from functools import lru_cache

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """Process configuration; every field can be set as ``PREVENANCE_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="PREVENANCE_", extra="ignore")

    database_url: str = "sqlite:///./prevenance.db"
    nats_url: str | None = None
    smtp_url: str | None = None
    # The shipped value is refused off loopback (prevenance.secret_key): set a random one.
    secret_key: str = "change-me-in-production"
    # Request bodies above this are answered 413 (bulk loads go through the CLI ingest, not a body).
    max_body_bytes: int = 1_048_576
    log_json: bool = False
    sqlite_busy_timeout_ms: int = 30_000
    # Concurrent write use cases on SQLite commit together, each in its savepoint (group_commit.GroupCommit).
    sqlite_group_commit: bool = True
    # Where customers reach the public pages (survey links in mails, portal links).
    public_url: str = "http://127.0.0.1:8000"
    survey_link_max_age_days: int = 30
    # Staff console sessions (signed cookie) expire after this many hours.
    console_session_hours: int = 12
    # Rate limits of the public endpoints (limits' notation); the storage is shared by the workers
    # when it is Redis ("redis://host:6379"), per process when "memory://".
    rate_limit_storage: str = "memory://"
    rate_limit_survey: str = "30/minute"
    rate_limit_sign_in: str = "10/minute"  # per user name, whatever the address
    rate_limit_sign_in_address: str = "30/minute"  # per client address, whatever the user name
    # The reverse proxies whose X-Forwarded-For / Forwarded / X-Real-IP / X-Forwarded-Proto headers
    # are believed (comma-separated IPs or CIDRs); empty: none, the TCP peer is the client.
    trusted_proxies: str = ""
    # Group commit of POST /v1/transactions (loyalty.batcher): at most this many earns per database
    # transaction, how long a batch not yet full waits for more (milliseconds), and how many batches
    # a process applies at once on PostgreSQL (SQLite: one).
    earn_batch_max: int = 32
    earn_batch_linger_ms: float = 1.0
    earn_batches_in_flight: int = 2
    # Inbound mail (``prevenance desk mail-in``): the addresses accepted (comma-separated; others are
    # refused 550), the largest message accepted (larger: SMTP 552) and the largest attachment kept
    # (larger: listed, not kept). Acknowledgements and answers leave from the first address.
    mail_in_addresses: str = "service@prevenance.example"
    mail_in_max_bytes: int = 10_485_760
    mail_in_attachment_max_bytes: int = 5_242_880

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies_are_networks(cls, value: str) -> str:
        """Refuse a typo at start-up rather than trusting (or ignoring) a proxy silently."""
        for item in (part.strip() for part in value.split(",")):
            if not item:
                continue
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f"PREVENANCE_TRUSTED_PROXIES: {item!r} is not an IP address or CIDR")
        return value

    @property
    def secure_cookies(self) -> bool:
        """Whether cookies carry ``Secure``: the public pages are served over https."""
        return self.public_url.lower().startswith("https://")


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own ``Settings``)."""
    return Settings()
