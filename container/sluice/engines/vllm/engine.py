"""The vLLM engine behind Sluice's protocol: vLLM schedules and samples, Sluice speaks TGI.

The same contract as the native engine for the service: ``submit`` returns a ``Sequence`` whose
tokens reach the sink one step at a time. Only token ids and log-probabilities come back from
vLLM (``detokenize=False``); Sluice's own text stage (``text.sequence_text``, run by the
serving's delivery) turns them into text and finish reasons, so streamed text equals
non-streamed text byte for byte and ``details`` have the native engine's shape.

Sluice talks to vLLM's engine core through its client (``LLMEngine.engine_core``) and reads its
raw per-step outputs (``outputs``) rather than ``LLMEngine.step()``'s, whose output processor
builds a ``RequestOutput`` (and a ``Logprob`` dict per token) for every request at every step
only for Sluice to take the ids back out. Two layouts, as vLLM's
``VLLM_ENABLE_V1_MULTIPROCESSING`` says (``build`` chooses):

- the engine core in its own process, vLLM's multiprocess client (the layout on CUDA): it steps
  on its own, so the GPU's next step overlaps everything Sluice does with the last one. Requests
  and aborts are sent from the calling thread (under a lock: the client's socket is not
  thread-safe); this engine's thread receives each step's outputs and publishes them;
- the engine core in this process: this engine's thread owns it and steps it while requests run;
  requests, aborts and adapter calls are queued for that thread.

LoRA adapters (``adapters``): vLLM's ``LoRARequest`` per request; adding, pinning and removing one
goes to the engine core under the same lock (or, in process, through the engine's thread). On
vLLM's CPU build base and adapter requests never share a step: a request of the other kind waits
(in arrival order) until the running ones are done.

vLLM itself is imported by ``build`` and inside this module's functions, so nothing imports it
unless the engine is selected.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from concurrent.futures import Future
from typing import Callable

from ...errors import AdapterNotFoundError, ConflictError, GenerationError
from ...request import (
    AdapterRef,
    AdapterSpec,
    ValidRequest,
)
from ...text.events import Token
from ..base import EngineStats, Sequence, SequenceMaker, StepSink
from .adapters import VllmAdapters, batch_kind, refused_by_vllm
from .outputs import PromptLogprobs, choices_from
from .params import ENGINE_NAME, check_request, sampling_params

log = logging.getLogger("sluice.vllm_engine")

CONTROL_SECONDS = 120  # how long a request thread waits for vLLM to load an adapter


class VllmEngine:
    name = ENGINE_NAME

    def __init__(self, llm, tokenizer, eos_token_ids: frozenset[int], special_ids: frozenset[int],
                 description: dict, vocab_size: int, in_process: bool, adapters: VllmAdapters | None = None):
        """``llm``: a started ``vllm.v1.engine.llm_engine.LLMEngine`` (its input processor and
        engine-core client are used); ``in_process``: its engine core runs in this process;
        ``vocab_size``: the width of its logits (grammar masks cover it); ``adapters``: None when
        LoRA is off."""
        self._llm = llm
        self._adapters = adapters
        self._control: collections.deque[tuple[Callable, Future]] = collections.deque()  # in process: adapter calls
        self._waiting: collections.deque = collections.deque()  # (sequence, request) waiting for their turn
        self._core = llm.engine_core
        self._in_process = in_process
        self.vocab_size = vocab_size
        self.tokenizer = tokenizer
        self._sequences = SequenceMaker(tokenizer, eos_token_ids, special_ids)
        self._text = self._sequences.text
        self.eos_token_ids = eos_token_ids
        self.special_ids = special_ids
        self._description = dict(description, engine=self.name)
        self._stats = EngineStats()
        self._running = 0  # requests vLLM's scheduler ran at its last step
        self._tasks = llm.get_supported_tasks()
        self._live: dict[str, Sequence] = {}  # vLLM's request id -> its sequence
        self._request_ids: dict[int, str] = {}  # sequence id -> vLLM's request id
        self._prompt_logprobs: dict[str, PromptLogprobs] = {}
        self._lock = threading.Lock()  # the engine-core client and the maps: one thread at a time
        self._wakeup = threading.Condition(self._lock)  # in process: the loop waits for work
        self._incoming: collections.deque = collections.deque()  # in process: adds and aborts
        self._stopped = False
        self._dead: Exception | None = None
        self._thread = threading.Thread(target=self._run, name="sluice-vllm", daemon=True)

    def start(self) -> "VllmEngine":
        self._thread.start()
        return self

    # --- the interface the service uses -------------------------------------------------------

    def describe(self) -> dict:
        """What /info reports of the engine (name, dtype, device, batch limits)."""
        return dict(self._description)

    check_request = staticmethod(check_request)

    def deliver_to(self, sink: StepSink) -> None:
        self._sequences.sink = sink

    @property
    def steps_on_this_cpu(self) -> bool:
        """In this process on the CPU, vLLM's forward pass is OpenMP work here."""
        return self._in_process and self._description.get("model_device_type") == "cpu"

    def healthy(self) -> bool:
        return self._thread.is_alive() and self._dead is None

    def close(self, timeout: float) -> bool:
        """The worker is exiting. An engine core of its own process is shut down (the worker ends
        with ``os._exit``: nothing else would stop it). One in this process is not: its shutdown
        takes over a second on CPU (gc, distributed teardown) and frees nothing the exit does not."""
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify()
        if not self._in_process:
            try:
                self._core.shutdown(timeout=timeout)
            except Exception:
                log.exception("shutting vLLM's engine core down failed")
            return True
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def end_session(self, session_id: str) -> None:
        """Nothing to release: vLLM has no API to pin a session's blocks (its automatic prefix
        caching keeps them while they are not needed for others; see docs/engines.md)."""

    @property
    def stats(self) -> EngineStats:
        """TGI's gauges at scrape time: of the live requests, those vLLM's scheduler ran at its
        last step are the batch, the others (not yet reported on) wait."""
        with self._lock:
            live = list(self._live.values())
        self._stats.batch_size = min(len(live), self._running)
        self._stats.queue_size = len(live) - self._stats.batch_size + len(self._waiting)
        self._stats.batch_tokens = sum(s.valid.input_length + len(s.generated_ids) for s in live)
        return self._stats

    def submit(self, valid: ValidRequest, seed: int | None = None) -> Sequence:
        """Queue a validated request; its tokens reach the sink one step at a time."""
        sequence = self._sequences.new(valid, seed)
        try:
            request = self._request(sequence)
        except AdapterNotFoundError as error:
            sequence.fail(error)
            return sequence
        except Exception as error:  # vLLM refused this one request
            log.exception("vLLM refused request %d", sequence.id)
            sequence.fail(GenerationError(str(error) or type(error).__name__))
            return sequence
        refused = None
        with self._wakeup:
            if self._in_process:
                self._incoming.append((sequence, request))
                self._wakeup.notify()
            else:
                refused = self._add(sequence, request)
        if refused is not None:  # outside the lock: the sink may call back into this engine
            sequence.fail(refused)
        return sequence

    def cancel(self, sequence: Sequence) -> None:
        """Its client left: vLLM's request is aborted now."""
        sequence.cancel()
        if self._abort(sequence):
            log.info("sequence %d cancelled (client disconnected) after %d tokens; vLLM request aborted",
                     sequence.id, len(sequence.generated_ids))

    def release(self, sequence: Sequence) -> None:
        """Its text finished first (a stop sequence): vLLM's request is aborted now."""
        sequence.release()
        self._abort(sequence)

    # --- adapters --------------------------------------------------------------------------------

    def add_adapter(self, spec: AdapterSpec) -> dict:
        """Sluice's check, then vLLM's ``add_lora`` (and ``pin_lora``) when it is to be loaded now."""
        if self._adapters is None:
            raise ConflictError(f"LoRA adapters are off on the {ENGINE_NAME} engine: start it with "
                                "MAX_LORA_ADAPTERS > 0 (or LORA_ADAPTERS)")
        facts = self._adapters.check(spec)
        self._adapters.remember(spec)
        if not (spec.preload or spec.pinned):
            return dict(facts, loaded=False)
        request = self._adapters.lora_request(spec.ref)
        try:
            loaded = self._call(lambda llm: llm.add_lora(request) and (not spec.pinned or llm.pin_lora(spec.ref.uid)))
        except Exception as error:
            self._adapters.forget(spec.ref)
            log.exception("vLLM refused adapter %s", spec.ref.name)
            raise refused_by_vllm(spec.ref.name, error) from None
        return dict(facts, loaded=bool(loaded))

    def remove_adapter(self, ref: AdapterRef) -> None:
        if self._adapters is not None:
            self._adapters.forget(ref)
            self._call(lambda llm: llm.remove_lora(ref.uid))

    def adapter_loaded(self, ref: AdapterRef) -> bool:
        return self._adapters is not None and ref.uid in self._call(lambda llm: llm.list_loras())

    def _call(self, call: Callable, timeout: float = CONTROL_SECONDS):
        """``call(llm)`` on vLLM's engine: under the lock with the engine core in its own process
        (a utility call over the client's socket), else by this engine's thread between steps."""
        if not self._in_process:
            with self._lock:
                return call(self._llm)
        future: Future = Future()
        with self._wakeup:
            self._control.append((call, future))
            self._wakeup.notify()
        return future.result(timeout)

    def _run_calls(self) -> None:
        """In process, under the lock: the queued adapter calls."""
        while self._control:
            call, future = self._control.popleft()
            try:
                future.set_result(call(self._llm))
            except Exception as error:  # handed to the request thread that asked
                future.set_exception(error)

    # --- requests in -----------------------------------------------------------------------------

    def _request(self, sequence: Sequence):
        """The engine-core request of a sequence: its token ids, sampling parameters and adapter,
        under vLLM's own request id (the sequence id and a random suffix)."""
        from vllm.inputs import TokensPrompt

        params = sampling_params(sequence.valid, sequence.seed, self.eos_token_ids)
        adapter = sequence.valid.adapter
        try:
            lora = self._adapters.lora_request(adapter) if self._adapters is not None else None
        except KeyError:
            raise AdapterNotFoundError(adapter.name, "the request (unregistered while it waited)") from None
        inputs = self._llm.input_processor
        prompt = TokensPrompt(prompt_token_ids=list(sequence.valid.input_ids))
        request = inputs.process_inputs(str(sequence.id), prompt, params, supported_tasks=self._tasks,
                                        lora_request=lora)
        inputs.assign_request_id(request)
        return request

    def _waits_for_its_turn(self, sequence: Sequence) -> bool:
        """On vLLM's CPU build base and adapter requests never share a batch (``adapters``)."""
        if self._adapters is None or not self._adapters.separate_base or not self._live:
            return False
        return batch_kind(next(iter(self._live.values()))) != batch_kind(sequence)

    def _admit_waiting(self) -> list[tuple[Sequence, GenerationError]]:
        """Under the lock, in the thread that may add requests: those whose turn has come."""
        refused = []
        while self._waiting and not self._waits_for_its_turn(self._waiting[0][0]):
            sequence, request = self._waiting.popleft()
            if (error := self._add_now(sequence, request)) is not None:
                refused.append((sequence, error))
        return refused

    def _add(self, sequence: Sequence, request) -> GenerationError | None:
        """Under the lock: hand vLLM the request, or keep it waiting for its turn behind those
        that came first; the error to fail it with, once the lock is released, if vLLM refused it."""
        if self._waiting or self._waits_for_its_turn(sequence):
            self._waiting.append((sequence, request))
            return None
        return self._add_now(sequence, request)

    def _add_now(self, sequence: Sequence, request) -> GenerationError | None:
        """Under the lock: hand vLLM the request (not if it was cancelled meanwhile)."""
        if sequence.stopped:
            return None
        rid = request.request_id
        if sequence.valid.request.decoder_input_details:
            self._prompt_logprobs[rid] = PromptLogprobs(sequence.valid.input_length)
        sequence.started_at = time.monotonic()
        self._live[rid] = sequence
        self._request_ids[sequence.id] = rid
        try:
            self._core.add_request(request)
        except Exception as error:
            self._forget(rid, sequence)
            log.exception("vLLM refused request %s", rid)
            return GenerationError(str(error) or type(error).__name__)
        return None

    def _abort(self, sequence: Sequence) -> bool:
        """vLLM's request of a stopped sequence is aborted; False if it had none running."""
        with self._wakeup:
            rid = self._request_ids.get(sequence.id)
            if rid is None:
                return False
            self._forget(rid, sequence)
            if self._in_process:
                self._incoming.append((rid, None))  # the loop thread aborts it
                self._wakeup.notify()
                refused = []
            else:
                self._core.abort_requests([rid])
                refused = self._admit_waiting()
        for waiting, error in refused:  # outside the lock: the sink may call back in
            waiting.fail(error)
        return True

    def _forget(self, rid: str, sequence: Sequence) -> None:
        self._live.pop(rid, None)
        self._request_ids.pop(sequence.id, None)
        self._prompt_logprobs.pop(rid, None)

    # --- outputs out -----------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                outputs = self._next_outputs()
                if outputs is None:
                    return
                self._publish(outputs)
        except Exception as error:  # the engine core died or failed: every answer ends
            if self._stopped:
                return
            log.exception("vLLM's engine core failed")
            self._dead = error
            with self._lock:
                live, self._live = list(self._live.values()), {}
                live += [sequence for sequence, _ in self._waiting]
                self._waiting.clear()
                self._request_ids.clear()
            self._sequences.sink.fail(live, GenerationError(str(error) or type(error).__name__))

    def _next_outputs(self):
        """One step's outputs: from the engine-core process, or by stepping it here; None once
        stopped."""
        if not self._in_process:
            return None if self._stopped else self._core.get_output()
        while True:
            refused = []
            with self._wakeup:
                while not self._stopped and not self._incoming and not self._live and not self._control:
                    self._wakeup.wait()
                if self._stopped:
                    return None
                self._run_calls()
                pending, self._incoming = list(self._incoming), collections.deque()
                aborts = [rid for rid, request in pending if request is None]
                if aborts:
                    self._core.abort_requests(aborts)
                for sequence, request in pending:
                    if request is not None and (error := self._add(sequence, request)) is not None:
                        refused.append((sequence, error))
                refused += self._admit_waiting()
                running = bool(self._live)
            for sequence, error in refused:  # outside the lock: the sink may call back in
                sequence.fail(error)
            if running:
                return self._core.get_output()

    def _publish(self, outputs) -> None:
        """One step of vLLM's: every live sequence's new tokens to the sink in one call."""
        step, ended = [], []
        for output in outputs.outputs:
            rid = output.request_id
            sequence = self._live.get(rid)
            if sequence is None:
                continue  # aborted meanwhile
            prompt = self._prompt_logprobs.get(rid)
            if prompt is not None and output.new_prompt_logprobs_tensors is not None:
                prompt.add(output.new_prompt_logprobs_tensors)
            if output.prefill_stats is not None and output.prefill_stats.num_cached_tokens:
                self._stats.prefix_cache_hits += 1  # vLLM's automatic prefix caching, in Sluice's counters
                self._stats.prefix_cache_hit_tokens += output.prefill_stats.num_cached_tokens
            if output.new_token_ids:
                if prompt is not None and not sequence.prefill:
                    sequence.prefill = self._prefill_tokens(sequence, prompt.values)
                choices = choices_from(output.new_token_ids, output.new_logprobs,
                                       sequence.valid.request.top_n_tokens)
                for choice in choices:
                    sequence.take(choice)
                step.append((sequence, choices))
            if output.finish_reason is not None:
                ended.append((rid, sequence, output.finish_reason))
        stats = outputs.scheduler_stats
        if stats is not None:
            self._running = stats.num_running_reqs
        if step:
            self._sequences.sink.publish(step)
        for rid, sequence, reason in ended:
            with self._lock:
                self._forget(rid, sequence)
            self._stats.finished_total += 1
            if not sequence.finished:  # Sluice's rules had not ended it: vLLM did (its context is full)
                sequence.fail(GenerationError(f"vLLM ended the request early ({reason})"))
        if ended and self._waiting:
            with self._lock:
                refused = self._admit_waiting()
            for sequence, error in refused:
                sequence.fail(error)

    def _prefill_tokens(self, sequence: Sequence, logprobs: list[float | None]) -> tuple[Token, ...]:
        return tuple(Token(token_id, self._text.token(token_id), logprobs[i] if i < len(logprobs) else None,
                           token_id in self.special_ids)
                     for i, token_id in enumerate(sequence.valid.input_ids))
