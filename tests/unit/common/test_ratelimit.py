"""Rate limits on public endpoints: the n+1-th request in the window is a 429 problem with
Retry-After, counted per caller and key; with Redis, two workers share the counts."""

from __future__ import annotations

import os
import uuid

from fastapi import Depends, FastAPI
from fastapi.testclient import TestClient

from prevenance.common.problems import install_problem_handlers
from prevenance.common.ratelimit import RateLimiter, limited
from tests.conftest import missing_server


def _app(limiter: RateLimiter, rule: str = "3/minute") -> FastAPI:
    app = FastAPI()
    app.state.rate_limiter = limiter
    install_problem_handlers(app)
    guard = limited("test", lambda _: rule, lambda request: request.path_params["token"])

    @app.get("/survey/{token}", dependencies=[Depends(guard)])
    def survey(token: str) -> dict[str, str]:
        return {"token": token}

    return app


def test_the_limit_refuses_with_a_problem_and_retry_after() -> None:
    client = TestClient(_app(RateLimiter("memory://")))
    assert [client.get("/survey/a").status_code for _ in range(3)] == [200, 200, 200]
    refused = client.get("/survey/a")
    assert refused.status_code == 429
    assert refused.headers["content-type"].startswith("application/problem+json")
    assert refused.json()["type"].endswith("rate-limited") and int(refused.headers["Retry-After"]) >= 1
    assert client.get("/survey/b").status_code == 200  # another key has its own budget


def test_workers_share_counts_through_redis() -> None:
    url = os.environ.get("PREVENANCE_TEST_REDIS_URL")
    if not url:
        missing_server("PREVENANCE_TEST_REDIS_URL (a Redis server) is not set")
    token = uuid.uuid4().hex  # keys of this run only: nothing to clean on a shared server
    first, second = TestClient(_app(RateLimiter(url))), TestClient(_app(RateLimiter(url)))
    assert first.get(f"/survey/{token}").status_code == 200
    assert second.get(f"/survey/{token}").status_code == 200
    assert first.get(f"/survey/{token}").status_code == 200
    assert second.get(f"/survey/{token}").status_code == 429  # the fourth, whichever worker answers
