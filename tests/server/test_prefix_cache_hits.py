"""The prefix cache through the real server: a hit answers exactly what a cold prefill answers,
and is counted on /metrics (its matching rules: unit/test_prefix_cache)."""

from __future__ import annotations

import pytest
import requests

from http_client import post

SYSTEM = ("You are a helpful assistant for a cheese shop. Answer briefly and politely, in the "
          "customer's language, and never invent prices. ") * 3


def answer(url: str, prompt: str) -> tuple[str, list[int], list[float]]:
    response = post(url, {"inputs": prompt, "parameters": {"max_new_tokens": 24, "details": True}})
    assert response.status_code == 200
    body = response.json()[0]
    tokens = body["details"]["tokens"]
    return body["generated_text"], [t["id"] for t in tokens], [t["logprob"] for t in tokens]


def prefix_hits(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return float(next(line.split()[1] for line in text.splitlines()
                      if line.startswith("sluice_prefix_cache_hits ")))


def test_a_prompt_sharing_a_cached_prefix_gets_the_cold_answer(start_server):
    """The same text and tokens; log-probabilities agree to float32 rounding (the suffix is a
    smaller matmul than the whole prompt), as they do across batch compositions."""
    server = start_server(env={"RESPONSE_CACHE_SIZE": "0"})
    question = SYSTEM + "Question: how long does brie keep?"
    cold_text, cold_ids, cold_logprobs = answer(server.url, question)
    assert prefix_hits(server.url) == 0
    text, ids, logprobs = answer(server.url, question)
    other = answer(server.url, SYSTEM + "Question: what is a rind?")
    assert prefix_hits(server.url) == 2
    assert (text, ids) == (cold_text, cold_ids) and other[0] != text
    assert logprobs == pytest.approx(cold_logprobs, abs=1e-4)
