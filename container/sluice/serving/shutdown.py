"""How a worker process ends: when running requests must give up, and what stops before it exits.

After SIGTERM gunicorn lets in-flight requests finish for ``graceful_timeout`` seconds (25 s;
SageMaker's SIGKILL comes at 30), then the worker exits and a stream still open is cut mid-body:
the client sees a broken chunked encoding, not a reason. The worker's signal handlers start this
clock a little before that end (or end it at once, for Ctrl-C); request threads check it as they
check their own time limit, and a request still running then ends as any failure does: an error
event in-band, or a 503 for an answer not yet sent.

The engine's threads must stop before the process exits: a daemon thread still inside torch (or
vLLM) when the interpreter finalizes is ended from under its C++ frames, which aborts the process
(``terminate called without an active exception``, gunicorn's ``Worker ... was sent SIGABRT!``).
What owns such threads registers its ``close`` here; the worker calls them on its way out.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger("sluice.shutdown")

MARGIN_SECONDS = 2.0  # before the graceful window ends: time to write the error and close


class ShutdownClock:
    def __init__(self):
        self._deadline: float | None = None
        self._lock = threading.Lock()

    def start(self, graceful_seconds: float) -> None:
        """SIGTERM arrived; the worker exits after ``graceful_seconds``."""
        self._end_by(time.monotonic() + max(0.0, graceful_seconds - MARGIN_SECONDS))

    def expire_now(self) -> None:
        """Ctrl-C: running requests end with the in-band error at their next check."""
        self._end_by(time.monotonic())

    def _end_by(self, deadline: float) -> None:
        """A later signal can bring the end forward, never push it back."""
        with self._lock:
            if self._deadline is None or deadline < self._deadline:
                self._deadline = deadline

    def expired(self) -> bool:
        deadline = self._deadline
        return deadline is not None and time.monotonic() >= deadline


CLOCK = ShutdownClock()  # one per worker process, like the signal that starts it

# What must stop before this process exits, each called with the seconds it may take.
_CLOSERS: list[Callable[[float], object]] = []


def close_before_exit(close: Callable[[float], object]) -> None:
    """Register ``close(timeout)`` (e.g. the model host's) to run when the worker exits."""
    _CLOSERS.append(close)


def close_all(timeout: float) -> None:
    """Run every registered ``close`` within ``timeout`` seconds in all; a failure is logged and
    the others still run (the process is about to exit either way)."""
    deadline = time.monotonic() + timeout
    for close in list(_CLOSERS):
        try:
            close(max(0.0, deadline - time.monotonic()))
        except Exception:
            log.exception("stopping %r before exit failed", close)
