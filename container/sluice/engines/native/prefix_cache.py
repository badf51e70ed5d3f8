"""Reusing the KV of prompt prefixes that earlier requests already prefilled.

A system prompt or a chat history resent every turn is prefilled once; later prompts that start
with the same tokens copy its keys/values and prefill only the rest. Entries are matched in whole
blocks of ``block`` tokens (vLLM's automatic prefix caching idea, without paging): a chain hash
per block boundary finds the longest cached prefix, and the tokens themselves are compared before
a hit is used, so a hash collision can never hand a request another prompt's KV. Least recently
used entries go first once the cached tokens exceed the budget. Each entry belongs to a
``namespace``: the LoRA adapter its KV was computed with (None: the base model), since an adapter
changes every layer's keys and values; a prompt only ever hits entries of its own namespace.

No torch here: an entry's ``payload`` (the KV tensors) is opaque, so the rules are unit tested
with plain objects.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field

BLOCK = 16


@dataclass(eq=False)
class Entry:
    tokens: tuple[int, ...]  # the cached prefix, a whole number of blocks
    payload: object  # what the engine stored for these tokens (per-layer keys/values)
    keys: list[int] = field(default_factory=list)  # its chain hashes in the index
    nbytes: int = 0  # the payload's size, as the engine measured it
    namespace: object = None  # what the KV was computed with besides the tokens (an adapter), None: the base


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
    def __init__(self, budget_tokens: int, block: int = BLOCK):
        self.budget_tokens = budget_tokens
        self.block = block
        self.cached_tokens = 0
        self.cached_bytes = 0  # what the entries' payloads hold, for /metrics
        self._index: dict[int, Entry] = {}
        self._lru: collections.OrderedDict[int, Entry] = collections.OrderedDict()  # id -> entry

    def lookup(self, prompt: tuple[int, ...], namespace: object = None) -> Hit | None:
        """The longest cached prefix of ``prompt`` that leaves at least its last token to prefill."""
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
        if length == 0 or length > self.budget_tokens or (hit is not None and hit.length >= length):
            return 0
        return length

    @property
    def entries(self) -> int:
        return len(self._lru)

    def insert(self, tokens: tuple[int, ...], payload: object, nbytes: int = 0, namespace: object = None) -> None:
        """Store ``payload`` (``nbytes`` large) for ``tokens`` (whole blocks) of ``namespace``,
        evicting the least recently used."""
        entry = Entry(tokens, payload, chain_hashes(tokens, self.block, namespace), nbytes, namespace)
        for key in entry.keys:
            self._index[key] = entry  # the newest entry answers for a shared prefix
        self._lru[id(entry)] = entry
        self.cached_tokens += len(tokens)
        self.cached_bytes += nbytes
        while self.cached_tokens > self.budget_tokens and self._lru:
            self._evict(self._lru.popitem(last=False)[1])

    def _evict(self, entry: Entry) -> None:
        self.cached_tokens -= len(entry.tokens)
        self.cached_bytes -= entry.nbytes
        for key in entry.keys:
            if self._index.get(key) is entry:
                del self._index[key]
