"""One constrained row's grammar state, and the masks the engine puts on a batch's logits.

Only rows with a grammar pay: an unconstrained batch never reaches this module, and a mixed
batch computes masks for its constrained rows only (in parallel, in llguidance's threads, with
the GIL released). A row whose grammar is complete may only emit EOS, so it finishes with
``eos_token`` exactly as an unconstrained answer that ends by itself.
"""

from __future__ import annotations

import llguidance
import llguidance.torch
import torch

_BITS = torch.tensor([1 << i for i in range(32)], dtype=torch.int64).to(torch.int32)


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
        the same tensor, untouched, when no row is constrained."""
        rows = [i for i, c in enumerate(constraints) if c is not None]
        if not rows:
            return logits
        bitmask = self._buffer(len(rows))
        pairs = [(constraints[row].matcher, slot) for slot, row in enumerate(rows)]
        llguidance.torch.fill_next_token_bitmask_par(self._executor, pairs, bitmask)
        allowed = _unpack(bitmask, logits.shape[-1]).to(logits.device)
        index = torch.tensor(rows, device=logits.device)
        masked = logits.float().clone()
        masked[index] = masked[index].masked_fill(~allowed, float("-inf"))
        return masked

    def _buffer(self, rows: int) -> torch.Tensor:
        if self._bitmask.shape[0] < rows:
            self._bitmask = llguidance.torch.allocate_token_bitmask(rows, self.vocab_size)
        return self._bitmask[:rows]


def _unpack(bitmask: torch.Tensor, width: int) -> torch.Tensor:
    """[rows, words] int32 bits -> [rows, width] bool, without torch.compile (llguidance's own
    kernel compiles at first use: seconds on a CPU, and a C compiler in the image)."""
    bits = (bitmask.unsqueeze(-1) & _BITS) != 0
    allowed = bits.reshape(bitmask.shape[0], -1)
    if allowed.shape[1] >= width:
        return allowed[:, :width]
    pad = torch.zeros(bitmask.shape[0], width - allowed.shape[1], dtype=torch.bool)
    return torch.cat([allowed, pad], dim=1)
