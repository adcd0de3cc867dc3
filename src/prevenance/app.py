"""FastAPI assembly: routers, problem+json handlers, request ids, background maintenance."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import structlog
from fastapi import FastAPI
from sqlalchemy import Engine, text
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prevenance import __version__
from prevenance.common.clock import Clock, SystemClock
from prevenance.common.deps import new_key_cache
from prevenance.common.ids import new_id
from prevenance.common.problems import install_problem_handlers
from prevenance.console.routes import router as console_router
from prevenance.customers.api import router as members_router
from prevenance.db import make_engine, read_session
from prevenance.desk.api import router as desk_router
from prevenance.desk.concierge_api import router as concierge_router
from prevenance.logging import configure as configure_logging
from prevenance.loyalty.api import router as loyalty_router
from prevenance.offers.api import router as offers_router
from prevenance.settings import Settings, get_settings
from prevenance.views.incidents import router as incidents_router
from prevenance.views.member360 import router as member360_router
from prevenance.voice.api import router as voice_router
from prevenance.worker import Maintenance

log = structlog.get_logger()


class RequestIdMiddleware:
    """A request id on every log line and in the ``X-Request-Id`` response header.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's ``BaseHTTPMiddleware`` streams
    every response through an extra task and queue, a cost paid on each request of the hot path.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = Headers(scope=scope).get("x-request-id") or new_id("req")
        structlog.contextvars.bind_contextvars(request_id=rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message)["X-Request-Id"] = rid
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            structlog.contextvars.clear_contextvars()


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
    engine = engine or make_engine(settings.database_url, busy_timeout_ms=settings.sqlite_busy_timeout_ms)
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
            )
            if background
            else None
        )
        if worker:
            worker.start()
        yield
        stop.set()
        if worker:
            worker.join(timeout=5)

    app = FastAPI(
        title="Prévenance",
        version=__version__,
        description="Rewards ledger, service desk, voice of the customer and offers on one customer record.",
        lifespan=lifespan,
    )
    app.state.engine = engine
    app.state.clock = clock
    app.state.settings = settings
    app.state.key_cache = new_key_cache()
    install_problem_handlers(app)

    app.add_middleware(RequestIdMiddleware)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, object]:
        """Liveness and database reachability; needs no key."""
        try:
            with read_session(engine) as session:
                session.execute(text("SELECT 1"))
            database = "ok"
        except Exception as error:  # a health probe reports, it does not raise
            database = f"error: {type(error).__name__}"
        return {
            "status": "ok" if database == "ok" else "degraded",
            "database": database,
            "version": __version__,
        }

    app.include_router(members_router)
    app.include_router(loyalty_router)
    app.include_router(desk_router)
    app.include_router(concierge_router)
    app.include_router(member360_router)
    app.include_router(incidents_router)
    app.include_router(voice_router)
    app.include_router(offers_router)
    app.include_router(console_router)
    return app
