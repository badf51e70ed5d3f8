"""A stand-in engine that costs nothing: Sluice's own ceiling behind a simulated GPU.

Its steps follow the simulated GPU's clock (``gpu_clock``), ``SLUICE_GPU_SIM_STEP_MS`` each and,
overlapped, back to back while sequences run (a sleep: the GIL is free, as while a GPU computes; a
GPU with the next step queued does not wait for the host), and at each step's end every running
sequence gets its next token (``successors``), handed over in one ``publish`` as a real engine
hands its steps, so all of Sluice's per-token work runs for real: the text stage, encoding, the
socket writes, HTTP. A request submitted before a step starts gets its first token at that
step's end (its "prefill"). No scheduler, no KV cache, no sampling: whatever rate the server then
delivers below ``streams * 1000 / S`` tokens/s is the host path's own cost.

Patched in for ``sluice.engines.registry.build_engine`` by ``activation`` when the benchmark sets
``SLUICE_GPU_SIM_STANDIN=1``; never part of the production code.
"""

from __future__ import annotations

import collections
import time

from bench.gpu_sim.gpu_clock import GpuClock, overlapped_from_environ
from bench.gpu_sim.steps import StepLog
from bench.gpu_sim.successors import table_for
from bench.gpu_sim.vllm_hook import step_seconds


def patch_registry(module) -> None:
    module.build_engine = build_standin


def build_standin(config):
    """``engines.registry.build_engine``'s stand-in: the tokenizer and limits of the model, no
    weights loaded."""
    from transformers import AutoConfig, AutoTokenizer

    from sluice.engines.base import EngineBuild

    tokenizer = AutoTokenizer.from_pretrained(config.model_id)
    model_config = AutoConfig.from_pretrained(config.model_id)
    limits = config.token_limits(model_config.max_position_embeddings)
    eos = frozenset([tokenizer.eos_token_id])
    engine = StandInEngine(tokenizer, table_for(config.model_id, model_config.vocab_size), eos, step_seconds()).start()
    return EngineBuild(engine, tokenizer, limits, model_config.vocab_size, eos, "simulated")


def _engine_base():
    from sluice.engines.base import LoopThread

    return LoopThread


class StandInEngine(_engine_base()):
    name = "gpu-sim-standin"

    def __init__(self, tokenizer, successors: list[int], eos_token_ids: frozenset[int], step_s: float):
        from sluice.engines.base import EngineStats, SequenceMaker

        super().__init__("sluice-standin")
        self.tokenizer = tokenizer
        self._maker = SequenceMaker(tokenizer, eos_token_ids, frozenset(tokenizer.all_special_ids))
        self._successors = successors
        self.eos_token_ids = eos_token_ids
        self._step_s = step_s
        self._clock = GpuClock(step_s, overlapped_from_environ())
        self._stats = EngineStats()
        self._incoming: collections.deque = collections.deque()
        self._live: list = []
        self._log = StepLog()

    def describe(self) -> dict:
        return {"engine": self.name, "model_dtype": "none", "model_device_type": "simulated",
                "step_ms": self._step_s * 1000}

    @staticmethod
    def check_request(request) -> None:
        """Everything a client may ask is accepted: the stand-in only measures the host path."""

    def deliver_to(self, sink) -> None:
        self._maker.sink = sink

    @property
    def stats(self):
        self._stats.queue_size = len(self._incoming)
        self._stats.batch_size = len(self._live)
        return self._stats

    steps_on_this_cpu = False  # its "steps" are sleeps: deliver beside them, as for a GPU

    def submit(self, valid, seed=None):
        sequence = self._maker.new(valid, seed)
        with self._wakeup:
            self._incoming.append(sequence)
            self._wakeup.notify()
        return sequence

    def _loop(self) -> None:
        from sluice.engines.base import Choice

        while True:
            with self._wakeup:
                while not self._stopped and not self._incoming and not self._live:
                    self._wakeup.wait()
                if self._stopped:
                    return
                newcomers = list(self._incoming)
                self._incoming.clear()
            # The GPU's clock (``gpu_clock``): overlapped, the steps of running sequences follow
            # each other back to back, as a GPU runs them with the next one queued, and the
            # stand-in's own bookkeeping delays the next step only where it outlasts one.
            started, ended = self._clock.run_step(continuing=bool(self._live))
            self._log.record(started, ended, len(self._live) + len(newcomers))
            for sequence in newcomers:
                sequence.started_at = time.monotonic()
            step, running = [], []
            for sequence in self._live + newcomers:
                if sequence.stopped:
                    continue
                last = sequence.generated_ids[-1] if sequence.generated_ids else sequence.valid.input_ids[-1]
                choice = Choice(self._successors[last], 0.0)
                step.append((sequence, [choice]))
                if sequence.take(choice):
                    self._stats.finished_total += 1
                else:
                    running.append(sequence)
            self._live = running
            if step:
                self._maker.sink.publish(step)
