"""The engine: one thread that owns the model and steps every running sequence together.

Continuous batching at the iteration level, as TGI does it: requests wait in arrival order;
whenever they fit the KV budget they are prefilled together and join the running batch at the
next step; finished or cancelled sequences leave the batch at once. Request threads only
``submit`` and read their sequence's event queue, so the model is never touched by two threads.

Failures stay as small as they can: a row whose sampling fails leaves the batch alone, a prefill
group that fails takes only its newcomers, and only a failed decode forward pass, which every
row shares, fails the whole batch. Clients get a fixed text; the exception goes to the log.
"""

from __future__ import annotations

import collections
import itertools
import logging
import random
import threading
import time
from dataclasses import dataclass

import torch

from .constraint import MaskBuilder, RowConstraint
from .detokenizer import IncrementalDetokenizer
from .errors import GenerationError
from .kv_batch import KVBatch, concatenate
from .model_runner import ModelRunner
from .sampling import Selection, SequenceSampler, choose_tokens
from .sequence import Sequence, Token
from .stopping import StoppingCriteria
from .validation import ValidRequest

log = logging.getLogger("sluice.engine")

STEP_FAILED = "the model step failed"
ROW_FAILED = "choosing the next token failed"


@dataclass(frozen=True)
class SchedulerBudget:
    """TGI's batch limits: KV tokens of the whole batch, prompt tokens per prefill, rows."""

    max_batch_total_tokens: int
    max_batch_prefill_tokens: int
    max_batch_size: int | None = None


@dataclass
class EngineStats:
    """Counters the HTTP layer reads for /metrics and tests (written by the engine thread)."""

    queue_size: int = 0
    batch_size: int = 0
    batch_tokens: int = 0
    cancelled_total: int = 0
    finished_total: int = 0
    failed_total: int = 0
    steps_total: int = 0
    prefills_total: int = 0


class Engine:
    name = "sluice"

    def __init__(self, runner: ModelRunner, tokenizer, budget: SchedulerBudget,
                 eos_token_ids: frozenset[int], special_ids: frozenset[int]):
        self.runner = runner
        self.tokenizer = tokenizer
        self.budget = budget
        self.eos_token_ids = eos_token_ids
        self.special_ids = special_ids
        self.stats = EngineStats()
        self._waiting: collections.deque[Sequence] = collections.deque()
        self._running: list[Sequence] = []
        self._batch: KVBatch | None = None
        self._wakeup = threading.Condition()
        self._ids = itertools.count(1)
        self._stopped = False
        self._steps_since_prefill = 0
        self._masks: MaskBuilder | None = None  # built on the first constrained request
        self._thread = threading.Thread(target=self._loop, name="sluice-engine", daemon=True)

    def start(self) -> "Engine":
        self._thread.start()
        return self

    def stop(self) -> None:
        with self._wakeup:
            self._stopped = True
            self._wakeup.notify()

    def submit(self, valid: ValidRequest, seed: int | None = None) -> Sequence:
        """Queue a validated request; its events appear on the returned sequence's queue."""
        request = valid.request
        if request.sampling.do_sample and seed is None:
            seed = request.sampling.seed if request.sampling.seed is not None else random.getrandbits(63)
        sequence = Sequence(
            valid=valid,
            sampler=SequenceSampler(request.sampling, self.runner.device, seed),
            detokenizer=IncrementalDetokenizer(self._decode, valid.input_ids),
            stopping=StoppingCriteria(self.eos_token_ids, request.stop, valid.max_new_tokens),
            special_ids=self.special_ids, token_text=self._token_text, id=next(self._ids),
            constraint=RowConstraint(valid.grammar.new_matcher()) if valid.grammar else None)
        with self._wakeup:
            self._waiting.append(sequence)
            self.stats.queue_size = len(self._waiting)
            self._wakeup.notify()
        return sequence

    @property
    def alive(self) -> bool:
        """False once the loop has ended: the health check must then stop saying 200."""
        return self._thread.is_alive()

    def wake(self) -> None:
        """Let the loop notice a cancellation now rather than at its next step."""
        with self._wakeup:
            self._wakeup.notify()

    def describe(self) -> dict:
        """What /info reports of the engine, so routes never reach into the runner."""
        return {"engine": self.name,
                "model_dtype": str(getattr(self.runner.model, "dtype", "")).replace("torch.", ""),
                "model_dtype_reason": self.runner.dtype_reason,
                "model_device_type": self.runner.device.type,
                "max_batch_total_tokens": self.budget.max_batch_total_tokens,
                "max_batch_prefill_tokens": self.budget.max_batch_prefill_tokens,
                "max_batch_size": self.budget.max_batch_size}

    @staticmethod
    def check_request(request) -> None:
        """Every TGI parameter is implemented by this engine: nothing to refuse."""

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=True)

    def _token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id], skip_special_tokens=False)

    # --- the loop -------------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while not self._stopped and not self._waiting and not self._running:
                    self._wakeup.wait()
                if self._stopped:
                    return
                newcomers = self._admit()
            try:
                self._drop_cancelled()
                if newcomers:
                    self._prefill(newcomers)
                elif self._running:
                    self._decode_step()
            except Exception:  # the shared decode pass failed: every row with it, not the server
                log.exception("generation step failed; failing the running batch")
                self._fail_all(newcomers)

    def _admit(self) -> list[Sequence]:
        """Take waiting sequences in arrival order while they fit; caller holds the lock."""
        if self._running and self._steps_since_prefill < 1:
            return []  # let the running batch make progress between prefills
        budget, admitted = self.budget, []
        used = sum(s.valid.input_length + s.valid.max_new_tokens for s in self._running)
        prefill_tokens = 0
        while self._waiting:
            candidate = self._waiting[0]
            if candidate.cancelled:
                self._waiting.popleft()
                self._note_cancelled(candidate)
                continue
            need = candidate.valid.input_length + candidate.valid.max_new_tokens
            rows = len(self._running) + len(admitted)
            if admitted or self._running:
                if used + need > budget.max_batch_total_tokens:
                    break
                if prefill_tokens + candidate.valid.input_length > budget.max_batch_prefill_tokens:
                    break
                if budget.max_batch_size and rows >= budget.max_batch_size:
                    break
            self._waiting.popleft()
            admitted.append(candidate)
            used += need
            prefill_tokens += candidate.valid.input_length
        self.stats.queue_size = len(self._waiting)
        return admitted

    def _drop_cancelled(self) -> None:
        # Read each flag once: a request thread may cancel between two reads, and a row noted as
        # cancelled but kept would be stepped, and noted, again.
        cancelled = [s.cancelled for s in self._running]
        if not any(cancelled):
            return
        for sequence, gone in zip(self._running, cancelled):
            if gone:
                self._note_cancelled(sequence)
        self._retain([i for i, gone in enumerate(cancelled) if not gone])

    def _note_cancelled(self, sequence: Sequence) -> None:
        self.stats.cancelled_total += 1
        log.info("sequence %d cancelled (client disconnected) after %d tokens; slot freed",
                 sequence.id, len(sequence.generated_ids))

    def _retain(self, keep: list[int]) -> None:
        self._running = [self._running[i] for i in keep]
        self._batch = self._batch.filter(keep) if keep else None
        self._update_batch_stats()

    def _update_batch_stats(self) -> None:
        self.stats.batch_size = len(self._running)
        self.stats.batch_tokens = self._batch.size * self._batch.columns if self._batch else 0

    def _prefill(self, newcomers: list[Sequence]) -> None:
        now = time.monotonic()
        for sequence in newcomers:
            sequence.started_at = now
        batches, survivors = [], []
        for group in _group_by_length(newcomers):
            prefilled = self._prefill_group(group)
            if prefilled is not None:
                batches.append(prefilled[0])
                survivors.extend(prefilled[1])
        self.stats.prefills_total += 1
        self._steps_since_prefill = 0
        if survivors:
            self._batch = concatenate(([self._batch] if self._batch else []) + batches)
            self._running.extend(survivors)
        self._update_batch_stats()

    def _prefill_group(self, group: list[Sequence]) -> tuple[KVBatch, list[Sequence]] | None:
        """Prefill one group: its KV batch and the sequences still running, or None.

        The group owns a fresh cache, so its failure fails its newcomers only.
        """
        try:
            result = self._forward_prompts(group)
            selection = self._choose(result.last_logits, group)
            result.batch.last_tokens = selection.ids
            self._publish(group, selection)
            keep = [i for i, s in enumerate(group) if not s.finished]
            if len(keep) == len(group):
                return result.batch, group
            return (result.batch.filter(keep), [group[i] for i in keep]) if keep else None
        except Exception:
            log.exception("prefill of %d sequences failed; the running batch continues", len(group))
            self._fail(group, STEP_FAILED)
            return None

    def _forward_prompts(self, group: list[Sequence]):
        wants_prompt = any(s.valid.request.decoder_input_details for s in group)
        result = self.runner.prefill([s.valid.input_ids for s in group], wants_prompt)
        if result.prompt_logprobs is not None:
            for sequence, logprobs in zip(group, result.prompt_logprobs):
                sequence.prefill = self._prefill_tokens(sequence, logprobs)
        return result

    def _decode_step(self) -> None:
        logits = self.runner.decode(self._batch)
        selection = self._choose(logits, self._running)
        self._batch.last_tokens = selection.ids
        self._publish(self._running, selection)
        self.stats.steps_total += 1
        self._steps_since_prefill += 1
        keep = [i for i, s in enumerate(self._running) if not s.finished]
        if len(keep) != len(self._running):
            self._retain(keep)  # finished and failed rows leave the KV batch together
        else:
            self._update_batch_stats()

    def _publish(self, sequences: list[Sequence], selection: Selection) -> None:
        """Hand every row its token; a row whose sampling or bookkeeping failed fails alone."""
        for row, sequence in enumerate(sequences):
            error = selection.failures.get(row)
            if error is None:
                try:
                    error = self._follow_grammar(sequence, selection.choices[row].token_id)
                    if error is None:
                        sequence.add(selection.choices[row])
                except Exception as failure:  # e.g. the detokenizer: still this row only
                    error = failure
            if error is not None:
                log.error("sequence %d failed; the other rows continue", sequence.id, exc_info=error)
                self._fail([sequence], ROW_FAILED)
            elif sequence.finished:
                self.stats.finished_total += 1

    def _follow_grammar(self, sequence: Sequence, token_id: int) -> Exception | None:
        """Advance a constrained row's matcher; the error if the grammar refuses the token."""
        if sequence.constraint is None:
            return None
        refusal = sequence.constraint.advance(token_id, self.eos_token_ids)
        return None if refusal is None else RuntimeError(f"grammar refused token {token_id}: {refusal}")

    def _constrain(self, logits: torch.Tensor, sequences: list[Sequence]) -> torch.Tensor:
        """Mask the constrained rows' logits; unconstrained batches skip this entirely."""
        constraints = [s.constraint for s in sequences]
        if all(c is None for c in constraints):
            return logits
        if self._masks is None:
            self._masks = MaskBuilder(logits.shape[-1])
        return self._masks.apply(logits, constraints)

    def _choose(self, logits: torch.Tensor, sequences: list[Sequence]) -> Selection:
        logits = self._constrain(logits, sequences)
        histories = [torch.tensor(s.history, device=logits.device)
                     if s.sampler.params.repetition_penalty != 1.0 or s.sampler.params.frequency_penalty != 0.0
                     else None for s in sequences]
        return choose_tokens(logits, [s.sampler for s in sequences], histories,
                             [s.valid.request.top_n_tokens for s in sequences])

    def _prefill_tokens(self, sequence: Sequence, logprobs: list[float | None]) -> tuple[Token, ...]:
        ids = sequence.valid.input_ids
        return tuple(Token(i, self._token_text(i), lp, i in self.special_ids) for i, lp in zip(ids, logprobs))

    def _fail(self, sequences: list[Sequence], detail: str) -> None:
        """End the unfinished ``sequences`` with a 424 whose text carries no internals."""
        for sequence in sequences:
            if not sequence.finished:
                sequence.fail(GenerationError(detail))
                self.stats.failed_total += 1

    def _fail_all(self, newcomers: list[Sequence]) -> None:
        self._fail(list({id(s): s for s in newcomers + self._running}.values()), STEP_FAILED)
        self._running, self._batch = [], None
        self._update_batch_stats()


def _group_by_length(sequences: list[Sequence], max_waste: float = 0.25) -> list[list[Sequence]]:
    """Prefill groups whose left padding stays under ``max_waste`` of their real tokens."""
    groups: list[list[Sequence]] = []
    for sequence in sorted(sequences, key=lambda s: s.valid.input_length):
        if groups:
            group = groups[-1]
            width = sequence.valid.input_length
            real = sum(s.valid.input_length for s in group) + width
            if width * (len(group) + 1) - real <= max_waste * real:
                group.append(sequence)
                continue
        groups.append([sequence])
    return groups
