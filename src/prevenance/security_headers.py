"""Security headers on every response (a plain ASGI middleware, so streamed and file responses get them too).

Every response says ``X-Content-Type-Options: nosniff`` (no MIME guessing), ``Referrer-Policy:
same-origin`` (signed survey links and member references never leak to another site) and
``X-Frame-Options: DENY`` (no click-jacking). HTML pages of the console, the portal and the survey
also get a Content-Security-Policy: scripts, styles and forms from this origin only.

Vega compiles its expressions with ``new Function``; the CSP-safe interpreter (``vega-interpreter``)
is not vendored, so the staff console's policy admits ``'unsafe-eval'`` in ``script-src`` — and only
there: the portal and the survey page, which members open, draw no chart and get the strict policy.
No page has inline scripts or inline styles (``'unsafe-inline'`` is never granted).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ALWAYS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
STRICT_CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'self'"
)
# The console's charts (vega) need 'unsafe-eval'; see the module's docstring.
CONSOLE_CSP = STRICT_CSP.replace("script-src 'self'", "script-src 'self' 'unsafe-eval'")
HTML_PREFIXES = ("/console", "/portal", "/survey")


def policy_for(path: str) -> str | None:
    """The Content-Security-Policy of an HTML page at ``path``; None outside the pages."""
    if path == "/console" or path.startswith("/console/"):
        return CONSOLE_CSP
    if any(path == prefix or path.startswith(prefix + "/") for prefix in HTML_PREFIXES):
        return STRICT_CSP
    return None


class SecurityHeaders:
    """Adds the headers to each ``http.response.start``; a header the app already set is kept."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        csp = policy_for(str(scope.get("path", "")))

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                extra = [(name, value) for name, value in ALWAYS if name not in present]
                content_type = next((v for n, v in headers if n.lower() == b"content-type"), b"")
                if (
                    csp is not None
                    and content_type.lower().startswith(b"text/html")
                    and b"content-security-policy" not in present
                ):
                    extra.append((b"content-security-policy", csp.encode()))
                message["headers"] = headers + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)
