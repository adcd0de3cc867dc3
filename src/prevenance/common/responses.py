"""How every API module sends a use case's stored answer (``common.idempotency.Outcome``)."""

from __future__ import annotations

from fastapi.responses import JSONResponse

from prevenance.common.idempotency import Outcome
from prevenance.common.problems import PROBLEM_JSON


def respond(outcome: Outcome) -> JSONResponse:
    """The stored answer as sent: its status, ``application/problem+json`` for a refusal, and
    ``Idempotent-Replayed: true`` when it is the replay of an earlier request."""
    media = PROBLEM_JSON if outcome.status_code >= 400 else "application/json"
    headers = {"Idempotent-Replayed": "true"} if outcome.replayed else None
    return JSONResponse(outcome.body, status_code=outcome.status_code, media_type=media, headers=headers)
