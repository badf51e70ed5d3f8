"""Fast tier: the engine's building blocks in process, without HTTP (seconds, tiny model, float32).

Continuous batching is only correct if merging and dropping rows never changes what a row sees:
a row's next-token logits after ``concatenate`` / ``filter`` must equal those it gets alone. The
sampler must give a seeded row the same token whoever shares its batch, and the detokenizer must
emit, piece by piece, exactly the text a full decode gives, never a half character.
"""

from __future__ import annotations

import pytest
import torch

from sluice.engines.native.kv_batch import concatenate
from sluice.engines.native.model_runner import ModelRunner
from sluice.engines.native.sampling import SequenceSampler, choose_tokens
from sluice.request import SamplingParams
from sluice.text.detokenizer import REPLACEMENT_CHAR, IncrementalDetokenizer

PROMPTS = ("The cheese", "How do I make cheese? Warm the milk", "チーズの作り方は?")


@pytest.fixture(scope="module")
def runner(loaded):
    return ModelRunner(loaded.model, loaded.device, loaded.tokenizer.pad_token_id)


def ids_of(loaded, text: str) -> tuple[int, ...]:
    return tuple(loaded.tokenizer(text)["input_ids"])


def solo_steps(runner, prompt: tuple[int, ...], steps: int) -> list[torch.Tensor]:
    """Greedy next-token logits of one prompt alone: after prefill, then after each decode step."""
    result = runner.prefill([prompt])
    logits = [result.last_logits[0]]
    batch = result.batch
    for _ in range(steps):
        batch.last_tokens = logits[-1].argmax()[None]
        logits.append(runner.decode(batch)[0])
    return logits


def test_concatenated_rows_decode_as_they_would_alone(loaded, runner):
    prompts = [ids_of(loaded, p) for p in PROMPTS]
    alone = [solo_steps(runner, p, 3) for p in prompts]
    parts = [runner.prefill([p]) for p in prompts]  # different widths: concatenate must right-align
    batch = concatenate([part.batch for part in parts])
    batch.last_tokens = torch.stack([solo[0].argmax() for solo in alone])
    for step in range(1, 4):
        logits = runner.decode(batch)
        for row, solo in enumerate(alone):
            torch.testing.assert_close(logits[row], solo[step], rtol=1e-4, atol=1e-4)
        batch.last_tokens = torch.stack([solo[step].argmax() for solo in alone])


def test_filtered_batch_keeps_the_remaining_rows_unchanged(loaded, runner):
    prompts = [ids_of(loaded, p) for p in PROMPTS]
    alone = [solo_steps(runner, p, 2) for p in prompts]
    batch = concatenate([runner.prefill([p]).batch for p in prompts])
    batch.last_tokens = torch.stack([solo[0].argmax() for solo in alone])
    runner.decode(batch)
    kept = batch.filter([2, 1])  # drop the first row and reorder: the widest row may leave
    assert kept.size == 2
    kept.last_tokens = torch.stack([alone[2][1].argmax(), alone[1][1].argmax()])
    logits = runner.decode(kept)
    torch.testing.assert_close(logits[0], alone[2][2], rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(logits[1], alone[1][2], rtol=1e-4, atol=1e-4)


def sampler(seed: int | None = None, **params) -> SequenceSampler:
    return SequenceSampler(SamplingParams(**params), torch.device("cpu"), seed)


def test_a_seeded_row_draws_the_same_tokens_whoever_shares_its_batch():
    logits = torch.randn(3, 64, generator=torch.Generator().manual_seed(0))
    seeded = dict(do_sample=True, temperature=0.9, top_k=20)
    alone = [choose_tokens(logits[:1], [s], [None], [0]).choices[0].token_id
             for s in [sampler(7, **seeded)] for _ in range(5)]
    shared_sampler = sampler(7, **seeded)
    neighbours = [sampler(None), sampler(3, do_sample=True, temperature=1.5)]
    together = [choose_tokens(logits, [shared_sampler, *neighbours], [None] * 3, [0] * 3).choices[0].token_id
                for _ in range(5)]
    assert together == alone


def test_greedy_rows_take_the_argmax_and_penalties_move_only_their_row():
    logits = torch.zeros(2, 8)
    logits[:, 3] = 2.0
    logits[:, 5] = 1.9
    history = torch.tensor([3])
    chosen = choose_tokens(logits, [sampler(), sampler(repetition_penalty=2.0)], [None, history], [0, 0])
    assert [c.token_id for c in chosen.choices] == [3, 5]  # 2.0 / 2 = 1.0 < 1.9
    assert chosen.failures == {}


def test_top_n_tokens_are_the_best_log_probabilities_in_order():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.0]])
    choice = choose_tokens(logits, [sampler()], [None], [3]).choices[0]
    assert [token for token, _ in choice.top_tokens] == [1, 3, 2]
    assert choice.logprob == pytest.approx(choice.top_tokens[0][1])


def test_detokenizer_pieces_join_to_the_full_decode_without_half_characters(loaded):
    tokenizer = loaded.tokenizer

    def decode(ids):
        return tokenizer.decode(ids, skip_special_tokens=True)

    for text in ("Warm the milk, add a culture and rennet.", "牛乳を温めて、乳酸菌を加える。", "奶酪怎么做?🧀"):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        detokenizer = IncrementalDetokenizer(decode, ids_of(loaded, "Q:"))
        pieces = [detokenizer.push(i) for i in ids]
        pieces.append(detokenizer.finish())
        assert "".join(pieces) == decode(ids)
        assert not any(REPLACEMENT_CHAR in piece for piece in pieces[:-1]), pieces
