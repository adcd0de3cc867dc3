"""The OpenAPI document: every operation documents the problem responses it can give.

FastAPI documents only the success response and its own 422. Every route here can also refuse with
an RFC 9457 problem (401 no key, 403 role or scope, 404 unknown resource, 409 conflict or reused
idempotency key, 422 invalid input, 429 rate limit, 503 database unavailable); this fills them in,
with the ``application/problem+json`` media type and one ``Problem`` schema, so clients and
schemathesis see the real contract.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute

from prevenance.common.problems import PROBLEM_JSON

PROBLEM_SCHEMA: dict[str, Any] = {
    "title": "Problem",
    "type": "object",
    "description": "RFC 9457 problem details; `field` names the input at fault when there is one.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "field": {"type": ["string", "null"]},
    },
    "additionalProperties": True,
}
PROBLEMS = {
    "400": "Malformed request",
    "401": "Missing or unknown API key",
    "403": "Not allowed for this role or member",
    "404": "Unknown resource",
    "409": "Conflict with the current state, or idempotency key reused with another body",
    "422": "Invalid input",
    "429": "Too many requests",
    "503": "Database unavailable; retry with the same idempotency key",
}
PUBLIC_PROBLEMS = ("503",)
TOO_LARGE = "Request body above PREVENANCE_MAX_BODY_BYTES"
_METHODS = ("get", "put", "post", "delete", "patch")


def document_problems(schema: dict[str, Any]) -> dict[str, Any]:
    """Add the problem responses to every operation of an OpenAPI document (in place)."""
    components = schema.setdefault("components", {}).setdefault("schemas", {})
    components["Problem"] = PROBLEM_SCHEMA
    problem = {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, item in schema.get("paths", {}).items():
        for method in _METHODS:
            operation = item.get(method)
            if operation is None:
                continue
            responses = operation.setdefault("responses", {})
            keyed = bool(operation.get("security")) or path.startswith("/v1/")
            for code, description in PROBLEMS.items():
                if not keyed and code not in PUBLIC_PROBLEMS:
                    continue
                existing = responses.get(code)
                if existing is None:
                    responses[code] = {"description": description, "content": problem}
                else:
                    existing["content"] = problem  # FastAPI's own 422 says application/json
            if "requestBody" in operation:  # request_guards.BodyGuard, before the route reads it
                responses.setdefault("413", {"description": TOO_LARGE, "content": problem})
    components.pop("HTTPValidationError", None)
    components.pop("ValidationError", None)
    return schema


def operation_id(route: APIRoute) -> str:
    """The route function's name (``post_transaction``): short and stable for generated clients.

    FastAPI's default appends the path and method (``post_transaction_v1_transactions_post``), which
    every generator turns into a method name; a test keeps the names unique across the app.
    """
    return route.name


def install(app: FastAPI) -> None:
    """Serve the completed document at ``/openapi.json`` (built once, then cached)."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_problems(
                get_openapi(
                    title=app.title,
                    version=app.version,
                    description=app.description,
                    routes=app.routes,
                    tags=app.openapi_tags,
                )
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
