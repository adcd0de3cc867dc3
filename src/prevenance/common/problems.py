"""RFC 9457 problem details: one error hierarchy, one mapping to HTTP.

Every domain error derives from ``PrevenanceError`` and carries a stable ``type`` slug, an HTTP
status and, when one field is to blame, its name. The API and the console share the handlers.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from prevenance.common.rules import FieldError

PROBLEM_BASE = "https://prevenance.dev/problems/"
PROBLEM_JSON = "application/problem+json"


class PrevenanceError(Exception):
    """A refusal the caller can understand: maps to one problem response."""

    type_slug: ClassVar[str] = "error"
    title: ClassVar[str] = "Request refused"
    status: ClassVar[int] = 400

    def __init__(self, detail: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        self.field = field
        self.extra = extra

    def to_problem(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.type_slug,
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.field:
            body["field"] = self.field
        body.update(self.extra)
        return body


class InvalidInput(PrevenanceError):
    """The payload is well-formed JSON but cannot be accepted."""

    type_slug = "invalid-input"
    title = "Invalid input"
    status = 422


class NotFound(PrevenanceError):
    """The resource named in the path does not exist."""

    type_slug = "not-found"
    title = "Resource not found"
    status = 404


class Conflict(PrevenanceError):
    """The request conflicts with the current state."""

    type_slug = "conflict"
    title = "Conflict with the current state"
    status = 409


class IdempotencyConflict(Conflict):
    """The idempotency key was already used with another body."""

    type_slug = "idempotency-key-reused"
    title = "Idempotency key reused with a different body"


class Unauthenticated(PrevenanceError):
    type_slug = "unauthenticated"
    title = "Authentication required"
    status = 401


class Forbidden(PrevenanceError):
    type_slug = "forbidden"
    title = "Not allowed for this role"
    status = 403


class RateLimited(PrevenanceError):
    """Too many requests from one caller on a public endpoint; ``retry_after`` in seconds."""

    type_slug = "rate-limited"
    title = "Too many requests"
    status = 429


def problem_response(body: dict[str, Any], headers: dict[str, str] | None = None) -> JSONResponse:
    """A JSON response with the problem media type."""
    return JSONResponse(body, status_code=int(body["status"]), media_type=PROBLEM_JSON, headers=headers)


def _field_of(loc: tuple[Any, ...] | list[Any], error_type: str | None = None) -> str:
    if error_type == "json_invalid":
        return "body"  # the location is a character offset in the body, not a field
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) if parts else ".".join(str(p) for p in loc)


# SQLite's OperationalError messages for a schema that does not match the code, or for a write
# attempted in a read session (a bug, not an outage).
_SCHEMA_MISMATCH = ("no such table", "no such column", "table ", "attempt to write a readonly database")


def install_problem_handlers(app: FastAPI) -> None:
    """Map every error the app can raise to ``application/problem+json``."""

    @app.exception_handler(PrevenanceError)
    async def _domain_error(request: Request, error: PrevenanceError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if error.status == 401 else None
        if isinstance(error, RateLimited):
            headers = {"Retry-After": str(error.extra.get("retry_after", 1))}
        return problem_response(error.to_problem(request.url.path), headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError) -> JSONResponse:
        errors = [
            {
                "field": _field_of(e.get("loc", ()), e.get("type")),
                "message": str(e.get("msg", "")),
                "type": e.get("type"),
            }
            for e in error.errors()
        ]
        first = errors[0] if errors else {"field": None, "message": "invalid request"}
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + "invalid-input",
            "title": "Invalid input",
            "status": 422,
            "detail": f"{first['field']}: {first['message']}" if first["field"] else first["message"],
            "instance": request.url.path,
            "field": first["field"],
            "errors": errors,
        }
        return problem_response(body)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        slug = {404: "not-found", 405: "method-not-allowed", 401: "unauthenticated", 403: "forbidden"}
        body = {
            "type": PROBLEM_BASE + slug.get(error.status_code, "http-error"),
            "title": str(error.detail) if error.detail else "HTTP error",
            "status": error.status_code,
            "detail": str(error.detail),
            "instance": request.url.path,
        }
        return problem_response(body, dict(error.headers) if error.headers else None)

    @app.exception_handler(DataError)
    async def _data_error(request: Request, error: DataError) -> JSONResponse:
        """The database refused a value. A NUL character is refused at the door
        (``request_guards.NulGuard``); should one still reach PostgreSQL ("contains NUL", "0x00")
        it is the caller's input, so 422 rather than 500."""
        if not is_nul_error(error):
            return await _unexpected(request, error)
        body = {
            "type": PROBLEM_BASE + "invalid-input",
            "title": "Invalid input",
            "status": 422,
            "detail": "a value contains a NUL character (U+0000), which cannot be stored",
            "instance": request.url.path,
            "field": "body",
        }
        return problem_response(body)

    @app.exception_handler(OperationalError)
    async def _database_unavailable(request: Request, error: OperationalError) -> JSONResponse:
        """The database is down, restarting or busy: say so (503) so clients retry later; the
        connection pool reconnects by itself once it is back (``db.refuse_closed_connection``). SQLite also says
        OperationalError for a schema that does not match the code (a migration not run): that is
        no outage and retrying will not help, so it is the internal error it is."""
        import structlog

        if str(error.orig).startswith(_SCHEMA_MISMATCH):
            return await _unexpected(request, error)
        structlog.get_logger().warning("database_unavailable", path=request.url.path, error=str(error.orig))
        body = {
            "type": PROBLEM_BASE + "database-unavailable",
            "title": "Database unavailable",
            "status": 503,
            "detail": "the database cannot be reached right now; retry shortly with the same idempotency key",
            "instance": request.url.path,
        }
        return problem_response(body, {"Retry-After": "2"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        return unexpected_error_response(request, error)


def is_nul_error(error: BaseException) -> bool:
    """Whether a database error is PostgreSQL refusing a NUL character in text."""
    text = str(getattr(error, "orig", None) or error)
    return "NUL" in text or "0x00" in text


def unexpected_error_response(request: Request, error: Exception) -> JSONResponse:
    """The 500 problem of an error nobody expected: logged with its traceback, told to no one.
    Answered from inside the header middlewares (``request_guards.InternalErrors``), so it carries
    the request id and the security headers like any other answer."""
    import structlog

    body = {
        "type": PROBLEM_BASE + "internal-error",
        "title": "Internal error",
        "status": 500,
        "detail": "an unexpected error occurred; it has been logged",
        "instance": request.url.path,
    }
    structlog.get_logger().exception("unhandled_error", path=request.url.path)
    return problem_response(body)


@contextmanager
def as_invalid_input(field: str | None = None) -> Iterator[None]:
    """Turn a pure rule's refusal (``FieldError``) inside the block into the 422 ``InvalidInput``
    pointing at its field, or at ``field`` when the caller names the input better."""
    try:
        yield
    except FieldError as error:
        raise InvalidInput(str(error), field=field or error.field)
