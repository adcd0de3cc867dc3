"""One settings object, read from the environment (prefix ``PREVENANCE_``)."""

from __future__ import annotations

from functools import lru_cache

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
    # Where customers reach the public pages (survey links in mails, portal links).
    public_url: str = "http://127.0.0.1:8000"
    survey_link_max_age_days: int = 30
    # Staff console sessions (signed cookie) expire after this many hours.
    console_session_hours: int = 12
    # Rate limits of the public endpoints (limits' notation); the storage is shared by the workers
    # when it is Redis ("redis://host:6379"), per process when "memory://".
    rate_limit_storage: str = "memory://"
    rate_limit_survey: str = "30/minute"
    rate_limit_sign_in: str = "10/minute"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own ``Settings``)."""
    return Settings()
