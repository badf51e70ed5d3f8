"""Batched biases, penalties and warpers (engines/native/sampling.process_rows) against one row at
a time.

The engine processes every sampled row of a step in one pass of tensor ops. Seeds must keep
meaning what they meant: each row's processed logits are compared bit for bit with a plain
per-row implementation of TGI's warpers (the engine's code before batching), and a seeded draw
must not depend on its neighbours. Fast tier: random logits, no model.
"""

from __future__ import annotations

import random

import torch

from sluice.engines.native.sampling import SequenceSampler, choose_tokens, process_rows
from sluice.request import SamplingParams

VOCAB = 512


def tgi_watermark(logits: torch.Tensor, previous_token: int, gamma: float = 0.5, delta: float = 2.0) -> torch.Tensor:
    """TGI's WatermarkLogitsProcessor on one row, as its source writes it (utils/watermark.py)."""
    rng = torch.Generator(device="cpu")
    rng.manual_seed(15485863 * previous_token)
    greenlist_ids = torch.randperm(logits.shape[-1], device="cpu", generator=rng)[:int(logits.shape[-1] * gamma)]
    mask = torch.zeros_like(logits)
    mask[greenlist_ids] = 1
    logits = logits.clone()
    logits[mask.bool()] = logits[mask.bool()] + delta
    return logits


def one_row(logits: torch.Tensor, p: SamplingParams, history: torch.Tensor | None) -> torch.Tensor:
    """TGI's order, one 1-D row at a time (what the engine did before batching)."""
    for token, bias in p.logit_bias:
        logits = logits.clone()
        logits[token] += bias
    if p.watermark:
        logits = tgi_watermark(logits, int(history[-1]))
    if history is not None and p.repetition_penalty != 1.0:
        seen = logits.gather(0, history)
        seen = torch.where(seen > 0, seen / p.repetition_penalty, seen * p.repetition_penalty)
        logits = logits.scatter(0, history, seen)
    if history is not None and p.frequency_penalty != 0.0:
        counts = torch.zeros_like(logits).scatter_add_(0, history, torch.ones_like(history, dtype=logits.dtype))
        logits = logits - p.frequency_penalty * counts / max(1, history.numel())
    finite = torch.finfo(logits.dtype)
    logits = logits.clamp(min=finite.min, max=finite.max)
    if not p.do_sample:
        return logits
    if p.temperature != 1.0:
        logits = (logits - logits.max()) / p.temperature
    if p.top_k and p.top_k < logits.numel():
        logits = logits.masked_fill(logits < torch.topk(logits, p.top_k).values[-1], float("-inf"))
    if p.top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=True)
        probs = torch.softmax(sorted_logits, dim=-1)
        remove = probs.cumsum(-1) - probs >= p.top_p
        logits = logits.masked_fill(remove.scatter(0, order, remove), float("-inf"))
    if p.typical_p < 1.0:
        log_probs = torch.log_softmax(logits, dim=-1)
        probs = log_probs.exp()
        entropy = -(torch.nan_to_num(log_probs) * probs).sum()
        shifted = (-log_probs - entropy).abs()
        sorted_shifted, order = torch.sort(shifted)
        last = int((probs.gather(0, order).cumsum(-1) < p.typical_p).sum().clamp(max=logits.numel() - 1))
        remove = sorted_shifted > sorted_shifted[last]
        logits = logits.masked_fill(remove.scatter(0, order, remove), float("-inf"))
    return logits


def random_params(rng: random.Random) -> SamplingParams:
    sample = rng.random() < 0.8
    return SamplingParams(
        do_sample=sample,
        temperature=rng.choice([1.0, 0.7, 1.3, 0.05]) if sample else 1.0,
        top_k=rng.choice([0, 1, 5, 50, VOCAB + 3]) if sample else 0,
        top_p=rng.choice([1.0, 0.9, 0.5]) if sample else 1.0,
        typical_p=rng.choice([1.0, 1.0, 0.8]) if sample else 1.0,
        repetition_penalty=rng.choice([1.0, 1.0, 1.3, 0.8]),
        frequency_penalty=rng.choice([0.0, 0.0, 0.5, -1.0]),
        watermark=rng.random() < 0.3,
        logit_bias=tuple(sorted({rng.randrange(VOCAB): rng.choice([-100.0, -2.5, 5.0, 100.0])
                                 for _ in range(rng.choice([0, 0, 1, 3]))}.items())),
    )


def random_history(rng: random.Random, p: SamplingParams | None = None) -> torch.Tensor | None:
    """A row's tokens so far; a watermarked row always has some (its greenlist needs the last)."""
    if rng.random() < 0.2 and not (p is not None and p.watermark):
        return None
    return torch.tensor([rng.randrange(VOCAB) for _ in range(rng.randrange(1, 40))])


def test_each_row_of_a_mixed_batch_is_processed_exactly_as_it_would_be_alone():
    rng = random.Random(12)
    for round_ in range(40):
        rows = rng.randrange(1, 12)
        logits = torch.randn(rows, VOCAB, generator=torch.Generator().manual_seed(round_)) * 4
        params = [random_params(rng) for _ in range(rows)]
        histories = [random_history(rng, p) for p in params]
        batched = process_rows(logits, params, histories)
        for row in range(rows):
            expected = one_row(logits[row], params[row], histories[row])
            assert torch.equal(batched[row], expected), (round_, row, params[row])


def test_seeded_draws_match_the_one_row_reference_and_ignore_their_neighbours():
    rng = random.Random(3)
    logits = torch.randn(6, VOCAB, generator=torch.Generator().manual_seed(1)) * 3
    params = [SamplingParams(do_sample=True, temperature=0.8, top_k=40, top_p=0.9, seed=7),
              *(random_params(rng) for _ in range(5))]
    params[1:3] = [SamplingParams(do_sample=True, watermark=True), SamplingParams(logit_bias=((5, 100.0),))]
    histories = [torch.tensor([3, 4, 3])] + [random_history(rng, p) for p in params[1:]]
    samplers = [SequenceSampler(p, torch.device("cpu"), 7 if i == 0 else 100 + i) for i, p in enumerate(params)]
    batched = [choose_tokens(logits, samplers, histories, [0] * 6).choices[0].token_id for _ in range(8)]
    generator = torch.Generator().manual_seed(7)
    reference = []
    for _ in range(8):
        probs = torch.softmax(one_row(logits[0], params[0], histories[0]), dim=-1)
        reference.append(int(torch.multinomial(probs, 1, generator=generator)[0]))
    assert batched == reference


def test_a_row_whose_draw_fails_is_reported_and_the_others_still_get_their_tokens():
    logits = torch.randn(3, VOCAB, generator=torch.Generator().manual_seed(2))
    logits[1] = float("nan")  # a model that produced NaN for one row: its multinomial raises
    samplers = [SequenceSampler(SamplingParams(do_sample=True, top_k=5), torch.device("cpu"), seed)
                for seed in (1, 2, 3)]
    selection = choose_tokens(logits, samplers, [None] * 3, [0] * 3)
    assert set(selection.failures) == {1}
    assert selection.choices[1] is None and None not in (selection.choices[0], selection.choices[2])


def test_logit_bias_and_the_watermark_steer_greedy_rows_too():
    """A greedy row is the argmax of its biased logits (TGI watermarks greedy rows as well)."""
    logits = torch.randn(2, VOCAB, generator=torch.Generator().manual_seed(4))
    forced = SequenceSampler(SamplingParams(logit_bias=((17, 100.0),)), torch.device("cpu"), None)
    marked = SequenceSampler(SamplingParams(watermark=True), torch.device("cpu"), None)
    selection = choose_tokens(logits, [forced, marked], [None, torch.tensor([9])], [0, 0])
    assert selection.choices[0].token_id == 17
    assert selection.choices[1].token_id == int(tgi_watermark(logits[1], 9).argmax())
