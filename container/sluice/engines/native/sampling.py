"""Choosing the next token of every sequence in a batch, each with its own parameters.

Greedy rows without penalties share one argmax; the other rows get their biases, penalties and
warpers (TGI's order: watermark and OpenAI's ``logit_bias``, both additive, then repetition,
frequency, temperature, top-k, top-p, typical-p) in one batched pass, each parameter a per-row
tensor (TGI's heterogeneous chooser), then draw with their own ``torch.Generator``, so a seeded
request draws the same tokens whatever else is batched with it.
Log-probabilities are those of the distribution the token was drawn from. A row whose processing
raises is reported, not propagated: one request's parameters never fail its neighbours.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...request import SamplingParams
from ..base import Choice
from .watermark import Watermark


@dataclass
class Selection:
    """One step's outcome: a choice per row (``None`` where that row failed) and the id tensor."""

    choices: list[Choice | None]
    ids: torch.Tensor
    failures: dict[int, Exception]


class SequenceSampler:
    """One sequence's parameters and random generator: its draw is its own, whatever its batch."""

    def __init__(self, params: SamplingParams, device: torch.device, seed: int | None,
                 watermark: Watermark | None = None):
        self.params = params
        self.seed = seed
        self.watermark = watermark  # the engine's settings, used when params.watermark
        self.generator = None
        if params.do_sample:
            self.generator = torch.Generator(device=device)
            self.generator.manual_seed(seed)

    def process(self, logits: torch.Tensor, history: torch.Tensor | None) -> torch.Tensor:
        """Biases, penalties and warpers of this row alone (1-D float32 logits)."""
        return process_rows(logits[None], [self.params], [history], self.watermark)[0]

    def pick(self, logits: torch.Tensor) -> torch.Tensor:
        """This row's token from its processed logits: argmax, or a draw with its own generator."""
        if not self.params.do_sample:
            return logits.argmax()
        probs = torch.softmax(logits, dim=-1)
        return torch.multinomial(probs, 1, generator=self.generator)[0]


def process_rows(logits: torch.Tensor, params: list[SamplingParams], histories: list[torch.Tensor | None],
                 watermark: Watermark | None = None) -> torch.Tensor:
    """Biases, penalties and warpers of every row of float32 ``logits`` [rows, vocab] at once.

    TGI's heterogeneous chooser: each parameter becomes a per-row tensor and each step one
    tensor op over the rows that use it, instead of a Python loop over rows. A row's values
    are those it would get alone (the ops work row by row; tests compare with one-row batches).
    ``watermark`` holds the engine's settings for the rows that ask for it.
    """
    logits = _bias(logits, params, histories, watermark or Watermark())
    logits = _penalise(logits, params, histories)
    # A strong penalty can push a logit past float32's range; an inf would become NaN in the
    # shift below. Clamping keeps the order and leaves a NaN from the model visible.
    finite = torch.finfo(logits.dtype)
    logits = logits.clamp(min=finite.min, max=finite.max)
    sampled = [i for i, p in enumerate(params) if p.do_sample]
    if not sampled:
        return logits
    rows = torch.tensor(sampled, device=logits.device)
    warped = _warp(logits.index_select(0, rows), [params[i] for i in sampled])
    return logits.index_copy(0, rows, warped)


def _column(values: list, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=like.dtype, device=like.device)[:, None]


def _bias(logits: torch.Tensor, params: list[SamplingParams], histories: list[torch.Tensor | None],
          watermark: Watermark) -> torch.Tensor:
    """The additive biases: ``logit_bias`` (one scatter for all its rows) and the watermark's
    greenlists (TGI's first processor), each row keyed by its own previous token."""
    biased = [(i, token, value) for i, p in enumerate(params) for token, value in p.logit_bias]
    if biased:
        rows, tokens, values = zip(*biased, strict=True)
        where = (torch.tensor(rows, device=logits.device), torch.tensor(tokens, device=logits.device))
        logits = logits.index_put(where, torch.tensor(values, dtype=logits.dtype, device=logits.device),
                                  accumulate=True)
    marked = [i for i, p in enumerate(params) if p.watermark]
    if marked:
        index = torch.tensor(marked, device=logits.device)
        previous = [int(histories[i][-1]) for i in marked]  # a row without a history fails alone
        logits = logits.index_copy(0, index, watermark.bias(logits.index_select(0, index), previous))
    return logits


def _penalise(logits: torch.Tensor, params: list[SamplingParams],
              histories: list[torch.Tensor | None]) -> torch.Tensor:
    """Repetition then frequency penalty, over each row's history padded to a common width."""
    penalised = [i for i, (p, h) in enumerate(zip(params, histories, strict=True)) if h is not None and h.numel()
                 and (p.repetition_penalty != 1.0 or p.frequency_penalty != 0.0)]
    if not penalised:
        return logits
    width = max(histories[i].numel() for i in penalised)
    index = logits.new_zeros((len(logits), width), dtype=torch.long)
    real = logits.new_zeros((len(logits), width))  # 1 on a row's own history, 0 on padding
    for i in penalised:
        history = histories[i]
        index[i, :history.numel()] = history
        index[i, history.numel():] = history[0]  # padding repeats a real id: same value rewritten
        real[i, :history.numel()] = 1.0
    repetition = _column([p.repetition_penalty if i in penalised else 1.0 for i, p in enumerate(params)], logits)
    seen = logits.gather(1, index)
    seen = torch.where(seen > 0, seen / repetition, seen * repetition)
    logits = logits.scatter(1, index, seen)
    frequency = [p.frequency_penalty if i in penalised else 0.0 for i, p in enumerate(params)]
    if any(frequency):
        counts = torch.zeros_like(logits).scatter_add_(1, index, real)
        lengths = _column([max(1, int(h.numel())) if h is not None else 1 for h in histories], logits)
        logits = logits - _column(frequency, logits) * counts / lengths
    return logits


def _warp(logits: torch.Tensor, params: list[SamplingParams]) -> torch.Tensor:
    """Temperature, top-k, top-p, typical-p (TGI's order) of the sampled rows."""
    vocab = logits.shape[-1]
    temperature = [p.temperature for p in params]
    if any(t != 1.0 for t in temperature):
        # Shift first: a tiny temperature then drives the others to -inf instead of turning
        # the top logit into inf (and the softmax into NaN).
        hot = _column([t != 1.0 for t in temperature], logits).bool()
        shifted = (logits - logits.max(dim=-1, keepdim=True).values) / _column(temperature, logits)
        logits = torch.where(hot, shifted, logits)
    top_k = [p.top_k if p.top_k and p.top_k < vocab else 0 for p in params]
    if any(top_k):
        kth = torch.topk(logits, max(top_k), dim=-1).values.gather(
            1, torch.tensor([max(k, 1) - 1 for k in top_k], device=logits.device)[:, None])
        cut = (logits < kth) & _column([k > 0 for k in top_k], logits).bool()
        logits = logits.masked_fill(cut, float("-inf"))
    top_p = [p.top_p for p in params]
    if any(p < 1.0 for p in top_p):
        logits = _top_p(logits, _column(top_p, logits))
    typical = [p.typical_p for p in params]
    if any(p < 1.0 for p in typical):
        logits = _typical_p(logits, _column(typical, logits))
    return logits


def _top_p(logits: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keep each row's most likely tokens up to its mass ``top_p`` (1.0: the row is untouched)."""
    sorted_logits, order = torch.sort(logits, descending=True)
    probs = torch.softmax(sorted_logits, dim=-1)
    remove = (probs.cumsum(-1) - probs >= top_p) & (top_p < 1.0)  # always keep the first
    return logits.masked_fill(remove.scatter(1, order, remove), float("-inf"))


def _typical_p(logits: torch.Tensor, mass: torch.Tensor) -> torch.Tensor:
    """Keep the tokens whose surprise is nearest the row's entropy, up to ``mass`` (1.0: untouched)."""
    log_probs = torch.log_softmax(logits, dim=-1)
    probs = log_probs.exp()
    entropy = -(torch.nan_to_num(log_probs) * probs).sum(-1, keepdim=True)
    shifted = (-log_probs - entropy).abs()
    sorted_shifted, order = torch.sort(shifted)
    cumulative = probs.gather(1, order).cumsum(-1)
    last = (cumulative < mass).sum(-1, keepdim=True).clamp(max=logits.shape[-1] - 1)
    remove = (sorted_shifted > sorted_shifted.gather(1, last)) & (mass < 1.0)
    return logits.masked_fill(remove.scatter(1, order, remove), float("-inf"))


def _process_rows(logits: torch.Tensor, ids: torch.Tensor, samplers: list[SequenceSampler],
                  histories: list[torch.Tensor | None],
                  watermark: Watermark | None) -> tuple[torch.Tensor, dict[int, Exception]]:
    """Processed logits of every row (writing the picked ids into ``ids``), and the rows that failed.

    One batched pass over the rows that need it; a row whose draw raises (a NaN row's
    multinomial) fails alone, and should the batched pass itself raise, each row is processed
    on its own to find the one at fault.
    """
    rows = [i for i, s in enumerate(samplers) if s.params.needs_processing]
    processed, failures = logits.clone(), {}
    try:
        batch = process_rows(logits[rows], [samplers[i].params for i in rows], [histories[i] for i in rows],
                             watermark)
    except Exception:  # noqa: BLE001 - find the row at fault below
        batch = None
    for j, i in enumerate(rows):
        try:
            row = batch[j] if batch is not None else samplers[i].process(logits[i], histories[i])
            processed[i] = row
            ids[i] = samplers[i].pick(row)
        except Exception as error:  # this row only: the caller fails its sequence
            failures[i] = error
            processed[i] = logits[i]
    return processed, failures


def choose_tokens(logits: torch.Tensor, samplers: list[SequenceSampler], histories: list[torch.Tensor | None],
                  top_n: list[int], watermark: Watermark | None = None) -> Selection:
    """Next token for every row of ``logits`` [batch, vocab], and those ids as a device tensor.

    One host sync for the whole batch (the ``tolist`` that streaming needs); the id tensor stays
    on the device to feed the next step (a failed row keeps its argmax there until it is dropped).
    """
    logits = logits.float()
    ids = logits.argmax(dim=-1)
    processed, failures = logits, {}
    if any(s.params.needs_processing for s in samplers):
        processed, failures = _process_rows(logits, ids, samplers, histories, watermark)
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
            tops = tuple(zip(top_values[1][i][:top_n[i]], top_values[0][i][:top_n[i]], strict=True))
        choices.append(None if i in failures else Choice(token_id, chosen_list[i], tops))
    return Selection(choices, ids, failures)
