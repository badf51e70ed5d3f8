"""Chunked prefill in-process on the tiny model (float32): the same tokens as a whole prefill."""

from __future__ import annotations

import pytest
import torch

from sluice.config import Config, TokenLimits
from sluice.engines.native.engine import NativeEngine
from sluice.model.facts import eos_token_ids
from sluice.engines.native.model_runner import ModelRunner
from sluice.engines.native.scheduler import SchedulerBudget
from sluice.protocols.tgi.body import parse_generate_body
from sluice.request import RequestLimits
from sluice.text.events import ErrorEvent
from sluice.serving.validation import Validator

PROMPTS = ["A short story: once upon a time, in a small village by the sea, there lived an old",
           "How do I make cheese at home with milk from the farm next door?",
           "Hi"]


def runner_of(loaded) -> ModelRunner:
    return ModelRunner(loaded.model, loaded.device, loaded.tokenizer.pad_token_id)


def generate(loaded, chunk: int, prompts: list[str], **parameters) -> list[list[int]]:
    """Token ids of every prompt, submitted together to an engine whose chunk is ``chunk``."""
    engine = NativeEngine(runner_of(loaded), loaded.tokenizer, SchedulerBudget(100_000, chunk),
                    eos_token_ids(loaded.model.generation_config, loaded.tokenizer), frozenset(loaded.tokenizer.all_special_ids))
    validator = Validator(loaded.tokenizer, TokenLimits(512, 1024), 20)
    sequences = [engine.submit(validator.validate(parse_generate_body(
        {"inputs": p, "parameters": dict(parameters, max_new_tokens=24)}, RequestLimits()))) for p in prompts]
    engine.start()
    try:
        return [drain(s) for s in sequences]
    finally:
        engine.stop()


def drain(sequence) -> list[int]:
    ids = []
    while True:
        event = sequence.events.get(timeout=60)
        assert not isinstance(event, ErrorEvent), event.error
        ids.append(event.token.id)
        if event.finish is not None:
            return ids


def test_a_left_padded_group_prefilled_in_chunks_has_the_logits_of_one_pass(loaded):
    runner = runner_of(loaded)
    prompts = [tuple(loaded.tokenizer(p)["input_ids"]) for p in PROMPTS[:2]]
    whole = runner.prefill(prompts, with_prompt_logprobs=True)
    job = runner.begin_prefill(prompts, with_prompt_logprobs=True)
    for stop in (3, 8, 9, job.width):
        runner.prefill_chunk(job, stop)
    chunked = runner.finish_prefill(job)
    torch.testing.assert_close(chunked.last_logits, whole.last_logits, rtol=1e-4, atol=1e-4)
    for row_whole, row_chunked in zip(whole.prompt_logprobs, chunked.prompt_logprobs):
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
