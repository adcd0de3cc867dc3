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
    secret_key: str = "change-me-in-production"
    log_json: bool = False
    sqlite_busy_timeout_ms: int = 30_000


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings (cached; tests build their own ``Settings``)."""
    return Settings()
