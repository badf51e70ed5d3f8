"""One constrained row's grammar state, and the masks the engine puts on a batch's logits.

Only rows with a grammar pay: an unconstrained batch never reaches this module, and a mixed
batch computes masks for its constrained rows only (in parallel, in llguidance's threads, with
the GIL released). A row whose grammar is complete may only emit EOS, so it finishes with
``eos_token`` exactly as an unconstrained answer that ends by itself.
"""

from __future__ import annotations

import llguidance
import llguidance.torch
import numpy as np
import torch


class RowConstraint:
    """A sequence's matcher: says which tokens may come next and follows the chosen ones."""

    def __init__(self, matcher: "llguidance.LLMatcher"):
        self.matcher = matcher

    def advance(self, token_id: int, eos_token_ids: frozenset[int]) -> str | None:
        """Follow the chosen token; an error text if the grammar cannot (it never should: the
        token came from the mask). EOS ends the sequence and needs no matching."""
        if token_id in eos_token_ids:
            return None
        if not self.matcher.consume_token(token_id):
            return self.matcher.get_error() or "the grammar rejected the token"
        return None

    @property
    def failed(self) -> str | None:
        return self.matcher.get_error() if self.matcher.is_error() else None


class MaskBuilder:
    """Reused bitmask buffer and executor for the engine thread (the only user)."""

    def __init__(self, vocab_size: int):
        self.vocab_size = vocab_size
        self._executor = llguidance.LLExecutor()
        self._bitmask = llguidance.torch.allocate_token_bitmask(1, vocab_size)

    def apply(self, logits: torch.Tensor, constraints: list[RowConstraint | None]) -> torch.Tensor:
        """``logits`` with every constrained row's disallowed tokens at -inf (a new tensor);
        the same tensor, untouched, when no row is constrained. Few, whole-batch torch ops: on a
        busy CPU each op's dispatch costs more than llguidance's mask computation itself."""
        rows = [i for i, c in enumerate(constraints) if c is not None]
        if not rows:
            return logits
        bitmask = self._buffer(len(rows))
        pairs = [(constraints[row].matcher, slot) for slot, row in enumerate(rows)]
        llguidance.torch.fill_next_token_bitmask_par(self._executor, pairs, bitmask)
        width = logits.shape[-1]
        banned = np.zeros((logits.shape[0], width), dtype=bool)
        banned[rows] = ~_unpack(bitmask.numpy(), width)
        if logits.device.type == "cpu":
            # numpy, single-threaded: torch would split these 2-D ops over its thread pool, and
            # on a busy CPU the wait for those threads costs milliseconds per step.
            values = logits.detach().float().numpy().copy()
            values[banned] = -np.inf
            return torch.from_numpy(values)
        return logits.float().masked_fill(torch.from_numpy(banned).to(logits.device), float("-inf"))

    def _buffer(self, rows: int) -> torch.Tensor:
        if self._bitmask.shape[0] < rows:
            self._bitmask = llguidance.torch.allocate_token_bitmask(rows, self.vocab_size)
        return self._bitmask[:rows]


def _unpack(bitmask: np.ndarray, width: int) -> np.ndarray:
    """[rows, words] int32 bits (token ``i`` is bit ``i % 32`` of word ``i // 32``) -> [rows, width]
    bool, in numpy (llguidance's own torch kernel needs torch.compile: seconds at first use on
    a CPU, and a C compiler in the image)."""
    bits = np.unpackbits(np.ascontiguousarray(bitmask).view(np.uint8), axis=1, bitorder="little")
    if bits.shape[1] >= width:
        return bits[:, :width].astype(bool)
    return np.pad(bits, ((0, 0), (0, width - bits.shape[1]))).astype(bool)
