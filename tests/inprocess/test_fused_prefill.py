"""A prefill chunk in the decode step's forward pass (engines/native/fused_pass), in-process, float32.

What a user would notice if it were wrong: other tokens for the running streams or the newcomers
than with separate passes, or running streams broken by a newcomer's failed pass.
"""

from __future__ import annotations

import torch
from native_engine import drain, make_engine, request, runner_of
from transformers.integrations.sdpa_attention import sdpa_attention_forward

from sluice.engines.native import fused_pass
from sluice.engines.native.fused_pass import ragged_segments
from sluice.engines.native.kv_batch import concatenate
from sluice.engines.native.model_runner import ModelRunner

RUNNING = ["A short story: once upon a time, in a small village by the sea, there lived an old",
           "Hi"]
ARRIVING = ["How do I make cheese at home with milk from the farm next door? Tell me step by step",
            "Why is the sky blue?"]  # another length: its own prefill group


def ids_of(loaded, texts) -> list[tuple[int, ...]]:
    return [tuple(loaded.tokenizer(t)["input_ids"]) for t in texts]


def test_a_fused_pass_gives_the_logits_and_cache_of_a_decode_step_and_a_chunk(loaded):
    runner, separate_runner = runner_of(loaded), runner_of(loaded, fuse=False)
    assert runner.fused_pass.startswith("on")
    running = ids_of(loaded, RUNNING)  # 25 and 3 tokens: the fused decode attends two runs of rows
    separate_batch, fused_batch = runner.prefill(running).batch, runner.prefill(running).batch
    arriving = ids_of(loaded, ARRIVING)
    separate_job, fused_job = runner.begin_prefill(arriving), runner.begin_prefill(arriving)
    for stop in (5, 6, 13, separate_job.width):
        expected = separate_runner.decode(separate_batch)
        separate_runner.prefill_chunk(separate_job, stop)
        torch.testing.assert_close(runner.fused_step(fused_batch, fused_job, stop), expected,
                                   rtol=1e-4, atol=1e-4)
        tokens = expected.argmax(-1)
        separate_batch.last_tokens, fused_batch.last_tokens = tokens, tokens
    separate, fused = runner.finish_prefill(separate_job), runner.finish_prefill(fused_job)
    torch.testing.assert_close(fused.last_logits, separate.last_logits, rtol=1e-4, atol=1e-4)
    # Both caches now hold what separate passes would have written: the next steps agree.
    for fused_rows, separate_rows in ((fused.batch, separate.batch), (fused_batch, separate_batch)):
        torch.testing.assert_close(separate_runner.decode(fused_rows), separate_runner.decode(separate_rows),
                                   rtol=1e-4, atol=1e-4)


def test_a_decode_step_of_rows_of_unlike_lengths_skips_their_padding_and_keeps_their_logits(loaded, monkeypatch):
    attended = []  # the key columns each attention call of the ragged path saw

    def recording_sdpa(module, query, keys, *args, **kwargs):
        attended.append(keys.shape[2])
        return sdpa_attention_forward(module, query, keys, *args, **kwargs)

    monkeypatch.setattr(fused_pass, "sdpa_attention_forward", recording_sdpa)
    runner, plain_runner = runner_of(loaded), runner_of(loaded, fuse=False)
    long_row = ids_of(loaded, [ARRIVING[0] * 3])
    short_rows = ids_of(loaded, ["Hi", "Hello there"])
    batches = []
    for _ in range(2):  # short rows first, then a long prompt joins: a batch as wide as the long row
        short, long = runner.prefill(short_rows), runner.prefill(long_row)
        short.batch.last_tokens, long.batch.last_tokens = short.last_logits.argmax(-1), long.last_logits.argmax(-1)
        batches.append(concatenate([short.batch, long.batch]))
    assert len(ragged_segments([int(x) for x in (batches[0].attention_mask == 0).sum(-1)],
                               batches[0].columns + 1)) == 2
    assert runner.fused_pass.startswith("on")  # the load-time check has its own attention calls
    short_width = max(len(p) for p in short_rows) + 1
    for _ in range(3):
        expected = plain_runner.decode(batches[0])
        attended.clear()
        torch.testing.assert_close(runner.decode(batches[1]), expected, rtol=1e-4, atol=1e-4)
        batches[0].last_tokens = batches[1].last_tokens = expected.argmax(-1)
        # Per layer: the short rows attended their own few columns, the long row the whole batch.
        layers = loaded.model.config.num_hidden_layers
        assert sorted(attended) == [short_width] * layers + [batches[1].columns] * layers
        short_width += 1


class CountingRunner(ModelRunner):
    """The production runner, counting its fused passes so a test knows it took that path."""

    def __init__(self, loaded, fuse: bool = True):
        super().__init__(loaded.model, loaded.device, loaded.tokenizer.pad_token_id, fuse=fuse)
        self.fused_passes = 0

    def fused_step(self, batch, job, stop, adapters=None):
        self.fused_passes += 1
        return super().fused_step(batch, job, stop, adapters)


def stream_with_arrivals(loaded, runner, before_arrivals=None,
                         **parameters) -> list[tuple[list[int], Exception | None]]:
    """Two streams run; once both have a token, two prompts arrive and are prefilled in chunks."""
    engine = make_engine(loaded, runner, chunk=4).start()
    try:
        running = [engine.submit(request(loaded, p, **parameters)) for p in RUNNING]
        firsts = [s.events.get(timeout=60).token.id for s in running]
        if before_arrivals:
            before_arrivals()
        arriving = [engine.submit(request(loaded, p, **parameters)) for p in ARRIVING]
        results = [drain(s) for s in running + arriving]
    finally:
        engine.stop()
    return [([first] + ids, error) for first, (ids, error) in zip(firsts, results[:2], strict=True)] + results[2:]


def test_streams_and_arrivals_generate_the_same_tokens_fused_or_in_turns(loaded):
    fused_runner = CountingRunner(loaded)
    for parameters in ({}, {"do_sample": True, "seed": 5, "top_k": 40}):
        fused = stream_with_arrivals(loaded, fused_runner, **parameters)
        in_turns = stream_with_arrivals(loaded, runner_of(loaded, fuse=False), **parameters)
        assert fused == in_turns and all(error is None and len(ids) == 24 for ids, error in fused)
    assert fused_runner.fused_passes >= 2 * 6  # every arrival's chunks rode along with decode steps


class FailingFusedRunner(CountingRunner):
    """Once armed, its next pass with a newcomer's chunk fails halfway through the model, after
    half the layers wrote their keys/values. (Decode steps whose rows attend in runs also take the
    packed path; they must not trip it: a failed decode step fails the whole batch, by design.)"""

    def __init__(self, loaded):
        super().__init__(loaded)
        assert self.fused_pass.startswith("on")  # the load-time check runs before the trap is set
        self._armed = self._chunk_in_pass = False
        layers = loaded.model.model.layers
        self._hook = layers[len(layers) // 2].register_forward_pre_hook(self._explode)

    def fused_step(self, batch, job, stop, adapters=None):
        self._chunk_in_pass = True
        try:
            return super().fused_step(batch, job, stop, adapters)
        finally:
            self._chunk_in_pass = False

    def _explode(self, module, args):
        if self._armed and self._chunk_in_pass:
            self._armed = False
            raise RuntimeError("CUDA out of memory (simulated, mid-pass)")

    def arm(self):
        self._armed = True

    def remove(self):
        self._hook.remove()


def test_a_fused_pass_that_fails_fails_only_the_newcomers_and_the_running_streams_go_on(loaded):
    expected = stream_with_arrivals(loaded, runner_of(loaded, fuse=False))
    runner = FailingFusedRunner(loaded)
    try:
        results = stream_with_arrivals(loaded, runner, before_arrivals=runner.arm)
    finally:
        runner.remove()
    assert runner.fused_passes >= 2
    # The running streams' cache forgot the failed pass's writes: their tokens are unchanged.
    assert results[:2] == expected[:2]
    failed = [i for i in (2, 3) if results[i][1] is not None]
    assert len(failed) == 1 and results[failed[0]][0] == []
    assert results[failed[0]][1].message == "Request failed during generation: the model step failed"
    survivor = 5 - failed[0]  # the other arrival, prefilled in later fused passes
    assert results[survivor] == expected[survivor]

def test_a_runner_that_cannot_fuse_says_so_and_keeps_chunks_and_decode_steps_in_turns(loaded):
    class Unfusable(ModelRunner):
        def fused_step(self, batch, job, stop, adapters=None):
            raise NotImplementedError("attention outside transformers' interface")

    runner = Unfusable(loaded.model, loaded.device, loaded.tokenizer.pad_token_id)
    assert runner.fused_pass.startswith("off: this model cannot run the fused pass (NotImplementedError")
    assert stream_with_arrivals(loaded, runner) == stream_with_arrivals(loaded, runner_of(loaded, fuse=False))
    assert runner_of(loaded, fuse=False).fused_pass == "off (SLUICE_FUSED_PREFILL=0)"


def test_rows_of_very_different_lengths_attend_only_their_own_columns():
    # 3 short rows, then 2 long ones that joined later: two runs; the short run skips 1,400 columns.
    assert ragged_segments([1400, 1390, 1410, 0, 20], 1500) == [(0, 3, 1390), (3, 5, 0)]
    assert ragged_segments([0, 0, 0], 8) == [(0, 3, 0)]
    # Alternating lengths would need a call per row: one segment, the whole batch, instead.
    assert ragged_segments([0, 1000, 0, 1000, 0, 1000], 1100, max_segments=4) == [(0, 6, 0)]
