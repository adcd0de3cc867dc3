"""The desk configuration in force: the JSON document shipped with the package, parsed once."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from prevenance.desk.rules import DeskConfig, parse_config


@lru_cache(maxsize=1)
def current() -> DeskConfig:
    """The shipped configuration (reason taxonomy, FCR window, city teams and promises)."""
    text = resources.files("prevenance.desk").joinpath("desk_config.json").read_text("utf-8")
    return parse_config(json.loads(text))
