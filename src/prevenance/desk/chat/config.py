"""The chat configuration in force: the JSON document shipped with the package, parsed once."""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

from prevenance.desk import config as desk_config
from prevenance.desk.chat.rules import ChatConfig, parse_config


@lru_cache(maxsize=1)
def current() -> ChatConfig:
    """The shipped configuration: moments (team, reason, priority), limits, the fallback reason."""
    text = resources.files("prevenance.desk.chat").joinpath("chat_config.json").read_text("utf-8")
    return parse_config(json.loads(text), reasons=set(desk_config.current().reasons))
