"""The vLLM engine behind Sluice's protocol: vLLM schedules and samples, Sluice speaks TGI.

The same contract as the native engine for the service: ``submit`` returns a ``Sequence`` whose
queue receives the same ``TokenEvent``s. Only token ids and log-probabilities come back from
vLLM (``detokenize=False``); Sluice's own detokenizer and stopping criteria turn them into text
and finish reasons, so streamed text equals non-streamed text byte for byte and ``details`` have
the embedded engine's shape. vLLM's ``LLMEngine`` is not thread-safe, so one thread owns it: it
adds submitted requests, aborts cancelled ones and those Sluice's stopping finished (a stop
sequence), and steps. vLLM itself is imported by ``build`` and inside this module's functions,
so nothing imports it unless the engine is selected.
"""

from __future__ import annotations

import collections
import json
import logging
import time
from concurrent.futures import Future
from typing import Callable

from ...errors import AdapterNotFoundError, ConflictError, GenerationError, ValidationError
from ...request import (
    COMPACT_JSON,
    JSON,
    LARK,
    REGEX,
    AdapterRef,
    AdapterSpec,
    GenerateRequest,
    GrammarSpec,
    ValidRequest,
)
from ...text.events import Token
from ..base import Choice, EngineStats, LoopThread, Sequence, SequenceMaker
from .adapters import VllmAdapters, batch_kind, refused_by_vllm

log = logging.getLogger("sluice.vllm_engine")

ENGINE_NAME = "vllm"
CONTROL_SECONDS = 120  # how long a request thread waits for the engine thread to load an adapter


def unsupported_parameter(request: GenerateRequest) -> tuple[str, object] | None:
    """The first TGI parameter vLLM has no equivalent for, with its value; None if all map."""
    sampling = request.sampling
    if sampling.do_sample and sampling.typical_p < 1.0:
        return "typical_p", sampling.typical_p
    if sampling.watermark:
        return "watermark", "true"
    return None


def check_request(request: GenerateRequest) -> None:
    """Refuse (422) what this engine would otherwise silently drop."""
    refused = unsupported_parameter(request)
    if refused is not None:
        name, value = refused
        raise ValidationError(f"`{name}` is not supported by the {ENGINE_NAME} engine "
                              f"(SLUICE_ENGINE={ENGINE_NAME}). Given: {value}")


def structured_output(spec: GrammarSpec) -> dict:
    """A Sluice grammar as vLLM's ``StructuredOutputsParams`` fields. vLLM's llguidance backend
    compiles them to the same grammar Sluice's compiler builds (a schema carries Sluice's compact
    JSON options in ``x-guidance``, which wins over vLLM's whitespace default)."""
    if spec.kind == JSON:
        return {"json": dict(json.loads(spec.source), **{"x-guidance": COMPACT_JSON})}
    if spec.kind == REGEX:
        return {"regex": spec.source}
    if spec.kind == LARK:
        return {"grammar": spec.source}
    raise ValueError(f"unknown grammar kind {spec.kind!r}")


def sampling_params(valid: ValidRequest, seed: int | None, stop_token_ids: frozenset[int]):
    """TGI parameters -> vLLM ``SamplingParams`` (greedy is temperature 0; stop strings stay
    with Sluice's stopping criteria, which see the text as the client will)."""
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    from vllm import SamplingParams

    request, s = valid.request, valid.request.sampling
    chosen = (dict(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, seed=seed)
              if s.do_sample else dict(temperature=0.0))
    return SamplingParams(
        **chosen, repetition_penalty=s.repetition_penalty, frequency_penalty=s.frequency_penalty,
        logit_bias=dict(s.logit_bias) or None,
        max_tokens=valid.max_new_tokens, stop_token_ids=sorted(stop_token_ids),
        logprobs=request.top_n_tokens,  # 0: the chosen token's log-probability only
        prompt_logprobs=0 if request.decoder_input_details else None,
        detokenize=False, skip_special_tokens=False, output_kind=RequestOutputKind.DELTA,
        structured_outputs=(StructuredOutputsParams(**structured_output(valid.grammar.spec))
                            if valid.grammar is not None else None))


def choice_from(token_id: int, logprobs, index: int, top_n: int) -> Choice:
    """One generated token as the embedded sampler reports it: its log-probability and the
    ``top_n`` most likely tokens, by vLLM's rank."""
    entry = logprobs[index] if logprobs and index < len(logprobs) else {}
    chosen = entry.get(token_id)
    ranked = sorted((lp.rank, tid, lp.logprob) for tid, lp in entry.items()
                    if lp.rank is not None and lp.rank <= top_n)
    return Choice(token_id, chosen.logprob if chosen is not None else 0.0,
                  tuple((tid, logprob) for _, tid, logprob in ranked[:top_n]))


def _vllm_gauge(name: str) -> int:
    """One of vLLM's own Prometheus gauges (summed over labels); 0 if it is not there."""
    try:
        from vllm.v1.metrics.reader import Gauge, get_metrics_snapshot

        return int(sum(m.value for m in get_metrics_snapshot() if m.name == name and isinstance(m, Gauge)))
    except Exception:  # metrics are best effort: never fail a scrape
        log.debug("reading vLLM's %s failed", name, exc_info=True)
        return 0


class VllmEngine(LoopThread):
    name = ENGINE_NAME

    def __init__(self, llm, tokenizer, eos_token_ids: frozenset[int], special_ids: frozenset[int],
                 description: dict, vocab_size: int, adapters: VllmAdapters | None = None):
        """``llm`` is a started ``vllm.v1.engine.llm_engine.LLMEngine``; ``vocab_size`` is the
        width of its logits (grammar masks cover it); ``adapters``: None when LoRA is off."""
        super().__init__("sluice-vllm")
        self._llm = llm
        self._adapters = adapters
        self._control: collections.deque[tuple[Callable, Future]] = collections.deque()  # calls on the LLMEngine
        self.vocab_size = vocab_size
        self.tokenizer = tokenizer
        self._sequences = SequenceMaker(tokenizer, eos_token_ids, special_ids)
        self._text = self._sequences.text
        self.eos_token_ids = eos_token_ids
        self.special_ids = special_ids
        self._description = dict(description, engine=self.name)
        self._stats = EngineStats()
        self._incoming: collections.deque[tuple[Sequence, object]] = collections.deque()
        self._live: dict[str, Sequence] = {}

    # --- the interface the service uses -------------------------------------------------------

    def describe(self) -> dict:
        """What /info reports of the engine (name, dtype, device, batch limits)."""
        return dict(self._description)

    check_request = staticmethod(check_request)

    def end_session(self, session_id: str) -> None:
        """Nothing to release: vLLM has no API to pin a session's blocks (its automatic prefix
        caching keeps them while they are not needed for others; see docs/engines.md)."""

    @property
    def stats(self) -> EngineStats:
        """TGI's gauges at scrape time: vLLM's scheduler says which live requests still wait.

        Only while requests are live: vLLM's gauges are written by ``step``, which stops with them.
        """
        live = len(self._live)
        waiting = min(live, _vllm_gauge("vllm:num_requests_waiting")) if live else 0
        self._stats.queue_size = len(self._incoming) + waiting
        self._stats.batch_size = live - waiting
        return self._stats

    def submit(self, valid: ValidRequest, seed: int | None = None) -> Sequence:
        """Queue a validated request; its events appear on the returned sequence's queue."""
        sequence = self._sequences.new(valid, seed)
        params = sampling_params(valid, sequence.seed, self.eos_token_ids)
        with self._wakeup:
            self._incoming.append((sequence, params))
            self._wakeup.notify()
        return sequence

    # --- adapters (request threads; vLLM's engine is only touched by the loop) ----------------

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
        """``call(llm)`` run by the loop thread between steps (vLLM's engine is not thread-safe)."""
        future: Future = Future()
        with self._wakeup:
            self._control.append((call, future))
            self._wakeup.notify()
        return future.result(timeout)

    def _run_calls(self) -> None:
        while self._control:
            call, future = self._control.popleft()
            try:
                future.set_result(call(self._llm))
            except Exception as error:  # handed to the request thread that asked
                future.set_exception(error)

    # --- the loop -------------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while not self._stopped and not self._incoming and not self._live and not self._control:
                    self._wakeup.wait()
                if self._stopped:  # the worker is exiting. vLLM's own engine-core shutdown is not
                    # called: it takes over a second on CPU (gc, distributed teardown) and frees
                    # nothing the exit does not; tensor-parallel workers end with this process.
                    return
                newcomers = list(self._incoming)
                self._incoming.clear()
            try:
                self._run_calls()
                self._add(newcomers)
                self._abort_cancelled()
                if self._live and not self._llm.has_unfinished_requests():
                    self._fail_all(GenerationError("vLLM no longer knows the running requests"))
                elif self._live:
                    self._deliver(self._llm.step())
                self._update_stats()
            except Exception as error:  # a failed step fails its sequences, not the server
                log.exception("vLLM step failed")
                self._fail_all(error)

    def _add(self, newcomers: list[tuple[Sequence, object]]) -> None:
        from vllm.inputs import TokensPrompt

        for index, (sequence, params) in enumerate(newcomers):
            if sequence.cancelled:
                self._note_cancelled(sequence)
                continue
            if self._waits_for_its_turn(sequence):  # it and those after it, in arrival order
                with self._wakeup:
                    self._incoming.extendleft(reversed(newcomers[index:]))
                return
            request_id = str(sequence.id)
            try:
                lora = self._adapters.lora_request(sequence.valid.adapter) if self._adapters is not None else None
            except KeyError:
                sequence.fail(AdapterNotFoundError(sequence.valid.adapter.name, "the request (unregistered "
                                                                                "while it waited)"))
                continue
            try:
                self._llm.add_request(request_id, TokensPrompt(prompt_token_ids=list(sequence.valid.input_ids)),
                                      params, lora_request=lora)
            except Exception as error:  # vLLM refused this one request
                log.exception("vLLM refused request %s", request_id)
                sequence.fail(GenerationError(str(error) or type(error).__name__))
                continue
            sequence.started_at = time.monotonic()
            self._live[request_id] = sequence

    def _waits_for_its_turn(self, sequence: Sequence) -> bool:
        """On vLLM's CPU build base and adapter requests never share a batch (``adapters``)."""
        if self._adapters is None or not self._adapters.separate_base or not self._live:
            return False
        return batch_kind(next(iter(self._live.values()))) != batch_kind(sequence)

    def _abort_cancelled(self) -> None:
        gone = [rid for rid, sequence in self._live.items() if sequence.cancelled]
        if not gone:
            return
        self._llm.abort_request(gone)
        for rid in gone:
            self._note_cancelled(self._live.pop(rid))

    def _note_cancelled(self, sequence: Sequence) -> None:
        log.info("sequence %d cancelled (client disconnected) after %d tokens; vLLM request aborted",
                 sequence.id, len(sequence.generated_ids))

    def _deliver(self, outputs) -> None:
        """Feed vLLM's new token ids through each sequence's own detokenizer and stopping."""
        for output in outputs:
            sequence = self._live.get(output.request_id)
            if sequence is None:
                continue
            if output.prompt_logprobs and not sequence.prefill:
                sequence.prefill = self._prefill_tokens(sequence, output.prompt_logprobs)
            if not sequence.generated_ids:
                self._count_prefix_hit(output)
            completion = output.outputs[0]
            top_n = sequence.valid.request.top_n_tokens
            for index, token_id in enumerate(completion.token_ids):
                if sequence.finished:
                    break
                sequence.add(choice_from(token_id, completion.logprobs, index, top_n))
            self._settle(output, sequence, completion.finish_reason)

    def _count_prefix_hit(self, output) -> None:
        """vLLM's automatic prefix caching, in Sluice's counters: the prompt tokens its first
        output says came from the cache."""
        cached = getattr(output, "num_cached_tokens", None) or 0
        if cached:
            self._stats.prefix_cache_hits += 1
            self._stats.prefix_cache_hit_tokens += cached

    def _settle(self, output, sequence: Sequence, vllm_reason) -> None:
        """Drop a finished sequence; abort vLLM's request if Sluice finished first."""
        rid = output.request_id
        if sequence.finished:
            del self._live[rid]
            self._stats.finished_total += 1
            if not output.finished:
                self._llm.abort_request([rid])
        elif output.finished:
            del self._live[rid]
            sequence.fail(GenerationError(f"vLLM ended the request early ({vllm_reason})"))

    def _prefill_tokens(self, sequence: Sequence, prompt_logprobs) -> tuple[Token, ...]:
        tokens = []
        for position, token_id in enumerate(sequence.valid.input_ids):
            entry = prompt_logprobs[position] if position < len(prompt_logprobs) else None
            logprob = entry[token_id].logprob if entry and token_id in entry else None
            tokens.append(Token(token_id, self._text.token(token_id), logprob, token_id in self.special_ids))
        return tuple(tokens)

    def _update_stats(self) -> None:
        self._stats.batch_tokens = sum(s.valid.input_length + len(s.generated_ids) for s in self._live.values())

    def _fail_all(self, error: Exception) -> None:
        failure = GenerationError(str(error) or type(error).__name__)
        try:
            self._llm.abort_request(list(self._live))
        except Exception:
            log.exception("aborting vLLM requests after a failure")
        for sequence in self._live.values():
            if not sequence.finished:
                sequence.fail(failure)
        self._live.clear()
        self._update_stats()
