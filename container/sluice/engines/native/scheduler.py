"""What the engine does next, decided without torch: admission, prefill groups, chunks, turns.

The engine thread asks; the scheduler answers from lengths and budgets only, so every rule here
is unit tested in-process with plain objects standing in for sequences (anything with
``valid.input_length``, ``valid.max_new_tokens`` and ``cancelled``).

Chunked prefill (as vLLM and TGI 2 do it): a prompt is prefilled ``max_batch_prefill_tokens`` at
a time, each chunk in the same forward pass as a decode step of the running batch (or, where the
model cannot fuse them, between two decode steps), so a newcomer's long prompt delays the running
streams by about one chunk per token, never by the whole prompt.
"""

from __future__ import annotations

import collections
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class SchedulerBudget:
    """TGI's batch limits: KV tokens of the whole batch, prompt tokens per prefill chunk, rows."""

    max_batch_total_tokens: int
    max_batch_prefill_tokens: int
    max_batch_size: int | None = None


def kv_need(sequence) -> int:
    """KV tokens a sequence may hold at its end: its prompt plus every token it may generate."""
    return sequence.valid.input_length + sequence.valid.max_new_tokens


class Scheduler:
    """The waiting queue and the rules that take sequences from it into the running batch."""

    def __init__(self, budget: SchedulerBudget):
        self.budget = budget
        self.waiting: collections.deque = collections.deque()

    def admit(self, running: list, gate: Callable[[object], bool] | None = None) -> tuple[list, list]:
        """(admitted, cancelled): waiting sequences in arrival order while they fit.

        The first newcomer is taken even when its prompt exceeds the prefill budget: it is then
        prefilled in chunks. Later ones must fit the rest of that budget, the KV budget and rows.
        ``gate`` is asked last, for each sequence that fits (the engine's adapter slots): a no
        stops admission there, as a full budget does.
        """
        admitted, cancelled = [], []
        used = sum(kv_need(s) for s in running)
        prefill_tokens = 0
        while self.waiting:
            candidate = self.waiting[0]
            if candidate.cancelled:
                cancelled.append(self.waiting.popleft())
                continue
            if (admitted or running) and not self._fits(candidate, used, prefill_tokens,
                                                         len(running) + len(admitted), bool(admitted)):
                break
            if gate is not None and not gate(candidate):
                break
            admitted.append(self.waiting.popleft())
            used += kv_need(candidate)
            prefill_tokens += candidate.valid.input_length
        return admitted, cancelled

    def _fits(self, candidate, used: int, prefill_tokens: int, rows: int, sharing: bool) -> bool:
        budget = self.budget
        if used + kv_need(candidate) > budget.max_batch_total_tokens:
            return False
        if sharing and prefill_tokens + candidate.valid.input_length > budget.max_batch_prefill_tokens:
            return False
        return not (budget.max_batch_size and rows >= budget.max_batch_size)

    def chunk_stop(self, done: int, width: int, rows: int) -> int:
        """End column of the next chunk of a ``rows`` x ``width`` prefill already ``done`` columns in."""
        columns = max(1, self.budget.max_batch_prefill_tokens // max(1, rows))
        return min(width, done + columns)

    @staticmethod
    def next_pass(prefilling: bool, running: bool, last_was_prefill: bool, can_fuse: bool) -> str | None:
        """The next forward pass: "fused" (a decode step and a chunk in one), "prefill", "decode".

        With both kinds of work, a chunk rides along with the decode step when the runner can
        fuse them; otherwise chunks and decode steps alternate. Either runs alone otherwise.
        """
        if prefilling and running:
            if can_fuse:
                return "fused"
            return "decode" if last_was_prefill else "prefill"
        if prefilling:
            return "prefill"
        return "decode" if running else None


def group_by_length(sequences: list, max_waste: float = 0.25) -> list[list]:
    """Prefill groups whose left padding stays under ``max_waste`` of their real tokens."""
    groups: list[list] = []
    for sequence in sorted(sequences, key=lambda s: s.valid.input_length):
        if groups:
            group = groups[-1]
            width = sequence.valid.input_length
            real = sum(s.valid.input_length for s in group) + width
            if width * (len(group) + 1) - real <= max_waste * real:
                group.append(sequence)
                continue
        groups.append([sequence])
    return groups
