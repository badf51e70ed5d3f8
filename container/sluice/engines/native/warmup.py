"""The native engine's first passes, run before the server says it is ready.

A forward pass of a shape the process has not run yet costs more than the next one of that
shape: PyTorch's CPU kernels for bf16 (oneDNN) are generated on first use, a GPU's first passes
create cuBLAS handles and load kernels, and the very first pass reads weights that are still
being paged in. Measured on this 2-core CPU, the `small` demo model in bf16: a decode pass at a
batch size not run before took 25–33 ms against 10–14 ms once warm, a first prefill 5–45 % longer
than the next of its length, and after a ladder of batch sizes (1, 2, 4, ... 32) decode passes at
sizes between them (3, 7, 11) ran at the warm speed at once. Without a warm-up the first clients
after a start, or after SageMaker scales out onto a new instance (which gets traffic as soon as
``/ping`` answers 200), pay for all of it. TGI warms its model up before it serves; vLLM does too
(its profiling run and, on CUDA, its graph captures), so only this engine needs this.

The warm-up runs the engine itself, not its model alone: a few short greedy generations at batch
sizes 1, 2, 4, ... (up to ``MAX_WARMUP_BATCH``, the batch limit and the concurrency limit), each
prompt a few whole prefix-cache blocks, and one prompt as long as a prefill may be (bounded by
``LONG_PROMPT_TOKENS``), through the scheduler, the KV batch and the sampler as a request
would go; each batch arrives while the one before it decodes, so prefill chunks also run inside
decode passes, as a burst's do. Its sequences reach no client, no metric and no response cache (the serving's delivery
does not exist yet: they deliver to their own queues), and what they leave in the engine (prefix
cache entries, the finished count) is dropped (``NativeEngine.forget_warmup``). It is bounded in
time (``WARMUP_SECONDS``): what has not finished by then is cancelled and the server starts anyway.
"""

from __future__ import annotations

import logging
import queue
import time
from dataclasses import dataclass

from ...config import TokenLimits
from ...request import GenerateRequest, ValidRequest
from ...text.events import ErrorEvent
from .scheduler import SchedulerBudget

log = logging.getLogger("sluice.warmup")

MAX_WARMUP_BATCH = 64
SHORT_PROMPT_TOKENS = 32  # two prefix-cache blocks
LONG_PROMPT_TOKENS = 512
NEW_TOKENS = 4  # the prefill's token and three decode passes at the batch's size
WARMUP_SECONDS = 120.0
POOL_TOKENS = 4096  # the token ids its prompts are made of (the vocabulary's first, specials left out)
STRIDE = 7919  # a prime: a prompt's ids step through the pool


@dataclass(frozen=True)
class Warmup:
    """What the warm-up ran: its batch sizes, sequences, and how long it took."""

    batch_sizes: tuple[int, ...]
    sequences: int
    seconds: float
    finished: bool  # False: cancelled at the deadline, or a pass failed (logged)

    def describe(self) -> str:
        sizes = f"{self.batch_sizes[0]}–{self.batch_sizes[-1]}" if self.batch_sizes else "none"
        outcome = "" if self.finished else ", stopped early"
        return f"{self.sequences} sequences at batch sizes {sizes} in {self.seconds:.2f} s{outcome}"


def batch_sizes(budget: SchedulerBudget, max_concurrent_requests: int) -> tuple[int, ...]:
    """Powers of two up to the largest batch the server can run (and ``MAX_WARMUP_BATCH``)."""
    limit = min(MAX_WARMUP_BATCH, max_concurrent_requests, budget.max_batch_size or MAX_WARMUP_BATCH)
    sizes, size = [], 1
    while size <= limit:
        sizes.append(size)
        size *= 2
    return tuple(sizes)


def warmup_ids(vocabulary: int, special_ids: frozenset[int], length: int, index: int) -> tuple[int, ...]:
    """The ``index``-th warm-up prompt: ``length`` ordinary token ids (no special token, so no
    EOS), its first differing from every other prompt's, so none is a cached prefix of another
    (a hit would skip the prefill it is there to run)."""
    pool = [i for i in range(min(vocabulary, POOL_TOKENS)) if i not in special_ids] or [0]
    return tuple(pool[(index + step * STRIDE) % len(pool)] for step in range(length))


def warm_up(engine, budget: SchedulerBudget, limits: TokenLimits, max_concurrent_requests: int, vocabulary: int,
            timeout: float = WARMUP_SECONDS) -> Warmup:
    """Run the engine's first passes (the module's docstring); call before ``deliver_to``. Every
    sequence fits the request limits a client's would (prompt and tokens within
    ``MAX_TOTAL_TOKENS``: a model's positions end there); ``vocabulary``: the token ids both the
    tokenizer and the model's embeddings know."""
    started = time.monotonic()
    deadline = started + timeout
    sizes = batch_sizes(budget, max_concurrent_requests)
    new_tokens = max(1, min(NEW_TOKENS, limits.max_total_tokens - 1))
    room = max(1, min(limits.max_input_tokens, limits.max_total_tokens - new_tokens))
    short = min(SHORT_PROMPT_TOKENS, room)
    long = min(LONG_PROMPT_TOKENS, room, budget.max_batch_prefill_tokens)
    rounds = [[short] * size for size in sizes] + [[long]]
    submitted: list = []
    done: set[int] = set()
    finished = True
    for lengths in rounds:
        sequences = [engine.submit(_request(engine, vocabulary, length, len(submitted) + i, new_tokens))
                     for i, length in enumerate(lengths)]
        submitted += sequences
        # The next round comes once this one has its first tokens: its prefill then shares this
        # round's decode passes (``fused_pass``), as a burst's newcomers do.
        if not _wait(sequences, submitted, done, deadline, first_only=True):
            finished = False
            break
    finished = finished and _wait(submitted, submitted, done, deadline, first_only=False)
    engine.forget_warmup()
    return Warmup(sizes, len(submitted), time.monotonic() - started, finished)


def _request(engine, vocabulary: int, length: int, index: int, new_tokens: int) -> ValidRequest:
    ids = warmup_ids(vocabulary, engine.special_ids, length, index)
    return ValidRequest(request=GenerateRequest(inputs="", max_new_tokens=new_tokens), input_ids=ids,
                        max_new_tokens=new_tokens)


def _wait(sequences, submitted, done: set[int], deadline: float, first_only: bool) -> bool:
    """Each of ``sequences``' events until its first (``first_only``) or its last, noting the
    finished ones in ``done``; False (every unfinished warm-up sequence cancelled) at the
    deadline or on a failed pass."""
    for sequence in sequences:
        while sequence.id not in done:
            event = _next_event(sequence, deadline - time.monotonic())
            if event is None or isinstance(event, ErrorEvent):
                if event is None:
                    log.warning("warm-up: not finished in time; serving without the rest of it")
                else:
                    log.error("warm-up: a pass failed: %s", event.error)
                for rest in submitted:
                    if rest.id not in done:
                        rest.cancel()  # the engine drops it at its next step
                return False
            if event.finish is not None:
                done.add(sequence.id)
            if first_only:
                break
    return True


def _next_event(sequence, remaining: float):
    if remaining <= 0:
        return None
    try:
        return sequence.events.get(timeout=remaining)
    except queue.Empty:
        return None
