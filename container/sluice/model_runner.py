"""Model execution: the only room that calls the model's forward pass.

``prefill`` runs a group of new prompts (left-padded) and returns their KV batch and the logits
of each prompt's last position; ``decode`` runs one step for the whole running batch. Neither
knows about requests, sampling or text.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .kv_batch import BatchCache, KVBatch


@dataclass
class PrefillResult:
    batch: KVBatch
    last_logits: torch.Tensor  # [rows, vocab]
    prompt_logprobs: list[list[float | None]] | None  # per row, when asked (decoder_input_details)


class ModelRunner:
    def __init__(self, model, device: torch.device, pad_token_id: int, dtype_reason: str = ""):
        self.model = model
        self.device = device
        self.pad_token_id = pad_token_id
        self.dtype_reason = dtype_reason  # what /info says of the dtype choice

    @torch.inference_mode()
    def prefill(self, prompts: list[tuple[int, ...]], with_prompt_logprobs: bool = False) -> PrefillResult:
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt):] = 1
        ids, mask = ids.to(self.device), mask.to(self.device)
        positions = (mask.cumsum(-1) - 1).clamp(min=0)
        cache = BatchCache()
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=positions,
                         past_key_values=cache, use_cache=True,
                         logits_to_keep=0 if with_prompt_logprobs else 1)
        logits = out.logits
        prompt_logprobs = None
        if with_prompt_logprobs:
            prompt_logprobs = _prompt_logprobs(logits, ids, prompts)
        batch = KVBatch(cache=cache, attention_mask=mask,
                        positions=mask.sum(-1), last_tokens=ids[:, -1].clone())
        return PrefillResult(batch, logits[:, -1, :], prompt_logprobs)

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
