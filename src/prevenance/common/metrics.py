"""Prometheus metrics: request rate and latency per route, mail relay outcomes, and gauges read at
scrape time (outbox lag, ledger postings, stream consumer lag, failed mail).

Each app has its own registry (tests build many apps in one process). Under several uvicorn
workers, set ``PROMETHEUS_MULTIPROC_DIR`` to a shared empty directory: counters and histograms are
then aggregated over the workers by prometheus-client's multiprocess collector.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

REQUEST_LATENCY = "prevenance_http_request_duration_seconds"  # the request histogram
# Latency buckets (seconds) around the targets: 25 ms earn, 100 ms 360.
BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


@dataclass
class Metrics:
    """The app's metrics and its registry."""

    registry: CollectorRegistry
    requests: Counter
    latency: Histogram
    gauges: dict[str, Gauge]

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count and time one HTTP request by its route template (``/v1/members/{ref}``, never the
        concrete path, so the label set stays small); ``prevenance.edge`` calls it for each."""
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)

    def render(self, read_gauges: Callable[[], dict[str, float]]) -> bytes:
        """The exposition text, after refreshing the scrape-time gauges."""
        for name, value in read_gauges().items():
            if name in self.gauges:
                self.gauges[name].set(value)
        if _multiprocess():
            shared = CollectorRegistry()
            MultiProcessCollector(shared)  # counters and histograms of every worker, summed
            return generate_latest(shared) + generate_latest(self.registry)
        return generate_latest(self.registry)


def _multiprocess() -> bool:
    return bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))


MAIL_MESSAGES = "prevenance_mail_messages"  # the mail relay counter (exported as ``…_total``)
# The relays run outside any app (the maintenance thread, ``desk send-notices``): one counter per
# process, registered in every app's registry (or, under several workers, in the shared files).
_MAIL = Counter(
    MAIL_MESSAGES,
    "Mail relay attempts by queue (kind) and outcome: sent, retry (temporary failure), failed",
    ["kind", "outcome"],
    registry=None,
)


def count_mail(kind: str, outcome: str) -> None:
    """Count one relay attempt of a mail queue (``sent``, ``retry`` or ``failed``)."""
    _MAIL.labels(kind, outcome).inc()


GAUGES = {
    "prevenance_outbox_pending_events": "Outbox events not yet delivered",
    "prevenance_outbox_lag_seconds": "Age of the oldest undelivered outbox event",
    "prevenance_outbox_parked_events": "Outbox events parked after repeated handler failures",
    "prevenance_ledger_postings": "Ledger postings written (highest posting id)",
    "prevenance_stream_consumer_pending": "Transactions waiting in the JetStream consumer (-1: no stream)",
    "prevenance_stream_consumer_ack_pending": "Transactions delivered to a worker and not yet acked",
    "prevenance_mail_failed_messages": "Mail the relay gave up on (refused for good or out of retries)",
}


def new_metrics() -> Metrics:
    """A fresh registry with the request metrics and the scrape-time gauges."""
    registry = CollectorRegistry()
    # Under several workers the request metrics live in prometheus-client's shared files (one app
    # per process there); the scrape-time gauges read the database, so any worker answers alike.
    target = None if _multiprocess() else registry
    requests = Counter(
        "prevenance_http_requests",
        "HTTP requests by method, route template and status",
        ["method", "route", "status"],
        registry=target,
    )
    latency = Histogram(
        REQUEST_LATENCY,
        "HTTP request latency by method and route template",
        ["method", "route"],
        buckets=BUCKETS,
        registry=target,
    )
    gauges = {name: Gauge(name, help_text, registry=registry) for name, help_text in GAUGES.items()}
    if not _multiprocess():
        registry.register(_MAIL)
    return Metrics(registry, requests, latency, gauges)
