"""The running batch's KV cache, and the two operations continuous batching needs on it.

Each row is one sequence, left-padded to the batch's common length (TGI's layout): ``filter``
drops finished rows and the padding columns nobody needs any more; ``concatenate`` merges freshly
prefilled sequences into the running batch. The cache layers write new keys/values into a
preallocated buffer, grown ``GROWTH`` spare columns at a time, instead of ``torch.cat`` on every
step, which would copy the whole cache once per generated token (a prefill in many small chunks
still copies it about once per chunk: the growth is by a constant, not geometric).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers import DynamicCache
from transformers.cache_utils import Cache, DynamicLayer

GROWTH = 64  # spare columns allocated whenever a buffer has to grow


class GrowingLayer(DynamicLayer):
    """A ``DynamicLayer`` whose update writes in place; ``keys``/``values`` are views."""

    def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
        self.dtype, self.device = key_states.dtype, key_states.device
        self.length = 0
        self._keys = key_states.new_zeros(key_states.shape[:2] + (0,) + key_states.shape[3:])
        self._values = value_states.new_zeros(value_states.shape[:2] + (0,) + value_states.shape[3:])
        self.keys, self.values = self._keys, self._values
        self.is_initialized = True

    def adopt(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
        """Take over ready-made buffers whose first ``length`` columns are valid."""
        self.dtype, self.device = keys.dtype, keys.device
        self._keys, self._values, self.length = keys, values, length
        self.keys, self.values = keys[:, :, :length], values[:, :, :length]
        self.is_initialized = True

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        new = key_states.shape[-2]
        needed = self.length + new
        if needed > self._keys.shape[-2]:
            self._keys = _grow(self._keys, self.length, needed + GROWTH)
            self._values = _grow(self._values, self.length, needed + GROWTH)
        self._keys[:, :, self.length:needed] = key_states
        self._values[:, :, self.length:needed] = value_states
        self.length = needed
        self.keys, self.values = self._keys[:, :, :needed], self._values[:, :, :needed]
        return self.keys, self.values


def truncate(cache: BatchCache, lengths: list[int]) -> None:
    """Forget the columns written after ``lengths`` (per layer): undoes a failed forward pass."""
    for layer, length in zip(cache.layers, lengths, strict=True):
        layer.length = length
        layer.keys, layer.values = layer._keys[:, :, :length], layer._values[:, :, :length]


def _grow(buffer: torch.Tensor, used: int, capacity: int) -> torch.Tensor:
    shape = list(buffer.shape)
    shape[2] = capacity
    grown = buffer.new_zeros(shape)
    grown[:, :, :used] = buffer[:, :, :used]
    return grown


class BatchCache(DynamicCache):
    def __init__(self):
        Cache.__init__(self, layer_class_to_replicate=GrowingLayer)


@dataclass
class KVBatch:
    """Model-side state of the running sequences, one row each, in the engine's order."""

    cache: BatchCache
    attention_mask: torch.Tensor  # [rows, columns], 0 on left padding
    positions: torch.Tensor  # [rows], position id of each row's next token
    last_tokens: torch.Tensor  # [rows], the token each row feeds next

    @property
    def size(self) -> int:
        return self.attention_mask.shape[0]

    @property
    def columns(self) -> int:
        return self.attention_mask.shape[1]

    def filter(self, keep: list[int]) -> "KVBatch":
        """Keep rows ``keep`` (in that order) and drop left columns that are padding for all."""
        index = torch.tensor(keep, device=self.attention_mask.device)
        mask = self.attention_mask.index_select(0, index)
        used = mask.any(dim=0).nonzero()
        start = int(used[0]) if used.numel() else mask.shape[1]
        cache = BatchCache()
        for layer in self.cache.layers:
            rows = index.to(layer._keys.device)  # with device_map="auto" layers live on several GPUs
            keys = layer._keys.index_select(0, rows)[:, :, start:].contiguous()
            values = layer._values.index_select(0, rows)[:, :, start:].contiguous()
            fresh = GrowingLayer()
            fresh.adopt(keys, values, layer.length - start)
            cache.layers.append(fresh)
        return KVBatch(cache, mask[:, start:].contiguous(), self.positions.index_select(0, index),
                       self.last_tokens.index_select(0, index))


def concatenate(batches: list[KVBatch]) -> KVBatch:
    """One batch from several, right-aligned so every row's newest column is the last one."""
    if len(batches) == 1:
        return batches[0]
    columns = max(b.columns for b in batches)
    rows = sum(b.size for b in batches)
    first = batches[0]
    mask = first.attention_mask.new_zeros((rows, columns))
    cache = BatchCache()
    for layer_index, layer in enumerate(first.cache.layers):
        shape = (rows, layer._keys.shape[1], columns + GROWTH, layer._keys.shape[3])
        keys, values = layer._keys.new_zeros(shape), layer._values.new_zeros(shape)
        row = 0
        for batch in batches:
            source = batch.cache.layers[layer_index]
            offset = columns - batch.columns
            keys[row:row + batch.size, :, offset:columns] = source._keys[:, :, :batch.columns]
            values[row:row + batch.size, :, offset:columns] = source._values[:, :, :batch.columns]
            row += batch.size
        fresh = GrowingLayer()
        fresh.adopt(keys, values, columns)
        cache.layers.append(fresh)
    row = 0
    for batch in batches:
        mask[row:row + batch.size, columns - batch.columns:] = batch.attention_mask
        row += batch.size
    return KVBatch(cache, mask, torch.cat([b.positions for b in batches]),
                   torch.cat([b.last_tokens for b in batches]))


def row_columns(cache: BatchCache, row: int, start: int, length: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """A copy of one row's keys/values over ``length`` columns from ``start``, per layer."""
    return [(layer._keys[row:row + 1, :, start:start + length].clone(),
             layer._values[row:row + 1, :, start:start + length].clone()) for layer in cache.layers]


def cache_from_columns(layers: list[tuple[torch.Tensor, torch.Tensor]], length: int) -> BatchCache:
    """A one-row cache holding the first ``length`` columns of ``layers`` (copied: it will grow)."""
    cache = BatchCache()
    for keys, values in layers:
        shape = list(keys.shape)
        shape[2] = length + GROWTH
        fresh_keys, fresh_values = keys.new_zeros(shape), values.new_zeros(shape)
        fresh_keys[:, :, :length] = keys[:, :, :length]
        fresh_values[:, :, :length] = values[:, :, :length]
        layer = GrowingLayer()
        layer.adopt(fresh_keys, fresh_values, length)
        cache.layers.append(layer)
    return cache
