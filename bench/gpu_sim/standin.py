"""A stand-in engine that costs nothing: Sluice's own ceiling behind a simulated GPU.

Each step waits ``SLUICE_GPU_SIM_STEP_MS`` (a sleep: the GIL is free, as while a GPU computes),
then hands every running sequence its next token (``successors``) through the same interface a
real engine uses, so all of Sluice's per-token work runs for real: detokenizer, stopping, events,
the request threads, encoding, HTTP. A request submitted before a step starts gets its first
token at that step's end (its "prefill"). No scheduler, no KV cache, no sampling: whatever rate
the server then delivers below ``streams * 1000 / S`` tokens/s is the host path's own cost.

Patched in for ``sluice.bootstrap.build_serving`` by ``activation`` when the benchmark sets
``SLUICE_GPU_SIM_STANDIN=1``; never part of the production code.
"""

from __future__ import annotations

import collections
import itertools
import time

from bench.gpu_sim.steps import StepLog
from bench.gpu_sim.successors import table_for
from bench.gpu_sim.vllm_hook import step_seconds


def patch_bootstrap(module) -> None:
    module.build_serving = build_standin_serving


def build_standin_serving(config):
    from transformers import AutoConfig, AutoTokenizer

    from sluice.bootstrap import Serving, make_service
    from sluice.serving.validation import Validator

    tokenizer = AutoTokenizer.from_pretrained(config.model_id)
    model_config = AutoConfig.from_pretrained(config.model_id)
    limits = config.token_limits(model_config.max_position_embeddings)
    engine = StandInEngine(tokenizer, table_for(config.model_id, model_config.vocab_size),
                           frozenset([tokenizer.eos_token_id]), step_seconds()).start()
    validator = Validator(tokenizer, limits, config.default_max_new_tokens, check=engine.check_request)
    return Serving(make_service(config, engine, validator, None), "gpu-sim-standin")


def _engine_base():
    from sluice.engine.loop_thread import LoopThread

    return LoopThread


class StandInEngine(_engine_base()):
    name = "gpu-sim-standin"

    def __init__(self, tokenizer, successors: list[int], eos_token_ids: frozenset[int], step_s: float):
        from sluice.engine.batching import EngineStats
        from sluice.text.token_text import TokenText

        super().__init__("sluice-standin")
        self.tokenizer = tokenizer
        self._text = TokenText(tokenizer)
        self._successors = successors
        self.eos_token_ids = eos_token_ids
        self.special_ids = frozenset(tokenizer.all_special_ids)
        self._step_s = step_s
        self._stats = EngineStats()
        self._incoming: collections.deque = collections.deque()
        self._live: list = []
        self._ids = itertools.count(1)
        self._log = StepLog()

    def describe(self) -> dict:
        return {"engine": self.name, "model_dtype": "none", "model_device_type": "simulated",
                "step_ms": self._step_s * 1000}

    @staticmethod
    def check_request(request) -> None:
        """Everything a client may ask is accepted: the stand-in only measures the host path."""

    @property
    def stats(self):
        self._stats.queue_size = len(self._incoming)
        self._stats.batch_size = len(self._live)
        return self._stats

    def submit(self, valid, seed=None):
        from sluice.engine.vllm_engine import SeedInfo
        from sluice.engine.sequence import Sequence
        from sluice.text.detokenizer import IncrementalDetokenizer
        from sluice.text.stopping import StoppingCriteria

        sequence = Sequence(
            valid=valid, sampler=SeedInfo(valid.request.sampling, seed),
            detokenizer=IncrementalDetokenizer(self._text.decode, valid.input_ids),
            stopping=StoppingCriteria(self.eos_token_ids, valid.request.stop, valid.max_new_tokens),
            special_ids=self.special_ids, token_text=self._text.token, id=next(self._ids))
        with self._wakeup:
            self._incoming.append(sequence)
            self._wakeup.notify()
        return sequence

    def _loop(self) -> None:
        from sluice.engine.sampling import Choice

        while True:
            with self._wakeup:
                while not self._stopped and not self._incoming and not self._live:
                    self._wakeup.wait()
                if self._stopped:
                    return
                newcomers = list(self._incoming)
                self._incoming.clear()
            started = time.time()
            time.sleep(self._step_s)
            self._log.record(started, time.time(), len(self._live) + len(newcomers))
            for sequence in newcomers:
                sequence.started_at = time.monotonic()
            running = []
            for sequence in self._live + newcomers:
                if sequence.cancelled:
                    continue
                last = sequence.generated_ids[-1] if sequence.generated_ids else sequence.valid.input_ids[-1]
                sequence.add(Choice(self._successors[last], 0.0))
                if sequence.finished:
                    self._stats.finished_total += 1
                else:
                    running.append(sequence)
            self._live = running
