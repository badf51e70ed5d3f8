"""The cache gauges on the vLLM engine: vLLM keeps prompt prefixes inside its own KV cache."""

from __future__ import annotations

from http_client import generate, metric


def cache_gauges(url: str) -> dict[str, float]:
    values = {f"prefix_{name}": metric(url, f"sluice_prefix_cache_{name}")
              for name in ("entries", "tokens", "bytes", "capacity_tokens")}
    values.update({f"response_{name}": metric(url, f"sluice_response_cache_{name}")
                   for name in ("entries", "bytes", "capacity_entries")})
    return values


def test_on_the_vllm_engine_the_prefix_gauges_say_there_is_no_separate_prefix_cache(vllm_server):
    """vLLM keeps prefixes inside its own KV cache (no memory beyond it): Sluice's prefix gauges
    read 0 there, and the response cache's are Sluice's own on both engines."""
    prompt = "Request 1: " + " ".join(f"word{j}" for j in range(24))
    generate(vllm_server.url, prompt, path="/generate", max_new_tokens=2)
    gauges = cache_gauges(vllm_server.url)
    assert (gauges["prefix_entries"], gauges["prefix_bytes"], gauges["prefix_capacity_tokens"]) == (0, 0, 0)
    assert gauges["response_capacity_entries"] == 0  # this fixture runs with RESPONSE_CACHE_SIZE=0
