"""Chunked prefill in-process on the tiny model (float32): the same tokens as a whole prefill."""

from __future__ import annotations

import pytest
import torch
from native_engine import drain, make_engine, request, runner_of

from sluice.config import Config

PROMPTS = ["A short story: once upon a time, in a small village by the sea, there lived an old",
           "How do I make cheese at home with milk from the farm next door?",
           "Hi"]


def generate(loaded, chunk: int, prompts: list[str], **parameters) -> list[list[int]]:
    """Token ids of every prompt, submitted together to an engine whose chunk is ``chunk``."""
    engine = make_engine(loaded, chunk=chunk)
    sequences = [engine.submit(request(loaded, p, **parameters)) for p in prompts]
    engine.start()
    try:
        results = [drain(s) for s in sequences]
    finally:
        engine.stop()
    assert [error for _, error in results] == [None] * len(prompts)
    return [ids for ids, _ in results]


def test_a_left_padded_group_prefilled_in_chunks_has_the_logits_of_one_pass(loaded):
    runner = runner_of(loaded)
    prompts = [tuple(loaded.tokenizer(p)["input_ids"]) for p in PROMPTS[:2]]
    whole = runner.prefill(prompts, with_prompt_logprobs=True)
    job = runner.begin_prefill(prompts, with_prompt_logprobs=True)
    for stop in (3, 8, 9, job.width):
        runner.prefill_chunk(job, stop)
    chunked = runner.finish_prefill(job)
    torch.testing.assert_close(chunked.last_logits, whole.last_logits, rtol=1e-4, atol=1e-4)
    for row_whole, row_chunked in zip(whole.prompt_logprobs, chunked.prompt_logprobs, strict=True):
        assert row_whole[0] is None and row_chunked[0] is None
        assert row_chunked[1:] == pytest.approx(row_whole[1:], abs=1e-4)


def test_prompts_prefilled_in_small_chunks_generate_the_tokens_of_a_whole_prefill(loaded):
    assert generate(loaded, 5, PROMPTS) == generate(loaded, 4096, PROMPTS)


def test_seeded_sampling_is_the_same_with_chunked_prefill(loaded):
    sampled = {"do_sample": True, "seed": 11, "top_k": 30}
    assert generate(loaded, 3, PROMPTS[:1], **sampled) == generate(loaded, 4096, PROMPTS[:1], **sampled)


def test_a_prefill_chunk_smaller_than_the_longest_prompt_is_a_valid_configuration():
    """TGI 1.x refused MAX_BATCH_PREFILL_TOKENS < MAX_INPUT_TOKENS; with chunking it is the point."""
    config = Config.from_environ({"HF_MODEL_ID": "org/model", "MAX_BATCH_PREFILL_TOKENS": "64"})
    limits = config.token_limits(2048)
    assert config.max_batch_prefill_tokens == 64 and limits.max_input_tokens == 2047
