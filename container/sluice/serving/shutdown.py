"""The worker's shutdown deadline: streams still open when gunicorn's graceful window is about
to end get an in-band error instead of a cut connection.

After SIGTERM gunicorn lets in-flight requests finish for ``graceful_timeout`` seconds (25 s;
SageMaker's SIGKILL comes at 30), then the worker exits and a stream still open is cut mid-body:
the client sees a broken chunked encoding, not a reason. The worker's SIGTERM handler starts this
clock a little before that end; request threads check it as they check their own time limit, and
a request still running then ends as any failure does: an error event in-band, or a 503 for an
answer not yet sent.
"""

from __future__ import annotations

import time

MARGIN_SECONDS = 2.0  # before the graceful window ends: time to write the error and close


class ShutdownClock:
    def __init__(self):
        self._deadline: float | None = None

    def start(self, graceful_seconds: float) -> None:
        """SIGTERM arrived; the worker exits after ``graceful_seconds``."""
        self._deadline = time.monotonic() + max(0.0, graceful_seconds - MARGIN_SECONDS)

    def expired(self) -> bool:
        deadline = self._deadline
        return deadline is not None and time.monotonic() >= deadline


CLOCK = ShutdownClock()  # one per worker process, like the signal that starts it
