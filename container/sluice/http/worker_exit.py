"""How a gunicorn worker process ends: in time, with status 0, without a kill, an abort or a traceback.

gunicorn ends a worker by returning from its loop (or, on SIGINT/SIGQUIT, by ``sys.exit()`` from
the signal handler) and letting Python exit. For a server whose engine runs in threads that goes
wrong three ways:

- Python's exit first joins every thread of the connection pool (``concurrent.futures``' exit
  hook), so a stream still running, or a client still trickling a body, holds the process until
  the arbiter's SIGKILL at the end of its graceful window (Ctrl-C: 25 s of silence, then
  ``Worker ... was sent SIGKILL! Perhaps out of memory?``).
- Then it finalizes with daemon threads still inside torch or vLLM; such a thread is ended from
  under its C++ frames and the process aborts (``terminate called without an active exception``,
  ``Worker ... was sent SIGABRT!``). A second Ctrl-C during the join raises ``SystemExit`` inside
  it: ``Exception ignored in: <module 'threading'>`` and a traceback.
- The worker drains for exactly the graceful window the arbiter waits before SIGKILL.

So the worker exits by itself, once: it stops what serving.shutdown has registered (the engine's
threads), writes gunicorn's own ``Worker exiting`` line, flushes, and ends with ``os._exit(0)``,
skipping interpreter finalization. It does this when its drain is over, or at the latest at a
deadline set by the signal, before the arbiter's.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from ..serving.shutdown import close_all

CLOSE_SECONDS = 0.5  # for the engine's threads to stop (a forward pass in progress finishes first)


class WorkerExit:
    """The one way out of a worker process; any thread may take it, the first one does."""

    def __init__(self, log, pid: int):
        self._log = log
        self._pid = pid
        self._taken = threading.Lock()
        self._deadline: float | None = None

    def at_the_latest_in(self, seconds: float) -> None:
        """Exit ``seconds`` from now unless the drain ends first; an earlier deadline wins.

        Starts a thread: call it from the worker's main loop (gunicorn's method queue), never
        from a signal handler, which may have interrupted the main thread inside ``threading``.
        """
        deadline = time.monotonic() + max(0.0, seconds)
        if self._deadline is not None and deadline >= self._deadline:
            return
        self._deadline = deadline
        timer = threading.Timer(max(0.0, seconds), self.now, args=("the shutdown deadline",))
        timer.daemon = True
        timer.name = "sluice-exit-deadline"
        timer.start()

    def now(self, reason: str = "drained") -> None:
        """Stop the engine, then end the process with status 0. Never returns: a second caller
        waits for the first one's ``os._exit``."""
        if not self._taken.acquire(blocking=False):
            while True:
                time.sleep(60)
        close_all(CLOSE_SECONDS)
        self._log.info("Worker exiting (pid: %s): %s", self._pid, reason)
        _leave(0)

    def at_once(self, reason: str) -> None:
        """A second Ctrl-C: no engine stop, no drain; still status 0 and one line, no traceback."""
        self._log.info("Worker exiting (pid: %s) at once: %s", self._pid, reason)
        _leave(0)


def _leave(status: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # closed or gone: nothing more to lose
    os._exit(status)
