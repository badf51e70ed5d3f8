"""One forward pass for the running rows' next tokens and a prefill chunk together.

Chunked prefill alone still makes the running streams wait for two passes per token: a decode
step, then a chunk. Most of a pass on CPU is fixed cost (every weight read once, Python per
layer), so running both in one pass is close to the price of one. The rows have different query
lengths (1 for a decode row, the chunk's width for a prefill row), so the new tokens are packed
into a single row of the batch for everything but attention (embeddings, norms, rotary from
per-token positions, linear layers), and attention splits them again: the decode queries attend
the running batch's cache, the chunk's queries the prefill job's cache, each with its own mask.

The same pass without a chunk serves decode steps whose rows have very unlike lengths: each run
of similar rows attends only its own columns, not the padding a long row imposes on the batch.

This rides on the Hugging Face attention interface: the packed pass sets the attention modules'
implementation to ``sluice_fused`` for its own duration, and passes the plan through the forward
pass's keyword arguments, which transformers hands to the attention function unchanged. Models
whose attention does not follow that interface fail the runner's check at load
(``ModelRunner.fused_pass``), and keep decode steps and chunks in turns.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
from transformers import AttentionInterface
from transformers.cache_utils import Cache
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

IMPLEMENTATION = "sluice_fused"


@dataclass
class FusedPlan:
    """Where the packed tokens come from: one per decode row first, then the chunk's rows x width."""

    decode_cache: Cache
    decode_mask: torch.Tensor  # [decode rows, columns] bool, the new column included
    decode_segments: list[tuple[int, int, int]]  # (first row, end row, first column): ragged_segments
    chunk_cache: Cache | None = None  # None: a decode step alone (rows of unlike lengths)
    chunk_mask: torch.Tensor | None = None  # [chunk rows, 1, chunk width, columns] bool
    keys: dict[int, tuple] = field(default_factory=dict)  # per layer: the two caches' full keys/values

    def split(self, packed: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """[1, heads, tokens, dim] -> decode [rows, heads, 1, dim], chunk [rows, heads, width, dim]."""
        decode_rows = self.decode_mask.shape[0]
        decode = packed[0, :, :decode_rows].transpose(0, 1).unsqueeze(2)
        if self.chunk_mask is None:
            return decode, None
        rows, _, width, _ = self.chunk_mask.shape
        chunk = packed[0, :, decode_rows:].reshape(packed.shape[1], rows, width, packed.shape[3])
        return decode, chunk.transpose(0, 1)


class FusedCache(Cache):
    """The ``past_key_values`` of a packed pass: writes each part's keys/values to its own cache."""

    def __init__(self, plan: FusedPlan):
        self.plan = plan
        self.layers = []

    def update(self, key_states, value_states, layer_idx, *args, **kwargs):
        plan = self.plan
        decode_keys, chunk_keys = plan.split(key_states)
        decode_values, chunk_values = plan.split(value_states)
        chunk = None if plan.chunk_cache is None else plan.chunk_cache.update(
            chunk_keys.contiguous(), chunk_values.contiguous(), layer_idx)
        plan.keys[layer_idx] = (plan.decode_cache.update(decode_keys, decode_values, layer_idx), chunk)
        return key_states, value_states

    def get_seq_length(self, layer_idx: int = 0) -> int:
        return 0


def fused_attention(module, query, key, value, attention_mask, sluice_plan: FusedPlan | None = None,
                    **kwargs):
    """Each part's queries against its own cache, through transformers' own SDPA path."""
    plan = sluice_plan
    if plan is None:
        raise RuntimeError("the sluice_fused attention runs only inside a fused pass")
    (decode_keys, decode_values), chunk = plan.keys.pop(module.layer_idx)
    decode_query, chunk_query = plan.split(query)
    outputs = []
    for first, end, column in plan.decode_segments:
        out, _ = sdpa_attention_forward(module, decode_query[first:end], decode_keys[first:end, :, column:],
                                        decode_values[first:end, :, column:],
                                        plan.decode_mask[first:end, None, None, column:], **kwargs)
        outputs.append(out)
    if chunk is not None:
        chunk_out, _ = sdpa_attention_forward(module, chunk_query.contiguous(), *chunk, plan.chunk_mask, **kwargs)
        outputs.append(chunk_out)
    # Each comes back as [rows, query length, heads, dim]; the layer reshapes to [1, tokens, hidden].
    packed = torch.cat([out.reshape(-1, *out.shape[2:]) for out in outputs])
    return packed.unsqueeze(0), None


def ragged_segments(starts: list[int], columns: int, max_segments: int = 4) -> list[tuple[int, int, int]]:
    """Runs of neighbouring rows of similar length, each to attend only its own columns.

    A left-padded batch is as wide as its longest row, so after a long prompt joins, every short
    row would attend (masked) padding as wide as that prompt. Rows are right-aligned: row r uses
    columns ``starts[r]:``. A run ends where the width changes by more than a factor of 2; more than
    ``max_segments`` runs (one SDPA call each, per layer) fall back to one: the whole batch.
    """
    segments: list[list[int]] = []  # [first row, end row, first column]
    for row, start in enumerate(starts):
        width = columns - start
        if segments:
            segment = segments[-1]
            widest = columns - segment[2]
            if widest / 2 <= width <= widest * 2:
                segment[1], segment[2] = row + 1, min(segment[2], start)
                continue
        segments.append([row, row + 1, start])
    if len(segments) > max_segments:
        return [(0, len(starts), min(starts, default=0))]
    return [tuple(segment) for segment in segments]


AttentionInterface.register(IMPLEMENTATION, fused_attention)
AttentionMaskInterface.register(IMPLEMENTATION, sdpa_mask)


def chunk_mask(padding: torch.Tensor, start: int) -> torch.Tensor:
    """[rows, 1, stop - start, stop] bool: causal over columns ``start:stop``, padding masked.

    A padding query still sees itself, so no row of the softmax is empty (an empty one gives
    NaN, which would flow into its keys/values; they stay masked for every real query).
    """
    stop = padding.shape[1]
    queries = torch.arange(start, stop, device=padding.device)[:, None]
    keys = torch.arange(stop, device=padding.device)[None, :]
    causal = keys <= queries
    return ((causal[None] & padding.bool()[:, None, :]) | (keys == queries)[None])[:, None]


@contextlib.contextmanager
def fused_attention_modules(model):
    """Switch the model's attention configs to the fused implementation for one pass."""
    configs = _attention_configs(model)
    saved = [c._attn_implementation_internal for c in configs]
    for config in configs:
        config._attn_implementation_internal = IMPLEMENTATION
    try:
        yield
    finally:
        for config, name in zip(configs, saved, strict=True):
            config._attn_implementation_internal = name


def _attention_configs(model) -> list:
    cached = getattr(model, "_sluice_attention_configs", None)
    if cached is None:
        seen = {}
        for module in model.modules():
            if hasattr(module, "layer_idx") and hasattr(module, "config"):
                seen[id(module.config)] = module.config
        seen[id(model.config)] = model.config  # the mask is built from the top-level config
        cached = list(seen.values())
        model._sluice_attention_configs = cached
    return cached
