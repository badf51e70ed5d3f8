"""In-process measurements on the same model: the naive baseline and the hardware's ideal schedule.

* Sequential ``model.generate``: what a hand-written ``inference.py`` does, one greedy request at
  a time. ``min_new_tokens`` forces every request to the full length, because a ``None`` EOS in a
  generation config does not disable EOS in transformers 5 (it is filled from the model's config).
* The ideal schedule: raw forward passes with nothing around them. Each prompt's prefill is timed
  alone (no padding waste), and a decode step with a ``DynamicCache`` is timed at each batch size
  over a context of the prompts' mean length. No server can beat prefill-everything + the decode
  steps at its batch size, so ideal time / measured time is a server's scheduling efficiency.
"""

from __future__ import annotations

import statistics
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def load(model_dir: str, device: torch.device, dtype: torch.dtype | None = None):
    """Model and tokenizer as Sluice loads them: ``dtype``, else float32 on CPU and bf16 (or
    fp16) on CUDA."""
    if dtype is None:
        dtype = torch.float32
        if device.type == "cuda":
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype).to(device).eval()
    return model, tokenizer


@torch.inference_mode()
def prefill_seconds(model, input_ids: tuple[int, ...], device: torch.device) -> float:
    ids = torch.tensor([input_ids], device=device)
    synchronize(device)
    started = time.perf_counter()
    model(input_ids=ids, past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
    synchronize(device)
    return time.perf_counter() - started


@torch.inference_mode()
def decode_step_seconds(model, batch: int, context: int, steps: int, device: torch.device,
                        seed_ids: list[int]) -> float:
    """Median seconds of one greedy KV-cache decode step for ``batch`` rows of ``context`` tokens."""
    row = (seed_ids * (context // max(1, len(seed_ids)) + 1))[:context]
    ids = torch.tensor([row] * batch, device=device)
    cache = DynamicCache()
    out = model(input_ids=ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
    next_ids = out.logits[:, -1, :].argmax(-1, keepdim=True)
    times = []
    for _ in range(steps):
        synchronize(device)
        started = time.perf_counter()
        out = model(input_ids=next_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        next_ids = out.logits[:, -1, :].argmax(-1, keepdim=True)
        synchronize(device)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def ideal_schedule(model, prompts, batch_sizes: list[int], new_tokens: int, device: torch.device) -> dict:
    """Raw prefill of every prompt and raw decode step times at each batch size."""
    prefill_seconds(model, prompts[0].input_ids, device)  # warm-up: first-call allocations
    decode_step_seconds(model, 2, 16, 3, device, list(prompts[0].input_ids))
    prefills = [prefill_seconds(model, p.input_ids, device) for p in prompts]
    context = round(statistics.fmean(p.length for p in prompts)) + new_tokens // 2
    steps = {b: decode_step_seconds(model, b, context, new_tokens, device, list(prompts[0].input_ids))
             for b in sorted(set(batch_sizes))}
    return {
        "prefill_s": prefills,
        "prefill_total_s": sum(prefills),
        "prefill_tokens_per_s": sum(p.length for p in prompts) / sum(prefills),
        "decode_context_tokens": context,
        "decode_step_s": {str(b): s for b, s in steps.items()},
        "decode_tokens_per_s": {str(b): b / s for b, s in steps.items()},
    }


def ideal_seconds(ideal: dict, prompt_indices: list[int], concurrency: int, new_tokens: int) -> float:
    """Ideal time of a load level: prefill every request's prompt + decode in full waves.

    ``prompt_indices`` says which prompt each request used (a level may repeat the set).
    """
    requests = len(prompt_indices)
    batch = min(concurrency, requests)
    waves = -(-requests // batch)
    prefill = sum(ideal["prefill_s"][i] for i in prompt_indices)
    return prefill + waves * new_tokens * ideal["decode_step_s"][str(batch)]


@torch.inference_mode()
def sequential_generate(model, tokenizer, prompts, new_tokens: int, device: torch.device) -> dict:
    """Greedy ``generate`` for each prompt in turn; exactly ``new_tokens`` tokens each."""
    def run(prompt):
        ids = torch.tensor([prompt.input_ids], device=device)
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), do_sample=False,
                             max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             pad_token_id=tokenizer.pad_token_id)
        synchronize(device)
        return out.shape[1] - ids.shape[1]

    run(prompts[0])  # warm-up, not counted
    per_request, generated = [], 0
    started = time.perf_counter()
    for prompt in prompts:
        request_started = time.perf_counter()
        generated += run(prompt)
        per_request.append(time.perf_counter() - request_started)
    elapsed = time.perf_counter() - started
    return {"requests": len(prompts), "generated_tokens": generated, "wall_s": elapsed,
            "tokens_per_s": generated / elapsed, "request_s": per_request}
