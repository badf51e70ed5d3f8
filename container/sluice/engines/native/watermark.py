"""TGI's watermark ("A Watermark for Large Language Models", Kirchenbauer et al. 2023), and its
detector.

Generating, each step splits the vocabulary by the previous token: a generator seeded with
``hash_key * previous_token`` permutes the ids, and the first ``gamma`` share of the permutation
is the step's greenlist, whose logits get ``delta`` added. TGI's ``WatermarkLogitsProcessor``
exactly (``WATERMARK_GAMMA`` 0.5, ``WATERMARK_DELTA`` 2.0, hash key 15485863), with one choice
made explicit: the permutation is always drawn on the CPU generator, so the greenlists, and with
them the detector, do not depend on the device that served the text (TGI draws them on the
model's device; on a CPU the two agree).

Detecting needs no model: count how many tokens fall in their predecessor's greenlist. Plain
text lands there at rate ``gamma``; watermarked text more often. The z-score of that count,
``(green - gamma T) / sqrt(T gamma (1 - gamma))``, is the paper's test (z > 4 is its threshold).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

HASH_KEY = 15485863  # TGI's: a large prime, so the seed has bits enough


@dataclass(frozen=True)
class Watermark:
    gamma: float = 0.5
    delta: float = 2.0
    hash_key: int = HASH_KEY

    def greenlist(self, previous_token: int, vocab_size: int) -> torch.Tensor:
        """The ids favoured after ``previous_token`` (CPU, int64)."""
        generator = torch.Generator(device="cpu")
        generator.manual_seed(self.hash_key * previous_token)
        return torch.randperm(vocab_size, generator=generator)[:int(vocab_size * self.gamma)]

    def bias(self, logits: torch.Tensor, previous_tokens: list[int]) -> torch.Tensor:
        """``logits`` [rows, vocab] with ``delta`` added to each row's greenlist, in one op."""
        vocab = logits.shape[-1]
        lists = [self.greenlist(token, vocab) for token in previous_tokens]
        rows = torch.cat([torch.full_like(ids, row) for row, ids in enumerate(lists)]).to(logits.device)
        columns = torch.cat(lists).to(logits.device)
        bias = torch.full((len(columns),), self.delta, dtype=logits.dtype, device=logits.device)
        return logits.index_put((rows, columns), bias, accumulate=True)


@dataclass(frozen=True)
class WatermarkScore:
    scored: int  # tokens tested (each against its predecessor's greenlist)
    green: int  # of those, in the greenlist
    z: float


def detect(token_ids: list[int], vocab_size: int, watermark: Watermark = Watermark(),
           previous_token: int | None = None) -> WatermarkScore:
    """The paper's z-score of ``token_ids``; ``previous_token`` (the prompt's last token) lets the
    first one be scored too. ``vocab_size`` is the width of the model's logits."""
    pairs = list(zip(([previous_token] if previous_token is not None else []) + token_ids[:-1],
                     token_ids if previous_token is not None else token_ids[1:], strict=True))
    green = sum(1 for before, token in pairs
                if bool((watermark.greenlist(before, vocab_size) == token).any()))
    scored, gamma = len(pairs), watermark.gamma
    z = (green - gamma * scored) / math.sqrt(scored * gamma * (1 - gamma)) if scored else 0.0
    return WatermarkScore(scored, green, z)
