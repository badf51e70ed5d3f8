"""A short, deterministic causal-LM training loop for the demo models.

The goal is not a good model: it is a model whose greedy output is made of real words and whose
next-token logits are clearly separated (random weights give near-ties, which make greedy decoding
flip between batched and sequential runs on float noise alone).
"""

from __future__ import annotations

import math
import sys
import time

import torch
from transformers import PreTrainedModel


def token_stream(documents: list[list[int]], bos_id: int, eos_id: int) -> torch.Tensor:
    """All documents as one id sequence, each framed by BOS ... EOS (BOS only if not already there)."""
    ids: list[int] = []
    for doc in documents:
        if not doc or doc[0] != bos_id:
            ids.append(bos_id)
        ids.extend(doc)
        ids.append(eos_id)
    return torch.tensor(ids, dtype=torch.long)


def train_causal_lm(
    model: PreTrainedModel,
    stream: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    seq_len: int,
    lr: float,
    seed: int,
    log_every: int = 50,
    label: str = "model",
) -> float:
    """Trains `model` in place on random windows of `stream`; returns the last logged loss.

    Windows come from a seeded generator, so the data order (and, with fixed threads and
    deterministic kernels, the weights) are the same on every run.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    warmup = max(1, steps // 20)
    model.train()
    started = time.monotonic()
    loss_value = float("nan")
    for step in range(1, steps + 1):
        # Linear warmup then cosine decay: a high peak rate gets a 2M-parameter model to words fast.
        scale = step / warmup if step <= warmup else 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))
        for group in optimizer.param_groups:
            group["lr"] = lr * scale
        starts = torch.randint(0, len(stream) - seq_len, (batch_size,), generator=generator)
        batch = torch.stack([stream[s : s + seq_len] for s in starts.tolist()])
        loss = model(input_ids=batch, labels=batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % log_every == 0 or step == steps:
            loss_value = loss.item()
            elapsed = time.monotonic() - started
            print(f"[demo] training {label}: step {step}/{steps} loss {loss_value:.3f} ({elapsed:.1f}s)", file=sys.stderr, flush=True)
    model.eval()
    return loss_value
