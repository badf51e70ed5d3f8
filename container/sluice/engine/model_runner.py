"""Model execution: the only room that calls the model's forward pass.

A group of new prompts (left-padded) is prefilled as a ``PrefillJob``, one chunk of columns per
``prefill_chunk`` call, so the engine can run decode steps in between; the finished job gives the
group's KV batch and the logits of each prompt's last position. ``decode`` runs one step for the
whole running batch. None of it knows about requests, sampling or text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from .kv_batch import BatchCache, KVBatch


@dataclass
class PrefillResult:
    batch: KVBatch
    last_logits: torch.Tensor  # [rows, vocab]
    prompt_logprobs: list[list[float | None]] | None  # per row, when asked (decoder_input_details)


@dataclass
class PrefillJob:
    """A group's prefill in progress: its padded prompts, its cache and the columns done."""

    prompts: list[tuple[int, ...]]
    ids: torch.Tensor  # [rows, width], left-padded
    mask: torch.Tensor  # [rows, width], 0 on padding
    cache: BatchCache
    done: int = 0  # columns already in the cache
    wants_prompt_logprobs: bool = False
    logits: list[torch.Tensor] = field(default_factory=list)  # per chunk: all positions, or the last

    @property
    def width(self) -> int:
        return self.ids.shape[1]

    @property
    def rows(self) -> int:
        return self.ids.shape[0]

    @property
    def complete(self) -> bool:
        return self.done >= self.width


class ModelRunner:
    def __init__(self, model, device: torch.device, pad_token_id: int, dtype_reason: str = "",
                 linear_kernels: str = ""):
        self.model = model
        self.device = device
        self.pad_token_id = pad_token_id
        self.dtype_reason = dtype_reason  # what /info says of the dtype choice
        self.linear_kernels = linear_kernels  # and of the linear layers (packed for oneDNN or not)

    def begin_prefill(self, prompts: list[tuple[int, ...]], with_prompt_logprobs: bool = False,
                      cache: BatchCache | None = None, done: int = 0) -> PrefillJob:
        """A job for ``prompts``; ``cache`` may already hold their first ``done`` columns."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt):] = 1
        return PrefillJob(list(prompts), ids.to(self.device), mask.to(self.device),
                          cache if cache is not None else BatchCache(), done, with_prompt_logprobs)

    @torch.inference_mode()
    def prefill_chunk(self, job: PrefillJob, stop: int) -> None:
        """Run columns ``job.done:stop`` ("extend": the cache holds every column before them)."""
        mask = job.mask[:, :stop]
        positions = (mask.cumsum(-1) - 1).clamp(min=0)[:, job.done:stop]
        keep = 0 if job.wants_prompt_logprobs else 1
        out = self.model(input_ids=job.ids[:, job.done:stop], attention_mask=mask, position_ids=positions,
                         past_key_values=job.cache, use_cache=True, logits_to_keep=keep)
        job.logits = job.logits + [out.logits] if job.wants_prompt_logprobs else [out.logits]
        job.done = stop

    def finish_prefill(self, job: PrefillJob) -> PrefillResult:
        """The completed job's KV batch, last logits and (when asked) prompt log-probabilities."""
        prompt_logprobs = None
        if job.wants_prompt_logprobs:
            prompt_logprobs = _prompt_logprobs(torch.cat(job.logits, dim=1), job.ids, job.prompts)
        batch = KVBatch(cache=job.cache, attention_mask=job.mask, positions=job.mask.sum(-1),
                        last_tokens=job.ids[:, -1].clone())
        return PrefillResult(batch, job.logits[-1][:, -1, :], prompt_logprobs)

    def prefill(self, prompts: list[tuple[int, ...]], with_prompt_logprobs: bool = False) -> PrefillResult:
        """A whole group in one forward pass."""
        job = self.begin_prefill(prompts, with_prompt_logprobs)
        self.prefill_chunk(job, job.width)
        return self.finish_prefill(job)

    @torch.inference_mode()
    def decode(self, batch: KVBatch) -> torch.Tensor:
        """One step for every row; extends the batch's mask and positions in place."""
        batch.attention_mask = torch.cat(
            [batch.attention_mask, batch.attention_mask.new_ones((batch.size, 1))], dim=1)
        out = self.model(input_ids=batch.last_tokens[:, None], attention_mask=batch.attention_mask,
                         position_ids=batch.positions[:, None], past_key_values=batch.cache,
                         use_cache=True, logits_to_keep=1)
        batch.positions = batch.positions + 1
        return out.logits[:, -1, :]


def _prompt_logprobs(logits: torch.Tensor, ids: torch.Tensor, prompts) -> list[list[float | None]]:
    """Log-probability of each prompt token given the ones before it; the first has none."""
    log_probs = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    picked = log_probs.gather(2, ids[:, 1:, None])[:, :, 0].tolist()
    width = ids.shape[1]
    return [[None] + picked[row][width - len(p):] for row, p in enumerate(prompts)]
