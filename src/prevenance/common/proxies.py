"""Who the client is behind a reverse proxy: forwarded headers are believed from trusted proxies only.

``X-Forwarded-For``, ``Forwarded`` (RFC 7239), ``X-Real-IP`` and ``X-Forwarded-Proto`` are headers any
caller can write. They are read only when the TCP peer is one of the configured proxies
(``PREVENANCE_TRUSTED_PROXIES``, IPs or CIDRs; empty: none). The client is then the right-most
address of the chain that is not itself a trusted proxy (each proxy appends the address it saw, so
what lies left of the first untrusted hop was written by the caller and proves nothing). This is the
rule uvicorn's own proxy middleware applies, and ``prevenance serve`` hands uvicorn the same list, so
the server's access log, the rate limits and the audit agree on the address.

``TrustedProxies.rewrite`` sets the ASGI scope's ``client`` (and ``scheme``) in place, in the app's
outermost layer (``prevenance.edge``), before anything else of the application reads them.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from starlette.types import Scope

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_FORWARDED_PAIR = re.compile(r'(?i)(for|proto)\s*=\s*("[^"]*"|[^;,\s]*)')


def parse_networks(text: str) -> tuple[IpNetwork, ...]:
    """The networks of a comma-separated list of IPs and CIDRs (a bare IP is a /32 or /128)."""
    return tuple(ipaddress.ip_network(item.strip(), strict=False) for item in text.split(",") if item.strip())


def _address(value: str) -> str:
    """The bare address of a forwarded node: ``[2001:db8::1]:443`` → ``2001:db8::1``,
    ``203.0.113.9:5000`` → ``203.0.113.9``; anything else (``unknown``, an obfuscated name) as written."""
    value = value.strip().strip('"')
    if value.startswith("["):
        end = value.find("]")
        return value[1:end] if end > 0 else value
    if value.count(":") == 1:
        return value.split(":", 1)[0]
    return value


class TrustedProxies:
    """The configured proxies and the rule that finds the client behind them."""

    def __init__(self, networks: Iterable[IpNetwork]) -> None:
        self.networks = tuple(networks)

    @classmethod
    def from_text(cls, text: str) -> TrustedProxies:
        return cls(parse_networks(text))

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, host: str | None) -> bool:
        """Whether ``host`` is one of the trusted proxies."""
        if not host or not self.networks:
            return False
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def client_of(self, chain: list[str]) -> str | None:
        """The right-most address of a forwarded chain that is not a trusted proxy (the left-most when
        every hop is trusted); None for an empty chain."""
        hops = [hop for hop in (_address(item) for item in chain) if hop]
        for hop in reversed(hops):
            if not self.trusts(hop):
                return hop
        return hops[0] if hops else None

    def resolve(self, peer: str | None, headers: list[tuple[bytes, bytes]]) -> tuple[str | None, str | None]:
        """(client address, scheme) as the trusted proxy in front says, or (None, None) when the
        peer is not a trusted proxy or it says nothing usable."""
        if not self.trusts(peer):
            return None, None
        found: dict[bytes, list[str]] = {}
        for name, value in headers:
            if name in (b"x-forwarded-for", b"forwarded", b"x-real-ip", b"x-forwarded-proto"):
                found.setdefault(name, []).append(value.decode("latin-1"))
        client, scheme = None, None
        if b"x-forwarded-for" in found:
            client = self.client_of(
                [item for value in found[b"x-forwarded-for"] for item in value.split(",")]
            )
        forwarded = ",".join(found.get(b"forwarded", []))
        pairs = [(key.lower(), value.strip('"')) for key, value in _FORWARDED_PAIR.findall(forwarded)]
        if client is None and forwarded:
            client = self.client_of([value for key, value in pairs if key == "for"])
        if client is None and b"x-real-ip" in found:
            client = _address(found[b"x-real-ip"][-1]) or None
        proto = found.get(b"x-forwarded-proto", [""])[-1].split(",")[-1].strip().lower()
        if not proto:
            protos = [value.lower() for key, value in pairs if key == "proto"]
            proto = protos[-1] if protos else ""
        if proto in ("http", "https"):
            scheme = proto
        return client, scheme

    def rewrite(self, scope: Scope) -> None:
        """The scope's client (and, for HTTP, scheme) become those the trusted proxy forwarded
        (``prevenance.edge`` calls it on every request, before anything reads the client)."""
        peer = scope.get("client")
        client, scheme = self.resolve(peer[0] if peer else None, scope.get("headers", []))
        if client is not None:
            scope["client"] = (client, 0)
        if scheme is not None and scope["type"] == "http":
            scope["scheme"] = scheme
