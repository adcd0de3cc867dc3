"""Which channel to recommend for a reason, from what the desk measured. No I/O.

The channel that solves a reason fastest, from a case's first contact to its resolution (repeat
contacts included), honouring the member's preferred channel and their hurry; the policy (minimum
cases, tolerance, default order) comes from the desk's configuration (``rules.RoutingPolicy``).
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta

from prevenance.desk.rules import Rate, RoutingPolicy

LIVE_CHANNELS = ("chat", "callback", "phone")


def routing_channel(channel: str, direction: str) -> str:
    """The routing channel a case's first contact stands for: an outbound phone call is a call-back."""
    return "callback" if channel == "phone" and direction == "outbound" else channel


def median_hours(durations: Iterable[timedelta]) -> float | None:
    """The median of durations in hours; None when there are none."""
    hours = [d.total_seconds() / 3600 for d in durations]
    return statistics.median(hours) if hours else None


@dataclass(frozen=True)
class ChannelFigures:
    """What was measured of one channel for one reason: the median hours from a case's first
    contact to its resolution over ``resolved`` cases, and the first-contact-resolution share."""

    channel: str
    median_hours: float | None
    resolved: int
    fcr: Rate


@dataclass(frozen=True)
class Recommendation:
    channel: str
    basis: str  # measured | preferred | default_order
    reason: str


def _matches(preferred: str, channel: str) -> bool:
    """A member who prefers the phone is as well served by a call-back."""
    return channel == preferred or (preferred == "phone" and channel == "callback")


def recommend_channel(
    figures: Iterable[ChannelFigures], *, policy: RoutingPolicy, mode: str | None, preferred: str | None
) -> Recommendation:
    """The channel that solves the reason fastest, honouring the member's preference.

    Only channels with at least ``min_cases`` resolved cases are compared; ties go to the default
    order. Without any, the first channel of the default order. A preferred channel wins when its
    median is at most ``tolerance`` slower than the best, unless the member is ``in_a_hurry``: then
    strictly the fastest of the live channels (chat, call-back, phone) when one is measured, never
    an e-mail. ``leave_me_alone`` still gets an answer: the customer contacted us.
    """
    rank = {channel: index for index, channel in enumerate(policy.default_order)}
    measured = sorted(
        (
            (f.median_hours, rank.get(f.channel, len(rank)), f)
            for f in figures
            if f.resolved >= policy.min_cases and f.median_hours is not None
        ),
        key=lambda item: (item[0], item[1]),
    )
    if not measured:
        return Recommendation(
            policy.default_order[0],
            "default_order",
            f"fewer than {policy.min_cases} resolved cases on every channel: default order",
        )
    if mode == "in_a_hurry":
        live = [item for item in measured if item[2].channel in LIVE_CHANNELS]
        if live:
            hours, _, fastest = live[0]
            return Recommendation(
                fastest.channel,
                "measured",
                f"the member is in a hurry: the fastest live channel, {hours:.1f} h median to "
                f"resolution over {fastest.resolved} cases",
            )
    best_hours, _, best = measured[0]
    if preferred is not None and mode != "in_a_hurry":
        liked = next((item for item in measured if _matches(preferred, item[2].channel)), None)
        if liked is not None and liked[0] <= best_hours * (1 + policy.tolerance):
            return Recommendation(
                liked[2].channel,
                "preferred",
                f"the member's preferred channel: {liked[0]:.1f} h median to resolution against "
                f"{best_hours:.1f} h by {best.channel}, the fastest",
            )
    return Recommendation(
        best.channel,
        "measured",
        f"fastest measured: {best_hours:.1f} h median to resolution over {best.resolved} cases",
    )
