"""Choosing the next token of every sequence in a batch, each with its own parameters.

Greedy rows without penalties share one argmax; other rows get their penalties and warpers
(TGI's order: repetition, frequency, temperature, top-k, top-p, typical-p) and sample with their
own ``torch.Generator``, so a seeded request draws the same tokens whatever else is batched
with it. Log-probabilities are those of the distribution the token was drawn from. A row whose
processing raises is reported, not propagated: one request's parameters never fail its neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ..request import SamplingParams


@dataclass(frozen=True)
class Choice:
    token_id: int
    logprob: float
    top_tokens: tuple[tuple[int, float], ...] = ()


@dataclass
class Selection:
    """One step's outcome: a choice per row (``None`` where that row failed) and the id tensor."""

    choices: list[Choice | None]
    ids: torch.Tensor
    failures: dict[int, Exception]


class SequenceSampler:
    """One sequence's token chooser: its parameters and its random generator."""

    def __init__(self, params: SamplingParams, device: torch.device, seed: int | None):
        self.params = params
        self.seed = seed
        self.generator = None
        if params.do_sample:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(seed)

    def process(self, logits: torch.Tensor, history: torch.Tensor | None) -> torch.Tensor:
        """Apply penalties and warpers to one row of float32 logits."""
        p = self.params
        if history is not None and p.repetition_penalty != 1.0:
            seen = logits.gather(0, history)
            seen = torch.where(seen > 0, seen / p.repetition_penalty, seen * p.repetition_penalty)
            logits = logits.scatter(0, history, seen)
        if history is not None and p.frequency_penalty != 0.0:
            counts = torch.zeros_like(logits).scatter_add_(0, history, torch.ones_like(history, dtype=logits.dtype))
            logits = logits - p.frequency_penalty * counts / max(1, history.numel())
        # A strong penalty can push a logit past float32's range; an inf would become NaN in the
        # shift below. Clamping keeps the order and leaves a NaN from the model visible.
        finite = torch.finfo(logits.dtype)
        logits = logits.clamp(min=finite.min, max=finite.max)
        if not p.do_sample:
            return logits
        if p.temperature != 1.0:
            # Shift first: a tiny temperature then drives the others to -inf instead of turning
            # the top logit into inf (and the softmax into NaN).
            logits = (logits - logits.max()) / p.temperature
        if p.top_k and p.top_k < logits.numel():
            kth = torch.topk(logits, p.top_k).values[-1]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if p.top_p < 1.0:
            logits = _top_p(logits, p.top_p)
        if p.typical_p < 1.0:
            logits = _typical_p(logits, p.typical_p)
        return logits

    def pick(self, logits: torch.Tensor) -> torch.Tensor:
        if not self.params.do_sample:
            return logits.argmax()
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator)[0]


def _top_p(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    sorted_logits, order = torch.sort(logits, descending=True)
    cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(-1)
    remove = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p  # always keep the first
    return logits.masked_fill(remove.scatter(0, order, remove), float("-inf"))


def _typical_p(logits: torch.Tensor, mass: float) -> torch.Tensor:
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    entropy = -(torch.nan_to_num(log_probs) * probs).sum()
    shifted = (-log_probs - entropy).abs()
    sorted_shifted, order = torch.sort(shifted)
    cumulative = probs.gather(0, order).cumsum(-1)
    last = int((cumulative < mass).sum().clamp(max=logits.numel() - 1))
    remove_sorted = sorted_shifted > sorted_shifted[last]
    return logits.masked_fill(remove_sorted.scatter(0, order, remove_sorted), float("-inf"))


def _process_rows(logits: torch.Tensor, ids: torch.Tensor, samplers: list[SequenceSampler],
                  histories: list[torch.Tensor | None]) -> tuple[torch.Tensor, dict[int, Exception]]:
    """Penalised/warped logits of every row (writing sampled ids into ``ids``), and the rows that failed."""
    processed, failures = logits.clone(), {}
    for i, sampler in enumerate(samplers):
        if not sampler.params.needs_processing:
            continue
        try:
            processed[i] = sampler.process(logits[i], histories[i])
            ids[i] = sampler.pick(processed[i])
        except Exception as error:  # this row only: the caller fails its sequence
            failures[i] = error
            processed[i] = logits[i]
    return processed, failures


def choose_tokens(logits: torch.Tensor, samplers: list[SequenceSampler], histories: list[torch.Tensor | None],
                  top_n: list[int]) -> Selection:
    """Next token for every row of ``logits`` [batch, vocab], and those ids as a device tensor.

    One host sync for the whole batch (the ``tolist`` that streaming needs); the id tensor stays
    on the device to feed the next step (a failed row keeps its argmax there until it is dropped).
    """
    logits = logits.float()
    ids = logits.argmax(dim=-1)
    processed, failures = logits, {}
    if any(s.params.needs_processing for s in samplers):
        processed, failures = _process_rows(logits, ids, samplers, histories)
    log_probs = torch.log_softmax(processed, dim=-1)
    chosen = log_probs.gather(1, ids[:, None])[:, 0]
    max_n = max(top_n, default=0)
    top = torch.topk(log_probs, max_n, dim=-1) if max_n else None
    ids_list, chosen_list = ids.tolist(), chosen.tolist()
    top_values = (top.values.tolist(), top.indices.tolist()) if top is not None else None
    choices: list[Choice | None] = []
    for i, token_id in enumerate(ids_list):
        tops = ()
        if top_values is not None and top_n[i]:
            tops = tuple(zip(top_values[1][i][:top_n[i]], top_values[0][i][:top_n[i]]))
        choices.append(None if i in failures else Choice(token_id, chosen_list[i], tops))
    return Selection(choices, ids, failures)
