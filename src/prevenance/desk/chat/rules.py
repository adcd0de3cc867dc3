"""Rules of the member chat, free of I/O: the configured moments, which of a member's moments open a
chat and in which team's queue, the channel offered elsewhere, message checks, and the waiting and
handling times by hour."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prevenance.common.inputs import INT32_MAX, NUL_MESSAGE
from prevenance.common.problems import InvalidInput

STATUSES = ("waiting", "active", "closed")
AUTHOR_ROLES = ("member", "agent")
MOMENT_KINDS = ("incident", "card_lost", "travel_hold", "redemption_refused", "recovery_case")
MAX_SEQ = INT32_MAX  # the largest sequence number (a 32-bit integer column)


@dataclass(frozen=True)
class MomentPolicy:
    """One configured moment: the team whose queue it joins, the reason it suggests, its rank."""

    kind: str
    team: str
    reason: str
    priority: int


@dataclass(frozen=True)
class ChatConfig:
    moments: dict[str, MomentPolicy]
    refused_redemption_days: int
    max_message_chars: int
    fallback_reason: str

    @property
    def refused_window(self) -> timedelta:
        return timedelta(days=self.refused_redemption_days)


def parse_config(raw: dict[str, Any], *, reasons: set[str]) -> ChatConfig:
    """The chat configuration, checked: known moment kinds, reasons of the taxonomy, positive limits."""
    moments: dict[str, MomentPolicy] = {}
    for kind, spec in dict(raw.get("moments", {})).items():
        if kind not in MOMENT_KINDS:
            raise ValueError(f"unknown chat moment {kind!r}; one of {', '.join(MOMENT_KINDS)}")
        if spec["reason"] not in reasons:
            raise ValueError(f"chat moment {kind!r} names unknown reason {spec['reason']!r}")
        moments[kind] = MomentPolicy(kind, str(spec["team"]), str(spec["reason"]), int(spec["priority"]))
    config = ChatConfig(
        moments=moments,
        refused_redemption_days=int(raw.get("refused_redemption_days", 7)),
        max_message_chars=int(raw.get("max_message_chars", 2000)),
        fallback_reason=str(raw.get("fallback_reason", "account.details")),
    )
    if config.refused_redemption_days < 1 or config.max_message_chars < 1:
        raise ValueError("refused_redemption_days and max_message_chars must be positive")
    if config.fallback_reason not in reasons:
        raise ValueError(f"unknown fallback_reason {config.fallback_reason!r}")
    return config


@dataclass(frozen=True)
class FoundMoment:
    """A moment one fetcher found for a member: its kind, the thing it is about, since when."""

    kind: str
    ref: str
    since: datetime
    label: str = ""


def offered_moments(found: list[FoundMoment], config: ChatConfig) -> list[FoundMoment]:
    """The moments that open a chat: configured kinds only, the highest priority first, then newest."""
    kept = [m for m in found if m.kind in config.moments]
    return sorted(kept, key=lambda m: (config.moments[m.kind].priority, -m.since.timestamp(), m.ref))


def is_refused_redemption(
    *, status: str, resolved_at: datetime | None, now: datetime, config: ChatConfig
) -> bool:
    """A redemption counts as refused when it was voided or its hold expired within the window."""
    return (
        status in ("voided", "expired")
        and resolved_at is not None
        and now - resolved_at <= config.refused_window
    )


def fastest_other_channel(channels: list[dict[str, Any]], default_order: list[str] | tuple[str, ...]) -> str:
    """Outside a moment: the measured fastest channel with enough data, chat left out (it is not
    offered there); without measurements the first channel of the configured order."""
    measured = [
        c
        for c in channels
        if c["channel"] != "chat" and c.get("enough_data") and c.get("median_hours") is not None
    ]
    if measured:
        return str(
            min(measured, key=lambda c: (c["median_hours"], default_order.index(c["channel"])))["channel"]
        )
    return next(channel for channel in default_order if channel != "chat")


def check_text(text: str, config: ChatConfig) -> str:
    """A message's text, trimmed; 422 when empty, longer than the configured limit or holding a NUL
    (PostgreSQL cannot store it, and a socket's messages pass no ``request_guards.NulGuard``)."""
    cleaned = text.strip()
    if not cleaned:
        raise InvalidInput("a message needs some text", field="text")
    if "\x00" in cleaned:
        raise InvalidInput(f"text {NUL_MESSAGE}", field="text")
    if len(cleaned) > config.max_message_chars:
        raise InvalidInput(f"a message holds at most {config.max_message_chars} characters", field="text")
    return cleaned


def check_teams(teams: list[str]) -> list[str]:
    """An agent's teams: trimmed, deduplicated, sorted; each a short name."""
    cleaned = sorted({t.strip() for t in teams})
    if any(not t or len(t) > 120 for t in cleaned):
        raise InvalidInput("a team is a name of 1 to 120 characters", field="teams")
    return cleaned


def resume_after(after: int) -> int:
    """The last seq a resuming client says it has, within the sequence numbers: a socket's ``after``
    is any integer, and one beyond what the databases hold made the first read fail."""
    return min(max(0, after), MAX_SEQ)


def missed(last_sent: int, seq: int) -> bool:
    """A delivered message's seq skips ahead of the last one sent: the gap is read from the store."""
    return seq > last_sent + 1


@dataclass(frozen=True)
class ChatTimes:
    """One conversation's clock: opened, taken by an agent, closed (the last two may be missing)."""

    opened_at: datetime
    taken_at: datetime | None
    closed_at: datetime | None


def _median(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def _p90(values: list[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))]


def times_by_hour(rows: list[ChatTimes], *, now: datetime) -> list[dict[str, Any]]:
    """Waiting (opened to taken; still waiting counts up to now, so a long queue shows) and handling
    (taken to closed) seconds, by hour of opening (UTC), with counts, medians and 90th percentiles."""
    waits: dict[int, list[float]] = defaultdict(list)
    handles: dict[int, list[float]] = defaultdict(list)
    opened: dict[int, int] = defaultdict(int)
    for row in rows:
        hour = row.opened_at.hour
        opened[hour] += 1
        waited_until = row.taken_at or row.closed_at or now
        waits[hour].append(max(0.0, (waited_until - row.opened_at).total_seconds()))
        if row.taken_at is not None and row.closed_at is not None:
            handles[hour].append(max(0.0, (row.closed_at - row.taken_at).total_seconds()))
    return [
        {
            "hour": hour,
            "chats": opened[hour],
            "wait_median_s": _median(waits[hour]),
            "wait_p90_s": _p90(waits[hour]),
            "handled": len(handles[hour]),
            "handle_median_s": _median(handles[hour]),
            "handle_p90_s": _p90(handles[hour]),
        }
        for hour in sorted(opened)
    ]
