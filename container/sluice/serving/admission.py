"""At most a few requests of a burst do their admission work at once; the others wait their turn.

Admitting a request (parsing its body, validating and tokenizing it, building and sending the
engine's request, registering it with the delivery thread) is Python under the GIL, broken by
calls that let the GIL go. When a burst of N streams arrives, gunicorn gives each its own thread
at once, and N threads then take turns at the GIL with the delivery thread, each of whose socket
writes has to win the GIL back from them: the streams already admitted get no tokens until most of
the burst is in (gpu-sim, 256 streams and 10 ms steps: Sluice's first tokens p50 / p95 at 337 /
1028 ms, vLLM's own server, one asyncio loop, 199 / 339 ms). Each of these pieces of work holds
one of ``SLOTS`` (``with GATE:``); the other threads wait on the semaphore, off the GIL. Nothing
under a slot reads from or writes to a client, or waits for the engine, so a slot is never held
for long and a slow client cannot hold one.
"""

from __future__ import annotations

import threading

SLOTS = 2  # two: one runs while the other's socket call lets the GIL go

GATE = threading.Semaphore(SLOTS)
