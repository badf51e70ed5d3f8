"""Is a local container up? The one readiness wait the local endpoint, the tests and the bench share.

SageMaker's own rule: the container is ready when ``GET /ping`` answers 200 (it answers 503 while
the model loads). A container that exits while we wait fails at once, with what it said.
"""

from __future__ import annotations

import errno
import socket
import time
import urllib.error
import urllib.request
from typing import Callable

from deploy.errors import ContainerStartError

POLL_SECONDS = 0.1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def port_refusal(port: int) -> str | None:
    """Why nothing new can listen on ``port`` (bound as the container binds it, on every address),
    or None when it is free. A server already there would answer the readiness ``/ping`` itself."""
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn: TIME_WAIT is free
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return f"port {port} is in use"
            return f"cannot listen on port {port}: {error.strerror}"
    return None


def ping_status(url: str, timeout: float = 2.0) -> int | None:
    """HTTP status of ``GET {url}/ping``, or None when nothing answers."""
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, OSError):
        return None


def wait_until_healthy(url: str, timeout: float, exited: Callable[[], str | None] = lambda: None,
                       on_ping: Callable[[int | None], None] = lambda status: None) -> None:
    """Return once ``/ping`` answers 200; raise ContainerStartError when ``exited()`` names why
    the container is gone, or after ``timeout`` seconds. ``on_ping`` sees every answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reason = exited()
        if reason is not None:
            raise ContainerStartError(reason)
        status = ping_status(url)
        on_ping(status)
        if status == 200:
            return
        time.sleep(POLL_SECONDS)
    raise ContainerStartError(f"/ping not 200 after {timeout:.0f} s at {url}")
