"""OpenAI's ``n``: several choices for one prompt, generated side by side like ``best_of`` runs.

Each choice is its own request, so the engine batches them and each draws with its own seed:
the client's ``seed`` for the first, the next integers for the others (so a seeded request is
reproducible choice by choice), or, without one, a random base. A greedy request's choices are
alike, as OpenAI's are. ``n`` is bounded like ``best_of`` (``MAX_BEST_OF``); a stream carries one
choice, so ``n`` > 1 with ``stream`` is a 422, as TGI answers ``best_of`` > 1 there.
"""

from __future__ import annotations

import random
from dataclasses import replace

from ...errors import ValidationError
from ...request import GenerateRequest, RequestLimits
from ..fields import typed_integer

U64 = 2**64


def read_choices(body: dict, limits: RequestLimits, stream: bool) -> int:
    """The body's ``n`` (absent or null: 1)."""
    n = typed_integer(body, "n", "u32", "n")
    if n is None:
        return 1
    if n == 0 or n > limits.max_best_of:
        raise ValidationError(f"`n` must be > 0 and <= {limits.max_best_of}. Given: {n}")
    if n > 1 and stream:
        raise ValidationError("`n` != 1 is not supported when streaming tokens")
    return n


def copies(request: GenerateRequest, n: int) -> list[GenerateRequest]:
    """``n`` requests for one prompt, each sampled with its own seed."""
    if n == 1 or not request.sampling.do_sample:
        return [request] * n
    base = request.sampling.seed if request.sampling.seed is not None else random.getrandbits(63)
    return [replace(request, sampling=replace(request.sampling, seed=(base + i) % U64)) for i in range(n)]

