"""A short, deterministic causal-LM training loop for the demo models.

The goal is not a good model: it is a model whose greedy output is made of real words, whose
next-token logits are clearly separated (random weights give near-ties, which make greedy decoding
flip between batched and sequential runs on float noise alone), and which answers the demo prompts
with a sentence before it stops. Steps alternate between random windows of the prose stream (words,
EOS after paragraphs) and batches of supervised prompt -> answer examples (demo.supervised).
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Sequence

import torch
from transformers import PreTrainedModel

from demo.supervised import IGNORE, SupervisedExample


def token_stream(documents: list[list[int]], bos_id: int, eos_id: int) -> torch.Tensor:
    """All documents as one id sequence, each framed by BOS ... EOS (BOS only if not already there)."""
    ids: list[int] = []
    for doc in documents:
        if not doc or doc[0] != bos_id:
            ids.append(bos_id)
        ids.extend(doc)
        ids.append(eos_id)
    return torch.tensor(ids, dtype=torch.long)


def window_batch(stream: torch.Tensor, batch_size: int, seq_len: int, generator: torch.Generator) -> dict:
    """Random windows of the prose stream, every token a target."""
    starts = torch.randint(0, len(stream) - seq_len, (batch_size,), generator=generator)
    batch = torch.stack([stream[s : s + seq_len] for s in starts.tolist()])
    return {"input_ids": batch, "labels": batch}


def supervised_batch(examples: Sequence[SupervisedExample], pad_id: int) -> dict:
    """Examples right-padded to the longest; padding is masked out of attention and loss."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, example in enumerate(examples):
        length = len(example.input_ids)
        ids[row, :length] = torch.tensor(example.input_ids)
        labels[row, :length] = torch.tensor(example.labels)
        mask[row, :length] = 1
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _learning_rate_scale(step: int, steps: int) -> float:
    # Linear warmup then cosine decay: a high peak rate gets a 2M-parameter model to words fast.
    warmup = max(1, steps // 20)
    if step <= warmup:
        return step / warmup
    return 0.5 * (1 + math.cos(math.pi * (step - warmup) / (steps - warmup)))


def train_causal_lm(
    model: PreTrainedModel,
    stream: torch.Tensor,
    *,
    steps: int,
    batch_size: int,
    seq_len: int,
    lr: float,
    seed: int,
    examples: Sequence[SupervisedExample] = (),
    prose_every: int = 4,
    pad_id: int = 0,
    log_every: int = 50,
    label: str = "model",
) -> float:
    """Trains `model` in place; returns the last logged loss.

    Every `prose_every`-th step reads random windows of `stream`, the others (when `examples` are
    given) a random batch of supervised examples. Both come from one seeded generator, so the data order (and,
    with fixed threads and deterministic kernels, the weights) are the same on every run.
    """
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01, betas=(0.9, 0.95))
    model.train()
    started = time.monotonic()
    loss_value = float("nan")
    for step in range(1, steps + 1):
        for group in optimizer.param_groups:
            group["lr"] = lr * _learning_rate_scale(step, steps)
        if examples and step % prose_every != 0:
            picks = torch.randint(0, len(examples), (batch_size,), generator=generator).tolist()
            batch = supervised_batch([examples[i] for i in picks], pad_id)
        else:
            batch = window_batch(stream, batch_size, seq_len, generator)
        loss = model(**batch).loss
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % log_every == 0 or step == steps:
            loss_value = loss.item()
            elapsed = time.monotonic() - started
            print(f"[demo] training {label}: step {step}/{steps} loss {loss_value:.3f} ({elapsed:.1f}s)",
                  file=sys.stderr, flush=True)
    model.eval()
    return loss_value
