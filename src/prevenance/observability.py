"""``/healthz`` and ``/metrics``: what an operator watches.

The health report checks the database, the stream (NATS, when configured) and the SMTP relay (when
configured) separately, with short timeouts, so a probe never hangs on a dead dependency. It
answers 503 when the database is unreachable (the process can serve nothing), 200 otherwise, with
``status`` "degraded" when the stream or the mail relay is down (writes still land; the outbox and
the mail queue wait for them).
"""

from __future__ import annotations

import asyncio
import smtplib
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import Engine, func, select, text
from starlette.concurrency import run_in_threadpool

from prevenance import __version__
from prevenance.common import outbox
from prevenance.common.metrics import Metrics, new_metrics
from prevenance.common.outbox import OutboxEvent
from prevenance.db import read_session
from prevenance.settings import Settings

PROBE_TIMEOUT = 2.0  # seconds per dependency


def check_database(engine: Engine) -> str:
    try:
        with read_session(engine) as session:
            session.execute(text("SELECT 1"))
        return "ok"
    except Exception as error:  # a probe reports, it does not raise
        return f"error: {type(error).__name__}"


def check_smtp(smtp_url: str | None) -> str:
    if not smtp_url:
        return "not configured"
    parts = urlsplit(smtp_url)
    try:
        with smtplib.SMTP(parts.hostname or "localhost", parts.port or 25, timeout=PROBE_TIMEOUT) as smtp:
            code, _ = smtp.noop()
        return "ok" if code == 250 else f"error: NOOP answered {code}"
    except (OSError, smtplib.SMTPException) as error:
        return f"error: {type(error).__name__}"


async def _stream_state(nats_url: str) -> dict[str, Any]:
    import nats

    from prevenance.stream.names import Names

    names = Names()
    client = await nats.connect(
        nats_url, connect_timeout=PROBE_TIMEOUT, max_reconnect_attempts=0, allow_reconnect=False
    )
    try:
        js = client.jetstream(timeout=PROBE_TIMEOUT)
        try:
            info = await js.consumer_info(names.transactions_stream, names.consumer)
        except Exception:  # the stream or its consumer not created yet: the server is fine
            return {"state": "ok", "pending": -1.0, "ack_pending": -1.0}
        return {"state": "ok", "pending": float(info.num_pending), "ack_pending": float(info.num_ack_pending)}
    finally:
        await client.close()


async def check_stream(nats_url: str | None) -> dict[str, Any]:
    if not nats_url:
        return {"state": "not configured", "pending": -1.0, "ack_pending": -1.0}
    try:
        return await asyncio.wait_for(_stream_state(nats_url), timeout=PROBE_TIMEOUT * 2)
    except Exception as error:
        return {"state": f"error: {type(error).__name__}", "pending": -1.0, "ack_pending": -1.0}


def read_database_gauges(engine: Engine) -> dict[str, float]:
    """Outbox backlog and lag (parked events apart: they wait for an operator) and parked events,
    the ledger's posting count (its highest id: an index read), and the mail the relays gave up on
    (whichever process ran them)."""
    from prevenance.desk.tables import IncidentNotice
    from prevenance.loyalty.tables import Posting
    from prevenance.voice.tables import Invitation

    with read_session(engine) as session:
        pending, oldest = session.execute(
            select(func.count(), func.min(OutboxEvent.occurred_at)).where(outbox.PENDING)
        ).one()
        parked = session.execute(select(func.count()).where(OutboxEvent.parked_at.is_not(None))).scalar_one()
        postings = session.execute(select(func.max(Posting.id))).scalar_one()
        failed_mail = sum(
            session.execute(select(func.count()).where(queue.status == "failed")).scalar_one()
            for queue in (IncidentNotice, Invitation)
        )
        now = session.execute(select(func.current_timestamp())).scalar_one()
    lag = 0.0
    if oldest is not None and now is not None:
        from prevenance.common.ids import as_utc

        lag = max(0.0, (as_utc(now) - as_utc(oldest)).total_seconds())
    return {
        "prevenance_outbox_pending_events": float(pending),
        "prevenance_outbox_lag_seconds": lag,
        "prevenance_outbox_parked_events": float(parked),
        "prevenance_ledger_postings": float(postings or 0),
        "prevenance_mail_failed_messages": float(failed_mail),
    }


def install(app: FastAPI, *, engine: Engine, settings: Settings) -> Metrics:
    """Add the ``/healthz`` and ``/metrics`` routes; the metrics they expose are returned, for the
    app's outer layer to count every request in (``prevenance.edge``)."""
    metrics = new_metrics()

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """Database, stream and SMTP relay, each on its own; needs no key."""
        database, smtp_state, stream = await asyncio.gather(
            run_in_threadpool(check_database, engine),
            run_in_threadpool(check_smtp, settings.smtp_url),
            check_stream(settings.nats_url),
        )
        checks = {"database": database, "stream": stream["state"], "smtp": smtp_state}
        healthy = all(value in ("ok", "not configured") for value in checks.values())
        body = {
            "status": "ok" if healthy else ("down" if database != "ok" else "degraded"),
            **checks,
            "version": __version__,
        }
        return JSONResponse(body, status_code=503 if database != "ok" else 200)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def prometheus_metrics(request: Request) -> Response:
        """Prometheus exposition: request rate and latency per route, outbox lag, ledger postings,
        stream consumer lag, mail relay outcomes and failed mail. Needs no key (expose it on the
        cluster network only)."""
        try:
            gauges = await run_in_threadpool(read_database_gauges, engine)
        except Exception:
            gauges = {}
        stream = await check_stream(settings.nats_url)
        gauges["prevenance_stream_consumer_pending"] = stream["pending"]
        gauges["prevenance_stream_consumer_ack_pending"] = stream["ack_pending"]
        body = metrics.render(lambda: gauges)
        return Response(body, media_type="text/plain; version=0.0.4; charset=utf-8")

    return metrics
