"""What an engine learns of a request that runs in a stateful session.

The session itself (its id, lifetime and transcript) is serving's (``serving.sessions``); an
engine only needs the id its conversation's KV is kept under and the moment that keep lapses,
so an expired session frees its share of the prefix cache even if nobody closes it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SessionPin:
    id: str
    expires_at: float  # wall-clock seconds (time.time()): the session store's clock, shared by workers
