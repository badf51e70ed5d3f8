"""The prefix cache: its matching and LRU rules in-process, and through the real server a hit
that answers exactly what a cold prefill answers, counted on /metrics."""

from __future__ import annotations

import pytest
import requests

from http_client import post
from sluice.engines.native.prefix_cache import PrefixCache

SYSTEM = ("You are a helpful assistant for a cheese shop. Answer briefly and politely, in the "
          "customer's language, and never invent prices. ") * 3


def tokens(n: int, start: int = 0) -> tuple[int, ...]:
    return tuple(range(start, start + n))


def test_the_longest_cached_whole_block_prefix_is_found_and_the_last_token_is_left_to_prefill():
    cache = PrefixCache(budget_tokens=1000, block=4)
    cache.insert(tokens(8), "kv-8")
    hit = cache.lookup(tokens(8) + (99, 98))
    assert (hit.entry.payload, hit.length) == ("kv-8", 8)
    assert cache.lookup(tokens(8)).length == 4  # the prompt's last token must still be prefilled
    assert cache.lookup(tokens(3) + (50, 51, 52)) is None  # not one whole block in common


def test_a_prompt_differing_inside_a_block_only_reuses_the_blocks_before():
    cache = PrefixCache(budget_tokens=1000, block=4)
    cache.insert(tokens(12), "kv")
    assert cache.lookup(tokens(6) + (77,) * 10).length == 4


def test_only_new_whole_blocks_are_worth_storing():
    cache = PrefixCache(budget_tokens=1000, block=4)
    assert cache.cacheable_length(tokens(3)) == 0
    assert cache.cacheable_length(tokens(10)) == 8
    cache.insert(tokens(8), "kv")
    assert cache.cacheable_length(tokens(10)) == 0  # its whole blocks are cached already
    assert cache.cacheable_length(tokens(13)) == 12


def test_least_recently_used_entries_leave_first_when_over_budget():
    cache = PrefixCache(budget_tokens=8, block=4)
    cache.insert(tokens(4, 0), "a")
    cache.insert(tokens(4, 100), "b")
    assert cache.lookup(tokens(4, 0) + (1,)).entry.payload == "a"  # a is now the most recent
    cache.insert(tokens(4, 200), "c")
    assert cache.lookup(tokens(4, 100) + (1,)) is None
    assert cache.lookup(tokens(4, 0) + (1,)).entry.payload == "a" and cache.cached_tokens == 8


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
