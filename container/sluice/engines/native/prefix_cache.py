"""Reusing the KV of prompt prefixes that earlier requests already prefilled.

A system prompt or a chat history resent every turn is prefilled once; later prompts that start
with the same tokens copy its keys/values and prefill only the rest. Entries are matched in whole
blocks of ``block`` tokens (vLLM's automatic prefix caching idea, without paging): a chain hash
per block boundary finds the longest cached prefix, and the tokens themselves are compared before
a hit is used, so a hash collision can never hand a request another prompt's KV. Least recently
used entries go first once the cached tokens exceed the budget. Each entry belongs to a
``namespace``: the LoRA adapter its KV was computed with (None: the base model), since an adapter
changes every layer's keys and values; a prompt only ever hits entries of its own namespace.

A stateful session keeps its conversation (prompt and answer) here between turns: its entry is
pinned, so no LRU pressure evicts it, until the session closes, its pin lapses with the session's
expiry, or a newer turn of it takes its place. Pins are bounded: together they hold at most
``1/PIN_SHARE`` of the budget (the oldest session's pin yields first), so the cache's bound in
tokens, and with it in bytes, holds whatever the sessions do, and ordinary prompts always keep
the rest.

No torch here: an entry's ``payload`` (the KV tensors) is opaque, so the rules are unit tested
with plain objects.
"""

from __future__ import annotations

import collections
import time
from dataclasses import dataclass, field
from typing import Callable

BLOCK = 16
PIN_SHARE = 2  # sessions may pin up to half of the prefix cache


@dataclass(eq=False)
class Entry:
    tokens: tuple[int, ...]  # the cached prefix, a whole number of blocks
    payload: object  # what the engine stored for these tokens (per-layer keys/values)
    keys: list[int] = field(default_factory=list)  # its chain hashes in the index
    nbytes: int = 0  # the payload's size, as the engine measured it
    namespace: object = None  # what the KV was computed with besides the tokens (an adapter), None: the base
    pins: dict[str, float] = field(default_factory=dict)  # session id -> when its pin lapses (time.time)


@dataclass(frozen=True)
class Hit:
    entry: Entry
    length: int  # tokens of the prompt the entry covers (a multiple of the block)


def chain_hashes(tokens: tuple[int, ...], block: int, namespace: object = None) -> list[int]:
    """One hash per whole block, each covering every token before the block's end (and the namespace)."""
    hashes, previous = [], 0 if namespace is None else hash(("namespace", namespace))
    for end in range(block, len(tokens) + 1, block):
        previous = hash((previous, tokens[end - block:end]))
        hashes.append(previous)
    return hashes


class PrefixCache:
    def __init__(self, budget_tokens: int, block: int = BLOCK, clock: Callable[[], float] = time.time):
        self.budget_tokens = budget_tokens
        self.pin_budget_tokens = budget_tokens // PIN_SHARE
        self.block = block
        self.cached_tokens = 0
        self.cached_bytes = 0  # what the entries' payloads hold, for /metrics
        self._clock = clock
        self._index: dict[int, Entry] = {}
        self._lru: collections.OrderedDict[int, Entry] = collections.OrderedDict()  # id -> entry
        self._pinned: dict[str, Entry] = {}  # session id -> its entry, oldest pin first

    def lookup(self, prompt: tuple[int, ...], namespace: object = None) -> Hit | None:
        """The longest cached prefix of ``prompt`` that leaves at least its last token to prefill."""
        self._lapse()
        hit = self._longest(prompt[:len(prompt) - 1], namespace)
        if hit is not None:
            self._lru.move_to_end(id(hit.entry))
        return hit

    def _longest(self, tokens: tuple[int, ...], namespace: object = None) -> Hit | None:
        hashes = chain_hashes(tokens, self.block, namespace)
        for blocks in range(len(hashes), 0, -1):
            entry, length = self._index.get(hashes[blocks - 1]), blocks * self.block
            if entry is not None and entry.namespace == namespace and entry.tokens[:length] == tokens[:length]:
                return Hit(entry, length)
        return None

    def cacheable_length(self, prompt: tuple[int, ...], namespace: object = None) -> int:
        """Tokens of ``prompt`` worth storing: its whole blocks, unless already cached."""
        length = len(prompt) // self.block * self.block
        hit = self._longest(prompt, namespace)
        room = self.budget_tokens - self.pinned_tokens  # what pins leave: a longer entry could not stay
        if length == 0 or length > room or (hit is not None and hit.length >= length):
            return 0
        return length

    @property
    def entries(self) -> int:
        return len(self._lru)

    @property
    def pinned_tokens(self) -> int:
        return sum(len(entry.tokens) for entry in {id(e): e for e in self._pinned.values()}.values())

    @property
    def pinned_sessions(self) -> int:
        return len(self._pinned)

    def insert(self, tokens: tuple[int, ...], payload: object, nbytes: int = 0, namespace: object = None) -> None:
        """Store ``payload`` (``nbytes`` large) for ``tokens`` (whole blocks) of ``namespace``,
        evicting the least recently used unpinned entries."""
        self._lapse()
        self._add(Entry(tokens, payload, chain_hashes(tokens, self.block, namespace), nbytes, namespace))
        self._fit()

    def pin(self, session: str, expires_at: float, tokens: tuple[int, ...],
            payload: Callable[[], tuple[object, int]], namespace: object = None) -> None:
        """Keep ``tokens`` (whole blocks) of ``namespace`` for ``session`` until ``expires_at``, in
        place of its earlier pin: the entry that holds them already, else a new one whose payload
        and size ``payload()`` makes (only then: copying KV costs). Longer than the pins' share,
        they are not pinned (nor copied): the session's prompts still reach the cache as everyone's
        do. A session whose turns change adapter pins the newest turn's namespace only."""
        self._lapse()
        self.release(session)
        hit = self._longest(tokens, namespace)
        if hit is not None and hit.length == len(tokens):
            entry = hit.entry
            self._lru.move_to_end(id(entry))
        elif len(tokens) <= self.pin_budget_tokens:
            kv, nbytes = payload()
            entry = self._add(Entry(tokens, kv, chain_hashes(tokens, self.block, namespace), nbytes, namespace))
        else:
            return
        if len(entry.tokens) > self.pin_budget_tokens:
            return
        entry.pins[session] = expires_at
        self._pinned[session] = entry
        while self.pinned_tokens > self.pin_budget_tokens:  # the oldest other session yields
            self.release(next(s for s in self._pinned if s != session))
        self._fit()

    def _add(self, entry: Entry) -> Entry:
        for key in entry.keys:
            current = self._index.get(key)
            if current is None or not current.pins:  # the newest answers for a shared prefix, unless pinned
                self._index[key] = entry
        self._lru[id(entry)] = entry
        self.cached_tokens += len(entry.tokens)
        self.cached_bytes += entry.nbytes
        return entry

    def release(self, session: str) -> None:
        """The session closed (or moved on): its entry becomes an ordinary LRU entry."""
        entry = self._pinned.pop(session, None)
        if entry is not None:
            entry.pins.pop(session, None)

    def forget(self, namespace: object) -> None:
        """Drop every entry of ``namespace``, pinned or not: its adapter was unregistered, and a
        new registration of the name is another namespace, so no prompt can reach that KV again."""
        for entry in [e for e in self._lru.values() if e.namespace == namespace]:
            for session in list(entry.pins):
                self.release(session)
            del self._lru[id(entry)]
            self._evict(entry)

    def _lapse(self) -> None:
        now = self._clock()
        for session, entry in list(self._pinned.items()):
            if entry.pins.get(session, 0.0) < now:
                self.release(session)

    def _fit(self) -> None:
        """Evict least recently used unpinned entries until the cache is within its budget;
        pins hold at most their share, so this always succeeds."""
        while self.cached_tokens > self.budget_tokens:
            victim = next((e for e in self._lru.values() if not e.pins), None)
            if victim is None:
                return
            del self._lru[id(victim)]
            self._evict(victim)

    def _evict(self, entry: Entry) -> None:
        self.cached_tokens -= len(entry.tokens)
        self.cached_bytes -= entry.nbytes
        for key in entry.keys:
            if self._index.get(key) is entry:
                del self._index[key]
