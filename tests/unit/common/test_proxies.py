"""Who the client is behind a proxy: forwarded headers count only when the TCP peer is a configured
proxy, and then the client is the right-most hop that is not itself a trusted proxy."""

from __future__ import annotations

import pytest

from prevenance.common.proxies import TrustedProxies


def _headers(**values: str) -> list[tuple[bytes, bytes]]:
    return [(name.replace("_", "-").lower().encode(), value.encode()) for name, value in values.items()]


PROXIES = TrustedProxies.from_text("10.0.0.0/8, 2001:db8:ff::/48, 192.0.2.10")


@pytest.mark.parametrize(
    ("headers", "client", "scheme"),
    [
        (_headers(X_Forwarded_For="198.51.100.7"), "198.51.100.7", None),
        (_headers(X_Forwarded_For="203.0.113.1, 198.51.100.7, 10.9.9.9"), "198.51.100.7", None),
        (_headers(X_Forwarded_For="10.1.1.1, 192.0.2.10"), "10.1.1.1", None),  # every hop trusted
        (_headers(X_Forwarded_For="198.51.100.7:5123"), "198.51.100.7", None),
        (_headers(Forwarded='for="[2001:db8::7]:4711";proto=https, for=10.0.0.2'), "2001:db8::7", "https"),
        (_headers(X_Real_IP="198.51.100.9", X_Forwarded_Proto="https"), "198.51.100.9", "https"),
        (_headers(X_Forwarded_For="198.51.100.7", X_Real_IP="203.0.113.3"), "198.51.100.7", None),
        (_headers(X_Forwarded_Proto="gopher"), None, None),
        ([], None, None),
    ],
)
def test_a_trusted_proxy_names_the_client(
    headers: list[tuple[bytes, bytes]], client: str | None, scheme: str | None
) -> None:
    assert PROXIES.resolve("10.0.0.1", headers) == (client, scheme)
    assert PROXIES.resolve("2001:db8:ff::1", headers) == (client, scheme)


@pytest.mark.parametrize("peer", ["198.51.100.1", "127.0.0.1", "::1", None, "not-an-ip"])
def test_anyone_else_is_its_own_client_whatever_it_writes(peer: str | None) -> None:
    headers = _headers(X_Forwarded_For="1.2.3.4", Forwarded="for=1.2.3.4;proto=https", X_Real_IP="1.2.3.4")
    assert PROXIES.resolve(peer, headers) == (None, None)


def test_no_configured_proxy_trusts_nobody() -> None:
    nobody = TrustedProxies.from_text("")
    assert not nobody and not nobody.trusts("127.0.0.1")
    assert nobody.resolve("127.0.0.1", _headers(X_Forwarded_For="1.2.3.4")) == (None, None)
