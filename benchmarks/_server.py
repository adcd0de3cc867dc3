"""Helpers shared by the benchmarks that start a real server: a free port, readiness, peak memory,
a clean stop. Not a test: nothing here asserts."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"server on port {port} exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if sock.recv(64).startswith(b"HTTP/1.1 200"):
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"server on port {port} did not answer /healthz within {timeout} s")


def process_tree(pid: int) -> list[int]:
    """The process and its descendants (a uvicorn supervisor and its workers), from /proc."""
    found, pending = [], [pid]
    while pending:
        current = pending.pop()
        found.append(current)
        for task in Path(f"/proc/{current}/task").glob("*"):
            try:
                pending.extend(int(child) for child in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def peak_rss_kb(pid: int) -> int:
    """The largest peak resident set (Linux ``VmHWM``) among the process and its workers, in KiB;
    0 when unknown: with several workers, the figure per worker."""
    peaks = [0]
    for member in process_tree(pid):
        try:
            text = Path(f"/proc/{member}/status").read_text()
        except OSError:
            continue
        found = re.search(r"^VmHWM:\s+(\d+) kB", text, re.MULTILINE)
        peaks.append(int(found.group(1)) if found else 0)
    return max(peaks)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process and its workers (all their threads) have used so far, in
    seconds; 0 when unknown.

    On a machine shared with other work, wall-clock throughput depends on the share of the cores the
    server got; CPU time per request does not, so it is printed beside it."""
    total = 0.0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def ensure_wrk() -> None:
    """Install Debian's ``wrk`` when it is missing and this process may (root); else say how."""
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (apt-get install -y wrk)", flush=True)
        done = subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], capture_output=True, text=True)
        if done.returncode == 0 and shutil.which("wrk"):
            return
        raise SystemExit(f"apt-get install wrk failed: {done.stderr.strip()[-500:]}")
    raise SystemExit("wrk is not installed: apt-get install wrk (as root), or use --driver asyncio")
