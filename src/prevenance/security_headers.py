"""Security headers on every response (added in the app's outer ASGI layer, ``prevenance.edge``, so
streamed and file responses get them too).

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

from collections.abc import MutableMapping
from typing import Any

Message = MutableMapping[str, Any]

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


def add_security_headers(message: Message, csp: str | None) -> None:
    """Add the headers to an ``http.response.start`` message (a header the app already set is kept);
    ``csp`` is the page's policy (``policy_for``), given to HTML answers only. ``prevenance.edge``
    calls it for every response, streamed and file responses included."""
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
