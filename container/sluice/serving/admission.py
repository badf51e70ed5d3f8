"""A burst's requests are admitted a few at a time; the others wait their turn, off the GIL.

Admitting a request (gunicorn's parse, Flask's request, the body, validation and tokenizing,
building and sending the engine's request, registering it with the delivery thread) is Python
under the GIL, broken by calls that let the GIL go. When a burst of N streams arrives, gunicorn
gives each its own thread at once; N threads sharing the GIL all finish admission at about the
same time, near the end of the burst, and the delivery thread's writes wait behind them. So
admission takes turns, ``SLOTS`` at a time:

- a request whose bytes have all arrived (``http.whole_request``) takes a turn when its thread
  starts and holds it until the engine has the request (``GATE.take()`` ... ``GATE.give()``): the
  burst is admitted one request after another, the first streams start at once;
- any other request takes a turn for each piece of admission work (``with GATE:``; inside a held
  turn these cost nothing).

Nothing in a turn waits for a client or for the engine: a turn ends before a grammar compile, a
cached replay and the wait for an answer, and a request still arriving never holds one through
its reads, so a slow client cannot hold one.
"""

from __future__ import annotations

import threading

SLOTS = 2  # two: one runs while the other's socket call lets the GIL go


class Turns:
    """A semaphore whose holder is known per thread, so a held turn is never taken twice."""

    def __init__(self, slots: int):
        self._slots = threading.Semaphore(slots)
        self._local = threading.local()

    def holding(self) -> bool:
        return getattr(self._local, "held", False)

    def take(self) -> bool:
        """Takes a turn unless this thread holds one; whether it took one."""
        if self.holding():
            return False
        self._slots.acquire()
        self._local.held = True
        return True

    def give(self) -> None:
        """Gives this thread's turn back (nothing if it holds none)."""
        if self.holding():
            self._local.held = False
            self._slots.release()

    def __enter__(self):
        stack = self._local.__dict__.setdefault("taken", [])
        stack.append(self.take())
        return self

    def __exit__(self, *exc):
        if self._local.taken.pop():
            self.give()


GATE = Turns(SLOTS)
