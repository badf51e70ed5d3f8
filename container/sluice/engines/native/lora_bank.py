"""Which registered LoRA adapters the native engine holds in memory: at most ``capacity``
(``MAX_LORA_ADAPTERS``), pinned ones always (at most ``capacity - 1`` of them: one slot always
turns over, or a request for an unpinned adapter would wait forever), the others least recently
used first out.

Registered is not loaded: an adapter stays registered (its name answers, its directory is
remembered) until ``DELETE /adapters/<name>``; an evicted one has only dropped its weights and
is read again from its directory the next time a request needs it. An adapter that rows of the
running batch use is never evicted (they would keep its weights alive anyway, and a newcomer
would read a second copy), so a newcomer whose adapter finds no free slot waits in the queue, in
arrival order, as it would for KV memory.

No torch here: what a loaded adapter holds is opaque (``load`` makes it), so the rules are unit
tested with plain objects. Request threads register and unregister; the engine thread reserves
at admission and takes the weights before a prefill: one lock guards the tables, and loading
from disk happens outside it.
"""

from __future__ import annotations

import collections
import threading
from typing import Callable

from ...errors import ConflictError
from ...request import AdapterSpec

RESERVED = object()  # a slot held for an adapter admitted but not read from disk yet


class AdapterGone(LookupError):
    """The adapter was unregistered after its request was validated."""


class AdapterBank:
    def __init__(self, capacity: int, load: Callable[[AdapterSpec], object]):
        self.capacity = capacity
        self._load = load
        self._specs: dict[int, AdapterSpec] = {}  # uid -> registration
        self._loaded: collections.OrderedDict[int, object] = collections.OrderedDict()  # LRU first
        self._busy: frozenset[int] = frozenset()  # adapters the engine's rows used at its last admission
        self._lock = threading.Lock()

    # --- request threads ------------------------------------------------------------------------

    def register(self, spec: AdapterSpec, weights: object | None) -> bool:
        """Remember ``spec``; keep ``weights`` (already read) loaded when a slot is free or can be
        freed. Whether it is loaded now; a pin no slot can hold is a 409."""
        with self._lock:
            uid = spec.ref.uid
            if spec.pinned and self._pinned_count() >= self.capacity - 1:
                raise ConflictError(f"Adapter {spec.ref.name} cannot be pinned: at most {self.capacity - 1} of the "
                                    f"{self.capacity} slots (MAX_LORA_ADAPTERS) may hold pinned adapters, so that "
                                    "the others can still be loaded")
            self._specs[uid] = spec
            if weights is None or not self._make_room(self._busy):
                return False
            self._loaded[uid] = weights
            return True

    def unregister(self, uid: int) -> None:
        """Forget the adapter; rows already running with it finish on the weights they hold."""
        with self._lock:
            self._specs.pop(uid, None)
            self._loaded.pop(uid, None)

    # --- the engine thread ------------------------------------------------------------------------

    def reserve(self, uid: int, busy: set[int]) -> bool:
        """At admission: whether a request with adapter ``uid`` may join now (its adapter is
        loaded, or a slot is free or holds an adapter no row in ``busy`` uses). ``busy`` is every
        adapter of the running rows and of those admitted before it; an unregistered adapter is
        let through, to fail at ``take``."""
        with self._lock:
            self._busy = frozenset(busy)
            if uid not in self._specs:
                return True
            if uid in self._loaded:
                self._loaded.move_to_end(uid)
                return True
            if not self._make_room(busy):
                return False
            self._loaded[uid] = RESERVED
            return True

    def take(self, uid: int) -> object:
        """The adapter's weights for a row about to be prefilled, read from its directory if they
        were evicted (here, in the engine thread: a preloaded adapter costs nothing)."""
        with self._lock:
            spec = self._specs.get(uid)
            if spec is None:
                raise AdapterGone(uid)
            weights = self._loaded.get(uid)
        if weights is not None and weights is not RESERVED:
            return weights
        weights = self._load(spec)  # may raise: the caller fails the request that needed it
        with self._lock:
            if uid in self._specs:
                self._loaded[uid] = weights
        return weights

    def release_reservation(self, uid: int) -> None:
        """A reserved slot whose load failed frees up again."""
        with self._lock:
            if self._loaded.get(uid) is RESERVED:
                del self._loaded[uid]

    # --- what /adapters shows ---------------------------------------------------------------------

    def is_loaded(self, uid: int) -> bool:
        with self._lock:
            weights = self._loaded.get(uid)
            return weights is not None and weights is not RESERVED

    def loaded_uids(self) -> list[int]:
        with self._lock:
            return [uid for uid, weights in self._loaded.items() if weights is not RESERVED]

    # --- rules (lock held) ----------------------------------------------------------------------

    def _pinned_count(self) -> int:
        return sum(1 for spec in self._specs.values() if spec.pinned)

    def _make_room(self, busy) -> bool:
        """A free slot, evicting the least recently used adapter that is neither pinned nor busy."""
        if len(self._loaded) < self.capacity:
            return True
        for uid in self._loaded:
            spec = self._specs.get(uid)
            if (spec is None or not spec.pinned) and uid not in busy and self._loaded[uid] is not RESERVED:
                del self._loaded[uid]
                return True
        return False
