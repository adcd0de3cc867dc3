"""FastAPI assembly: routers, problem+json handlers, the request guards and edge, background maintenance."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from sqlalchemy import Engine

from prevenance import __version__, observability, wiring
from prevenance.access_audit import AccessAuditMiddleware
from prevenance.common import openapi
from prevenance.common.clock import Clock, SystemClock
from prevenance.common.problems import install_problem_handlers
from prevenance.common.proxies import TrustedProxies
from prevenance.common.ratelimit import RateLimiter
from prevenance.console.routes import router as console_router
from prevenance.customers.api import router as members_router
from prevenance.db import make_engine, wal_checkpoints_in_background
from prevenance.desk.api import router as desk_router
from prevenance.desk.chat.api import router as chat_router
from prevenance.desk.concierge_api import router as concierge_router
from prevenance.desk.mail_in.api import router as mail_in_router
from prevenance.desk.recovery_api import router as recovery_router
from prevenance.edge import Edge
from prevenance.logging import configure as configure_logging
from prevenance.logging import install_uvicorn_redaction
from prevenance.loyalty.api import router as loyalty_router
from prevenance.loyalty.batcher import EarnBatching
from prevenance.maintenance import Maintenance
from prevenance.offers.api import router as offers_router
from prevenance.offers.roi.api import router as offers_roi_router
from prevenance.request_guards import BodyGuard, InternalErrors, NulGuard
from prevenance.settings import Settings, get_settings
from prevenance.views.benefit_usage_api import router as benefit_usage_router
from prevenance.views.chat_moments import router as chat_moments_router
from prevenance.views.goodwill import router as goodwill_router
from prevenance.views.incidents import router as incidents_router
from prevenance.views.member360 import router as member360_router
from prevenance.views.privacy import router as privacy_router
from prevenance.voice.api import router as voice_router

log = structlog.get_logger()


def create_app(
    settings: Settings | None = None,
    *,
    engine: Engine | None = None,
    clock: Clock | None = None,
    background: bool = False,
) -> FastAPI:
    """Build the application; tests pass their own engine and clock."""
    settings = settings or get_settings()
    if not structlog.is_configured():
        configure_logging(json=settings.log_json)
    install_uvicorn_redaction()  # however uvicorn was started, its access log hides tokens and searches
    engine = engine or make_engine(
        settings.database_url,
        busy_timeout_ms=settings.sqlite_busy_timeout_ms,
        group_commit=settings.sqlite_group_commit,
        background_checkpoints=background,
    )
    clock = clock or SystemClock()
    stop = threading.Event()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        worker = (
            Maintenance(
                engine=engine,
                clock=clock,
                stop=stop,
                deliver_events=settings.nats_url is None,
                smtp_url=settings.smtp_url,
                settings=settings,
            )
            if background
            else None
        )
        if worker:
            worker.start()
        # SQLite: the WAL is checkpointed beside the writers, not by the commit that fills it.
        with wal_checkpoints_in_background(engine):
            yield
        stop.set()
        if worker:
            worker.join(timeout=5)

    app = FastAPI(
        title="Prevenance",  # ASCII: client generators derive a package name from it
        generate_unique_id_function=openapi.operation_id,
        version=__version__,
        description="Rewards ledger, service desk, voice of the customer and offers on one customer record.",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.clock = clock
    app.state.settings = settings
    app.state.rate_limiter = RateLimiter(settings.rate_limit_storage)
    app.state.earn_batching = EarnBatching(
        engine,
        clock.now,
        max_batch=settings.earn_batch_max,
        linger=settings.earn_batch_linger_ms / 1000,
        in_flight=settings.earn_batches_in_flight,
    )
    wiring.install()
    install_problem_handlers(app)

    # Innermost first: the last added is the outermost. The size limit, the 500 answer and every
    # refusal before the app sit inside the edge (request id, security headers, metrics).
    app.add_middleware(AccessAuditMiddleware, engine=engine, clock=clock)
    app.add_middleware(InternalErrors)
    app.add_middleware(NulGuard)  # inside the body guard: the key and the size come first
    app.add_middleware(BodyGuard, max_bytes=settings.max_body_bytes)

    metrics = observability.install(app, engine=engine, settings=settings)
    openapi.install(app)
    # Outermost: log redaction, the forwarded client, metrics, security headers and the request id.
    app.add_middleware(Edge, proxies=TrustedProxies.from_text(settings.trusted_proxies), metrics=metrics)

    app.include_router(members_router)
    app.include_router(loyalty_router)
    app.include_router(desk_router)
    app.include_router(chat_router)
    app.include_router(chat_moments_router)
    app.include_router(concierge_router)
    app.include_router(mail_in_router)
    app.include_router(recovery_router)
    app.include_router(member360_router)
    app.include_router(incidents_router)
    app.include_router(goodwill_router)
    app.include_router(voice_router)
    app.include_router(offers_router)
    app.include_router(offers_roi_router)
    app.include_router(benefit_usage_router)
    app.include_router(privacy_router)
    app.include_router(console_router)
    return app
