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
import select
import sys
import threading
import time

from ..serving.shutdown import close_all

CLOSE_SECONDS = 0.5  # for the engine's threads to stop (a forward pass in progress finishes first)


class WorkerExit:
    """The one way out of a worker process; any thread may take it, the first one does.

    The deadline is kept by a thread of its own, not by gunicorn's main loop: the loop can be the
    thing that is stuck (it closes connections itself), and the deadline is what ends that.
    """

    def __init__(self, log, pid: int):
        self._log = log
        self._pid = pid
        self._taken = threading.Lock()
        self._deadline: float | None = None
        self._wake_read, self._wake_write = os.pipe()
        os.set_blocking(self._wake_write, False)

    def start(self) -> "WorkerExit":
        """Start the deadline's thread (in the worker, after the fork)."""
        threading.Thread(target=self._keep_deadline, name="sluice-exit-deadline", daemon=True).start()
        return self

    def at_the_latest_in(self, seconds: float) -> None:
        """Exit ``seconds`` from now unless the drain ends first; an earlier deadline wins.

        Safe in a signal handler: no lock, no new thread, one write to a non-blocking pipe.
        """
        deadline = time.monotonic() + max(0.0, seconds)
        if self._deadline is None or deadline < self._deadline:
            self._deadline = deadline
        try:
            os.write(self._wake_write, b"\0")
        except OSError:
            pass  # the pipe is full of wake-ups already

    def _keep_deadline(self) -> None:
        while True:
            deadline = self._deadline
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                self.now("the shutdown deadline")
            readable, _, _ = select.select([self._wake_read], [], [], wait)
            if readable:
                os.read(self._wake_read, 512)

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
