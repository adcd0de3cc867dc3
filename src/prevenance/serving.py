"""Several uvicorn workers that share the load evenly: each listens on its own ``SO_REUSEPORT`` socket.

uvicorn's multi-worker mode shares one listening socket between its workers, and a worker's event
loop accepts every connection waiting when it wakes (asyncio accepts up to the backlog at once): a
burst of keep-alive clients (an integrator's connection pool, a proxy's upstream pool) can land on
one worker while the others idle. Measured: 32 clients on 2 workers, all 32 on one worker, which
then served the whole load alone at twice the latency. With ``SO_REUSEPORT`` each worker has its
own socket and the kernel spreads new connections across them by hash.

uvicorn's supervisor is kept (health checks, restarts, signals): only the class of its worker
processes is replaced, by one that binds its own socket before serving. The parent binds the port
without listening on it, so the port is taken (and a port 0 resolved) before any worker starts, yet
no connection is ever queued on a socket nobody accepts from. Linux only (elsewhere the kernel does
not balance ``SO_REUSEPORT`` sockets): other systems keep uvicorn's shared socket. A worker that
dies loses the connections still waiting in its own queue (their clients see a reset and retry).
"""

from __future__ import annotations

import socket
import sys

from uvicorn import Config
from uvicorn.supervisors import multiprocess


def balanced_workers_supported() -> bool:
    """Whether the kernel balances ``SO_REUSEPORT`` listeners (Linux)."""
    return sys.platform.startswith("linux") and hasattr(socket, "SO_REUSEPORT")


def reuse_port_socket(host: str, port: int, *, backlog: int | None) -> socket.socket:
    """A TCP socket bound to ``host:port`` with ``SO_REUSEPORT``; listening unless ``backlog`` is None."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
        if backlog is not None:
            sock.listen(backlog)
    except OSError:
        sock.close()
        raise
    sock.set_inheritable(True)
    return sock


class OwnSocketWorker(multiprocess.Process):
    """A uvicorn worker process that serves on a socket of its own (see the module docstring)."""

    def target(self, sockets: list[socket.socket] | None = None) -> None:  # pragma: no cover - child
        own = reuse_port_socket(self.config.host, self.config.port, backlog=self.config.backlog)
        super().target([own])


def run_balanced_workers(config: Config) -> None:
    """Serve ``config`` (an import string, ``workers`` > 1) with one ``SO_REUSEPORT`` socket per worker."""
    guard = reuse_port_socket(config.host, config.port, backlog=None)
    config.port = guard.getsockname()[1]
    shared = multiprocess.Process
    multiprocess.Process = OwnSocketWorker  # type: ignore[misc]  # the supervisor builds workers by this name
    try:
        multiprocess.Multiprocess(config, sockets=[]).run()
    finally:
        multiprocess.Process = shared  # type: ignore[misc]
        guard.close()
