"""What every voice use case shares: the shipped configuration, the methods page, month checks and
how a moment is written in a body."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from prevenance.common import inputs
from prevenance.common.problems import as_invalid_input
from prevenance.voice import rules

METHODS = "docs/methods.md"


@lru_cache(maxsize=1)
def current_config() -> rules.VoiceConfig:
    """The shipped configuration (sampling, payout grid, calibration fallback)."""
    text = resources.files("prevenance.voice").joinpath("voice_config.json").read_text("utf-8")
    return rules.parse_config(json.loads(text))


def check_month(month: str) -> str:
    """The month if it is a valid YYYY-MM inside the accepted window, else a 422 naming it."""
    inputs.check_month(month)
    with as_invalid_input():
        return rules.check_month(month)
