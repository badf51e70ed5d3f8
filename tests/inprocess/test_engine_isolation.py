"""The engine in-process, with the real tiny model: one sequence's failure stays its own.

A sampler that raises and a runner whose prefill raises are injected here to make the failure
happen on cue; everything else is the production engine, runner, sampler and KV batch.
"""

from __future__ import annotations

import queue

import native_engine
import pytest
import torch
from native_engine import EVENT_TIMEOUT, drain, request

from sluice.engines.native.engine import NativeEngine
from sluice.engines.native.model_runner import ModelRunner
from sluice.engines.native.sampling import SequenceSampler
from sluice.errors import GenerationError
from sluice.protocols.tgi.body import parse_generate_body
from sluice.request import RequestLimits, SamplingParams

LONG = "A short story: once upon a time, in a small village by the sea, there lived"
SHORT = "Hi"


def make_engine(loaded, runner: ModelRunner | None = None) -> NativeEngine:
    """An engine that is not started yet, with a KV budget of 8192 tokens."""
    return native_engine.make_engine(loaded, runner, kv_tokens=8192)


def run_alone(loaded, valid) -> list[int]:
    engine = make_engine(loaded).start()
    try:
        ids, error = drain(engine.submit(valid))
    finally:
        engine.stop()
    assert error is None
    return ids


class FailingSampler(SequenceSampler):
    """Samples normally, then raises on its ``fail_at``-th call, as a NaN row's multinomial does."""

    def __init__(self, params: SamplingParams, fail_at: int):
        super().__init__(params, torch.device("cpu"), seed=1)
        self.calls, self.fail_at = 0, fail_at

    def pick(self, logits):
        self.calls += 1
        if self.calls == self.fail_at:
            raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
        return super().pick(logits)


def test_a_row_whose_sampling_fails_ends_alone_and_its_neighbours_keep_their_tokens(loaded):
    greedy = request(loaded, LONG, max_new_tokens=40)
    seeded = request(loaded, SHORT, max_new_tokens=40, do_sample=True, seed=99, top_k=20)
    expected = [run_alone(loaded, greedy), run_alone(loaded, seeded)]
    engine = make_engine(loaded)
    victim = engine.submit(request(loaded, LONG, max_new_tokens=40))
    neighbours = [engine.submit(greedy), engine.submit(seeded)]
    victim.sampler = FailingSampler(SamplingParams(do_sample=True), fail_at=5)
    engine.start()
    try:
        victim_ids, victim_error = drain(victim)
        results = [drain(sequence) for sequence in neighbours]
    finally:
        engine.stop()
    assert len(victim_ids) == 4  # the tokens before the failing step were delivered
    assert isinstance(victim_error, GenerationError) and victim_error.status == 424
    assert victim_error.message == "Request failed during generation: choosing the next token failed"
    assert results == [(expected[0], None), (expected[1], None)]
    assert engine.stats.failed_total == 1 and engine.stats.finished_total == 2


class PoisonedPrefillRunner(ModelRunner):
    """A real runner whose prefill fails for one prompt, recording the batch it interrupted."""

    def __init__(self, loaded, poisoned: tuple[int, ...]):
        super().__init__(loaded.model, loaded.device, loaded.tokenizer.pad_token_id)
        self.poisoned = poisoned
        self.engine: NativeEngine | None = None
        self.running_when_failed: int | None = None

    def begin_prefill(self, prompts, with_prompt_logprobs=False, **kwargs):
        if self.poisoned in prompts:
            self.running_when_failed = self.engine.stats.batch_size
            raise RuntimeError("CUDA out of memory (simulated)")
        return super().begin_prefill(prompts, with_prompt_logprobs, **kwargs)


def test_a_failed_prefill_group_fails_only_its_newcomers(loaded):
    running = request(loaded, LONG, max_new_tokens=100)
    healthy = request(loaded, SHORT, max_new_tokens=30)  # another length: another prefill group
    poisoned = request(loaded, LONG + " and", max_new_tokens=30)
    expected = [run_alone(loaded, running), run_alone(loaded, healthy)]
    runner = PoisonedPrefillRunner(loaded, poisoned.input_ids)
    engine = runner.engine = make_engine(loaded, runner)
    engine.start()
    try:
        first = engine.submit(running)
        first_token = first.events.get(timeout=EVENT_TIMEOUT)  # it is in the running batch now
        doomed, newcomer = engine.submit(poisoned), engine.submit(healthy)
        doomed_ids, doomed_error = drain(doomed)
        rest, error = drain(first)
        newcomer_result = drain(newcomer)
    finally:
        engine.stop()
    assert runner.running_when_failed == 1  # the failure happened while another row was running
    assert doomed_ids == [] and doomed_error.message == "Request failed during generation: the model step failed"
    assert ([first_token.token.id] + rest, error) == (expected[0], None)
    assert newcomer_result == (expected[1], None)


class FailingDecodeRunner(ModelRunner):
    """Decode steps fail; no fused passes (a failed one fails only newcomers: test_fused_prefill)."""

    def __init__(self, loaded):
        super().__init__(loaded.model, loaded.device, loaded.tokenizer.pad_token_id, fuse=False)

    def decode(self, batch, adapters=None):
        raise RuntimeError("device-side assert triggered at /opt/secret/path.cu:42")


def test_a_failed_decode_pass_fails_the_batch_with_a_text_free_of_internals(loaded):
    engine = make_engine(loaded, FailingDecodeRunner(loaded))
    sequences = [engine.submit(request(loaded, p, max_new_tokens=10)) for p in (LONG, SHORT)]
    engine.start()
    try:
        results = [drain(s) for s in sequences]
    finally:
        engine.stop()
    for ids, error in results:
        assert len(ids) == 1  # the prefill's token, then the shared step failed
        assert error.body() == {"error": "Request failed during generation: the model step failed",
                                "error_type": "generation"}
    with pytest.raises(queue.Empty):
        sequences[0].events.get_nowait()


@pytest.mark.parametrize("parameters", [
    {"temperature": 1e-37}, {"temperature": 1e37}, {"top_p": 1e-37}, {"typical_p": 1e-37},
    {"repetition_penalty": 1e-37}, {"repetition_penalty": 1e37},
    {"repetition_penalty": 1e37, "temperature": 1e-37, "top_p": 1e-37, "typical_p": 1e-37},
])
def test_the_sampler_keeps_probabilities_finite_at_the_accepted_bounds(parameters):
    params = parse_generate_body({"inputs": "x", "parameters": dict(parameters, do_sample=True)},
                                    RequestLimits()).sampling
    sampler = SequenceSampler(params, torch.device("cpu"), seed=5)
    logits = torch.linspace(-60.0, 60.0, 50)
    history = torch.arange(50)  # every token seen: the penalty reaches every logit
    processed = sampler.process(logits, history)
    probs = torch.softmax(processed, dim=-1)
    assert not probs.isnan().any() and probs.sum().item() == pytest.approx(1.0)
    assert 0 <= int(sampler.pick(processed)) < 50
