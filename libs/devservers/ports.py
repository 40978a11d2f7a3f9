"""Loopback networking: pick a free port, wait for a TCP port or an HTTP endpoint to answer."""

from __future__ import annotations

import random
import socket
import time
import urllib.error
import urllib.request
from pathlib import Path

__all__ = ["LOOPBACK_OPENER", "free_port", "http_status", "stable_port", "wait_for_tcp"]

# Loopback servers are never reached through a proxy, whatever http_proxy says.
LOOPBACK_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def free_port(host: str = "127.0.0.1") -> int:
    """A port the kernel considers free right now on ``host``.

    The socket is closed before returning, so another process may take the port before the caller
    binds it; launchers that use this retry on "address already in use".
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


_STABLE_LOW = 20000
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def stable_port(host: str = "127.0.0.1", attempts: int = 50) -> int:
    """A free port *below* the kernel's ephemeral range.

    The kernel never hands such a port out by itself (not to ``bind(port=0)``, not as the source
    port of an outgoing connection), so a server that is stopped and started again on it finds it
    free again even while other processes open connections and pick free ports meanwhile. Falls
    back to :func:`free_port` when that range is too small to find one.
    """
    high = _ephemeral_low() - 1
    if high - _STABLE_LOW >= 1000:
        rng = random.SystemRandom()
        for _ in range(attempts):
            port = rng.randint(_STABLE_LOW, high)
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                try:
                    sock.bind((host, port))
                except OSError:
                    continue
                return port
    return free_port(host)


def wait_for_tcp(host: str, port: int, timeout: float = 5.0) -> None:
    """Block until ``host:port`` accepts a TCP connection; ``TimeoutError`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last_error: OSError | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(
                f"{host}:{port} did not accept a connection within {timeout:.1f}s: {last_error}"
            )
        try:
            with socket.create_connection((host, port), timeout=min(remaining, 1.0)):
                return
        except OSError as exc:
            last_error = exc
            time.sleep(min(0.01, max(remaining, 0)))


def http_status(url: str, timeout: float = 1.0) -> int | None:
    """The HTTP status ``GET url`` answers with (errors such as 401 included), or ``None`` when nothing
    answers."""
    try:
        with LOOPBACK_OPENER.open(url, timeout=timeout) as response:
            status: int = response.status
            return status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None
