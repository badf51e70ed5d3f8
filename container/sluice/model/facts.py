"""Facts about a model that every engine sizes itself by: KV bytes per token, EOS ids, and the
memory left to hold a KV cache. One definition each, whatever engine asks (the native engine
with a loaded model, vLLM's before it loads one).
"""

from __future__ import annotations

import torch

KV_MEMORY_FRACTION = 0.3  # of the memory left after loading, when MAX_BATCH_TOTAL_TOKENS is unset
FALLBACK_FREE_MEMORY = 4 << 30  # where the platform cannot say (no /proc/meminfo)


def text_config(model_config):
    """The language model's config (a multimodal config nests it; a text model's is itself)."""
    return model_config.get_text_config() if hasattr(model_config, "get_text_config") else model_config


def kv_bytes_per_token(model_config, element_bytes: int) -> int:
    """Bytes one token's keys and values take in every layer, at ``element_bytes`` per value."""
    cfg = text_config(model_config)
    heads = getattr(cfg, "num_key_value_heads", None) or cfg.num_attention_heads
    head_dim = getattr(cfg, "head_dim", None) or cfg.hidden_size // cfg.num_attention_heads
    return 2 * cfg.num_hidden_layers * heads * head_dim * element_bytes


def eos_token_ids(generation_config, tokenizer) -> frozenset[int]:
    """EOS ids from the generation config (one id or a list, e.g. chat end tokens; None when the
    model has none) and the tokenizer: generation stops at any of them."""
    configured = getattr(generation_config, "eos_token_id", None)
    ids = set([configured] if isinstance(configured, int) else configured or [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return frozenset(ids)


def free_memory_bytes(device_type: str) -> int:
    """Memory free for a KV cache: the CUDA device's, else the host's available memory."""
    if device_type == "cuda":
        return torch.cuda.mem_get_info()[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return FALLBACK_FREE_MEMORY
