"""The native engine: one thread that owns the model and steps every running sequence together.

Continuous batching at the iteration level, as TGI does it: requests wait in arrival order;
whenever they fit the KV budget they are prefilled together, in chunks of at most
``max_batch_prefill_tokens``, each in the forward pass of a decode step of the running batch
(``fused_pass``; in turns with decode steps where the model cannot fuse them: the ``scheduler``
decides), and join the running batch once their prompt is in; finished or cancelled sequences
leave the batch at once. Request threads only
``submit`` and read their sequence's event queue, so the model is never touched by two threads.

A request that runs in a stateful session leaves its conversation (prompt and answer) pinned in
the prefix cache when it finishes, so the session's next turn prefills only what is new. Every
entry, pinned or not, is keyed by the LoRA adapter its KV was computed with (None: the base), so a
turn only reuses KV of its own adapter.

Failures stay as small as they can: a row whose sampling fails leaves the batch alone, a prefill
group that fails takes only its newcomers (a failed fused pass undoes its writes to the running
batch's cache), and only a failed decode forward pass, which every
row shares, fails the whole batch. Clients get a fixed text; the exception goes to the log.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import torch

from ...errors import ConflictError, GenerationError
from ...request import AdapterRef, AdapterSpec, ValidRequest
from ...text.events import Token
from ..base import EngineStats, LoopThread, Sequence, SequenceMaker, StepSink, draw_seed
from .adapters import NativeAdapters
from .constraint import MaskBuilder, RowConstraint
from .kv_batch import KVBatch, cache_from_columns, concatenate
from .lora import LoadedLora
from .model_runner import ModelRunner, PrefillJob
from .prefix_cache import Hit, PrefixCache
from .prefix_keeper import PrefixKeeper
from .sampling import Selection, SequenceSampler, choose_tokens
from .scheduler import Scheduler, SchedulerBudget, group_by_length
from .watermark import Watermark

log = logging.getLogger("sluice.engine")

STEP_FAILED = "the model step failed"
ROW_FAILED = "choosing the next token failed"


@dataclass
class NativeSequence(Sequence):
    """A sequence with what this engine steps it with: its own sampler (its draws are its own,
    whatever its batch) and, for a constrained request, its grammar state."""

    sampler: SequenceSampler = field(kw_only=True)
    constraint: RowConstraint | None = field(default=None, kw_only=True)
    lora: LoadedLora | None = field(default=None, kw_only=True)  # its adapter's weights, once admitted


class NativeEngine(LoopThread):
    name = "sluice"

    def __init__(self, runner: ModelRunner, tokenizer, budget: SchedulerBudget,
                 eos_token_ids: frozenset[int], special_ids: frozenset[int],
                 prefix_cache: PrefixCache | None = None, adapters: NativeAdapters | None = None,
                 watermark: Watermark | None = None):
        super().__init__("sluice-engine")
        self._adapters = adapters  # None: no LoRA adapters (MAX_LORA_ADAPTERS=0)
        self.runner = runner
        self._watermark = watermark or Watermark()
        # What request threads ask of the prefix cache, which only the engine thread touches.
        self._cache_chores: collections.deque[Callable[[PrefixCache], None]] = collections.deque()
        self.tokenizer = tokenizer
        self._sequences = SequenceMaker(tokenizer, eos_token_ids, special_ids)
        self._text = self._sequences.text
        self.budget = budget
        self.eos_token_ids = eos_token_ids
        self.special_ids = special_ids
        self.stats = EngineStats(prefix_cache_capacity_tokens=prefix_cache.budget_tokens if prefix_cache else 0)
        # The prefix cache's bookkeeping, on the engine thread only.
        self._prefixes = PrefixKeeper(prefix_cache, self.stats) if prefix_cache is not None else None
        self._scheduler = Scheduler(budget)
        self._waiting = self._scheduler.waiting  # guarded by _wakeup: request threads append
        self._prefilling: collections.deque[tuple[list[NativeSequence], PrefillJob]] = collections.deque()
        self._last_was_prefill = False
        self._running: list[NativeSequence] = []
        self._batch: KVBatch | None = None
        self._masks: MaskBuilder | None = None  # built on the first constrained request

    def submit(self, valid: ValidRequest, seed: int | None = None) -> NativeSequence:
        """Queue a validated request; its tokens go to the sink, one step at a time."""
        sampling = valid.request.sampling
        seed = draw_seed(sampling, seed)
        sequence = self._sequences.new(
            valid, seed, NativeSequence,
            sampler=SequenceSampler(sampling, self.runner.device, seed, watermark=self._watermark),
            constraint=RowConstraint(valid.grammar.new_matcher()) if valid.grammar else None)
        with self._wakeup:
            self._waiting.append(sequence)
            self.stats.queue_size = len(self._waiting)
            self._wakeup.notify()
        return sequence

    def deliver_to(self, sink: StepSink) -> None:
        """``GenerationEngine``: where every later step goes."""
        self._sequences.sink = sink

    @property
    def steps_on_this_cpu(self) -> bool:
        """``GenerationEngine``: on the CPU a step is this process's OpenMP work."""
        return self.runner.device.type == "cpu"

    def describe(self) -> dict:
        """What /info reports of the engine, so routes never reach into the runner."""
        return {"engine": self.name,
                "model_dtype": str(getattr(self.runner.model, "dtype", "")).replace("torch.", ""),
                "model_dtype_reason": self.runner.dtype_reason,
                "model_linear_kernels": self.runner.linear_kernels,
                "fused_prefill": self.runner.fused_pass,
                "model_device_type": self.runner.device.type,
                "max_batch_total_tokens": self.budget.max_batch_total_tokens,
                "max_batch_prefill_tokens": self.budget.max_batch_prefill_tokens,
                "max_batch_size": self.budget.max_batch_size,
                "max_lora_adapters": self._adapters.bank.capacity if self._adapters is not None else 0}

    @staticmethod
    def check_request(request) -> None:
        """Every TGI parameter is implemented by this engine: nothing to refuse."""

    # --- adapters (request threads) -------------------------------------------------------------

    def add_adapter(self, spec: AdapterSpec) -> dict:
        """Check a LoRA directory against the model and register it (a 424 if it does not fit)."""
        if self._adapters is None:
            raise ConflictError("LoRA adapters are off (MAX_LORA_ADAPTERS=0)")
        return self._adapters.add(spec)

    def remove_adapter(self, ref: AdapterRef) -> None:
        """Forget an adapter; rows running with it finish first. Its prefix-cache entries go too
        (sessions' pins included): no request can name this registration again."""
        if self._adapters is not None:
            self._adapters.remove(ref)
            self._ask_cache(lambda cache: cache.forget(ref))

    def adapter_loaded(self, ref: AdapterRef) -> bool:
        return self._adapters is not None and self._adapters.is_loaded(ref)

    # --- sessions (request threads) -------------------------------------------------------------

    def end_session(self, session_id: str) -> None:
        """Unpin a closed session's conversation."""
        self._ask_cache(lambda cache: cache.release(session_id))

    def forget_warmup(self, timeout: float = 10.0) -> None:
        """Drop what the warm-up (``warmup``) left, once the engine has run its sequences: its
        prompts' prefix-cache entries (every base-model entry: nothing else has run yet) and its
        counts, so ``/metrics`` starts from zero. Returns once the engine thread has done it."""
        done = threading.Event()

        def forget(cache: PrefixCache) -> None:
            cache.forget(None)
            self._reset_counts()
            done.set()

        if self._prefixes is None:
            self._reset_counts()
            return
        self._ask_cache(forget)
        done.wait(timeout)

    def _reset_counts(self) -> None:
        stats = self.stats
        stats.finished_total = stats.failed_total = stats.prefix_cache_hits = stats.prefix_cache_hit_tokens = 0

    def _ask_cache(self, chore: Callable[[PrefixCache], None]) -> None:
        """Have the engine thread (which owns the prefix cache) run ``chore`` on it."""
        if self._prefixes is None:
            return
        with self._wakeup:
            self._cache_chores.append(chore)
            self._wakeup.notify()

    # --- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while (not self._stopped and not self._waiting and not self._running and not self._prefilling
                       and not self._cache_chores):
                    self._wakeup.wait()
                if self._stopped:
                    return
                newcomers = [] if self._prefilling else self._admit()
                chores = list(self._cache_chores)
                self._cache_chores.clear()
            if self._prefixes is not None:
                self._prefixes.run(chores)
            self._begin_prefills(newcomers)
            try:
                self._drop_cancelled()
                step = self._scheduler.next_pass(
                    bool(self._prefilling), bool(self._running), self._last_was_prefill,
                    bool(self._prefilling) and self.runner.can_fuse(self._prefilling[0][1]))
                if step == "fused":
                    self._fused_step()
                elif step == "prefill":
                    self._prefill_step()
                elif step == "decode":
                    self._decode_step()
            except Exception:  # the shared decode pass failed: every row with it, not the server
                log.exception("generation step failed; failing the running batch")
                self._fail_all()

    def _admit(self) -> list[NativeSequence]:
        """Waiting sequences that fit now, in arrival order; caller holds the lock."""
        gate = self._adapters.admission_gate(self._running) if self._adapters is not None else None
        admitted, cancelled = self._scheduler.admit(self._running, gate)
        for sequence in cancelled:
            self._note_cancelled(sequence)
        self.stats.queue_size = len(self._waiting)
        return admitted

    def _row_adapters(self) -> list[LoadedLora | None] | None:
        """The running rows' adapters, in batch order; None when every row runs the base model."""
        if self._adapters is None:
            return None
        adapters = [s.lora for s in self._running]
        return adapters if any(a is not None for a in adapters) else None

    def _drop_cancelled(self) -> None:
        # Read each flag once: a request thread may cancel between two reads, and a row noted as
        # cancelled but kept would be stepped, and noted, again.
        cancelled = [s.stopped for s in self._running]  # cancelled, or released by its text
        if not any(cancelled):
            return
        for sequence, gone in zip(self._running, cancelled, strict=True):
            if gone and sequence.cancelled:
                self._note_cancelled(sequence)
        self._retain([i for i, gone in enumerate(cancelled) if not gone])

    def _note_cancelled(self, sequence: NativeSequence) -> None:
        log.info("sequence %d cancelled (client disconnected) after %d tokens; slot freed",
                 sequence.id, len(sequence.generated_ids))

    def _retain(self, keep: list[int]) -> None:
        self._running = [self._running[i] for i in keep]
        self._batch = self._batch.filter(keep) if keep else None
        self._update_batch_stats()

    def _update_batch_stats(self) -> None:
        self.stats.batch_size = len(self._running)
        self.stats.batch_tokens = self._batch.size * self._batch.columns if self._batch else 0

    def _begin_prefills(self, newcomers: list[NativeSequence]) -> None:
        """Queue the newcomers' prefill jobs: one per cached-prefix hit, one per group of
        similar lengths for the rest."""
        now, cold = time.monotonic(), []
        for sequence in newcomers if self._adapters is None else self._adapters.take(newcomers):
            sequence.started_at = now
            hit = self._prefixes.hit(sequence) if self._prefixes is not None else None
            if hit is None:
                cold.append(sequence)
            else:
                self._queue_prefill([sequence], hit)
        for group in group_by_length(cold):
            self._queue_prefill(group)

    def _queue_prefill(self, group: list[NativeSequence], hit: Hit | None = None) -> None:
        try:
            wants_prompt = any(s.valid.request.decoder_input_details for s in group)
            cache = cache_from_columns(hit.entry.payload, hit.length) if hit else None
            adapters = [s.lora for s in group] if any(s.lora is not None for s in group) else None
            self._prefilling.append((group, self.runner.begin_prefill(
                [s.valid.input_ids for s in group], wants_prompt, cache=cache, done=hit.length if hit else 0,
                adapters=adapters)))
        except Exception:
            log.exception("prefill of %d sequences failed; the running batch continues", len(group))
            self._fail(group, STEP_FAILED)
            return
        if hit is not None:
            self.stats.prefix_cache_hits += 1
            self.stats.prefix_cache_hit_tokens += hit.length

    def _prefill_step(self) -> None:
        """One chunk of the oldest prefill job; a finished job's rows join the running batch.

        The job owns a fresh cache, so its failure fails its newcomers only.
        """
        group, job = self._prefilling[0]
        self._last_was_prefill = True
        try:
            self.runner.prefill_chunk(job, self._scheduler.chunk_stop(job.done, job.width, job.rows))
        except Exception:
            self._fail_prefill(group, job)
            return
        self._join_if_complete(group, job)

    def _fused_step(self) -> None:
        """A decode step of the running batch with the oldest job's next chunk in the same pass.

        A failed pass leaves the running batch's cache as it was (the runner undoes its writes),
        so, as with a separate chunk, only the newcomers fail; a fault of the running rows
        themselves then shows in the next decode step, which fails the batch.
        """
        group, job = self._prefilling[0]
        try:
            logits = self.runner.fused_step(self._batch, job, self._scheduler.chunk_stop(job.done, job.width, job.rows),
                                            self._row_adapters())
        except Exception:
            self._fail_prefill(group, job)
            return
        self._after_decode(logits)
        self._join_if_complete(group, job)

    def _fail_prefill(self, group: list[NativeSequence], job: PrefillJob) -> None:
        log.exception("prefill of %d sequences failed; the running batch continues", len(group))
        if self._prefilling and self._prefilling[0][1] is job:
            self._prefilling.popleft()
        self._fail(group, STEP_FAILED)

    def _join_if_complete(self, group: list[NativeSequence], job: PrefillJob) -> None:
        """Once a job's prompts are all in, publish their first tokens and let them join."""
        if not job.complete:
            return
        try:
            self._prefilling.popleft()
            joined = self._first_tokens(group, job)
        except Exception:
            self._fail_prefill(group, job)
            return
        if joined is not None:  # rows first: a failed concatenate then fails them with the batch
            self._running.extend(joined[1])
            self._batch = concatenate(([self._batch] if self._batch else []) + [joined[0]])
        self._update_batch_stats()

    def _first_tokens(self, group: list[NativeSequence],
                      job: PrefillJob) -> tuple[KVBatch, list[NativeSequence]] | None:
        """Publish each prompt's first token: the group's KV batch and its rows still running."""
        result = self.runner.finish_prefill(job)
        if result.prompt_logprobs is not None:
            for sequence, logprobs in zip(group, result.prompt_logprobs, strict=True):
                sequence.prefill = self._prefill_tokens(sequence, logprobs)
        selection = self._choose(result.last_logits, group)
        result.batch.last_tokens = selection.ids
        finished = self._publish(group, selection)
        if self._prefixes is not None:
            self._prefixes.remember(group, job)  # after the first tokens are out: not on their TTFT
            self._prefixes.keep_sessions(group, finished, result.batch)
        keep = [i for i, s in enumerate(group) if not s.finished]
        if len(keep) == len(group):
            return result.batch, group
        return (result.batch.filter(keep), [group[i] for i in keep]) if keep else None

    def _decode_step(self) -> None:
        self._after_decode(self.runner.decode(self._batch, self._row_adapters()))

    def _after_decode(self, logits: torch.Tensor) -> None:
        """Choose, publish and retire the running rows' tokens from a decode step's logits."""
        selection = self._choose(logits, self._running)
        self._batch.last_tokens = selection.ids
        finished = self._publish(self._running, selection)
        if self._prefixes is not None:
            self._prefixes.keep_sessions(self._running, finished, self._batch)
        self._last_was_prefill = False
        keep = [i for i, s in enumerate(self._running) if not s.finished]
        if len(keep) != len(self._running):
            self._retain(keep)  # finished and failed rows leave the KV batch together
        else:
            self._update_batch_stats()

    def _publish(self, sequences: list[NativeSequence], selection: Selection) -> list[int]:
        """Hand the sink every row's token in one step; a row whose sampling or grammar failed
        fails alone. Returns the rows that finished normally."""
        step, finished = [], []
        for row, sequence in enumerate(sequences):
            error = selection.failures.get(row)
            if error is None:
                try:
                    error = self._follow_grammar(sequence, selection.choices[row].token_id)
                except Exception as failure:  # still this row only
                    error = failure
            if error is not None:
                log.error("sequence %d failed; the other rows continue", sequence.id, exc_info=error)
                self._fail([sequence], ROW_FAILED)
                continue
            step.append((sequence, [selection.choices[row]]))
            if sequence.take(selection.choices[row]):
                self.stats.finished_total += 1
                finished.append(row)
        if step:
            self._sequences.sink.publish(step)
        return finished

    def _follow_grammar(self, sequence: NativeSequence, token_id: int) -> Exception | None:
        """Advance a constrained row's matcher; the error if the grammar refuses the token."""
        if sequence.constraint is None:
            return None
        refusal = sequence.constraint.advance(token_id, self.eos_token_ids)
        return None if refusal is None else RuntimeError(f"grammar refused token {token_id}: {refusal}")

    def _constrain(self, logits: torch.Tensor, sequences: list[NativeSequence]) -> torch.Tensor:
        """Mask the constrained rows' logits; unconstrained batches skip this entirely."""
        constraints = [s.constraint for s in sequences]
        if all(c is None for c in constraints):
            return logits
        if self._masks is None:
            self._masks = MaskBuilder(logits.shape[-1])
        return self._masks.apply(logits, constraints)

    def _choose(self, logits: torch.Tensor, sequences: list[NativeSequence]) -> Selection:
        logits = self._constrain(logits, sequences)
        histories = [torch.tensor(s.history, device=logits.device) if s.sampler.params.needs_history else None
                     for s in sequences]
        return choose_tokens(logits, [s.sampler for s in sequences], histories,
                             [s.valid.request.top_n_tokens for s in sequences], watermark=self._watermark)

    def _prefill_tokens(self, sequence: NativeSequence, logprobs: list[float | None]) -> tuple[Token, ...]:
        ids = sequence.valid.input_ids
        return tuple(Token(i, self._text.token(i), lp, i in self.special_ids)
                     for i, lp in zip(ids, logprobs, strict=True))

    def _fail(self, sequences: list[NativeSequence], detail: str) -> None:
        """End the unfinished ``sequences`` with a 424 whose text carries no internals."""
        for sequence in sequences:
            if not sequence.finished:
                sequence.fail(GenerationError(detail))
                self.stats.failed_total += 1

    def _fail_all(self) -> None:
        """Fail the running batch; groups still prefilling own their caches and carry on."""
        self._fail(self._running, STEP_FAILED)
        self._running, self._batch = [], None
        self._update_batch_stats()
