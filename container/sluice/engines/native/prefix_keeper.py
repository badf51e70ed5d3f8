"""What the native engine puts in its prefix cache and takes from it, as its sequences run.

``prefix_cache`` holds the rules (blocks, namespaces, LRU, pins); this is the engine's side: which
prompt may use a cached prefix, which prompt's KV is kept after its prefill, which finished
session's conversation is pinned for its next turn, and the cache's gauges in the engine's stats.
Only the engine thread calls it (the cache's one owner); what request threads ask of the cache
reaches it as chores the engine thread runs (``run``).
"""

from __future__ import annotations

from typing import Callable

from ..base import EngineStats, Sequence
from .kv_batch import KVBatch, row_columns
from .model_runner import PrefillJob
from .prefix_cache import Hit, PrefixCache


class PrefixKeeper:
    def __init__(self, cache: PrefixCache, stats: EngineStats):
        self.cache = cache
        self._stats = stats

    def hit(self, sequence: Sequence) -> Hit | None:
        """The longest cached prefix of its prompt, under its adapter; none for a request that
        wants prompt log-probabilities (they need every prompt position's logits)."""
        if sequence.valid.request.decoder_input_details:
            return None
        return self.cache.lookup(sequence.valid.input_ids, sequence.valid.adapter)

    def remember(self, group: list[Sequence], job: PrefillJob) -> None:
        """Keep each prompt's whole blocks of KV for later prompts that start the same way."""
        for row, sequence in enumerate(group):
            prompt, adapter = sequence.valid.input_ids, sequence.valid.adapter
            if sequence.valid.session is not None and len(prompt) <= self.cache.pin_budget_tokens:
                continue  # kept whole, with its answer, when it finishes (keep_sessions)
            length = self.cache.cacheable_length(prompt, adapter)
            if length:
                columns = row_columns(job.cache, row, job.width - len(prompt), length)
                self.cache.insert(prompt[:length], columns, sum(k.nbytes + v.nbytes for k, v in columns), adapter)
        self._update_stats()

    def keep_sessions(self, sequences: list[Sequence], rows: list[int], batch: KVBatch) -> None:
        """Pin the conversation of each finished session row: its prompt and every generated
        token whose KV the batch holds (all but the last, never fed), in whole blocks."""
        for row in rows:
            sequence = sequences[row]
            pin = sequence.valid.session
            tokens = sequence.valid.input_ids + tuple(sequence.generated_ids[:-1])
            columns = int(batch.attention_mask[row].sum())
            if pin is None or columns != len(tokens):
                continue
            length = len(tokens) // self.cache.block * self.cache.block
            if length == 0:
                continue
            start = batch.columns - columns

            def payload(row=row, start=start, length=length):
                kv = row_columns(batch.cache, row, start, length)
                return kv, sum(k.nbytes + v.nbytes for k, v in kv)

            # Keyed by the row's adapter as every entry is: a later turn with another adapter
            # (or the base model) never reads this KV.
            self.cache.pin(pin.id, pin.expires_at, tokens[:length], payload, sequence.valid.adapter)
        self._update_stats()

    def run(self, chores: list[Callable[[PrefixCache], None]]) -> None:
        """What request threads asked of the cache (a session closed, an adapter removed)."""
        if not chores:
            return
        for chore in chores:
            chore(self.cache)
        self._update_stats()

    def _update_stats(self) -> None:
        self._stats.prefix_cache_entries = self.cache.entries
        self._stats.prefix_cache_tokens = self.cache.cached_tokens
        self._stats.prefix_cache_bytes = self.cache.cached_bytes
        self._stats.prefix_cache_pinned_tokens = self.cache.pinned_tokens
