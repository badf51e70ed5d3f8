"""The native engine's warm-up through the real server: it runs before the server is ready, says
so at start-up, leaves nothing a client or an operator can see, and ``SLUICE_WARMUP=0`` turns it
off (what it runs: unit/test_warmup_plan)."""

from __future__ import annotations

import re

import pytest

from http_client import metric, post

PROMPT = "How do I make cheese?"


def first_answer(url: str) -> tuple[str, list[int], list[float]]:
    response = post(url, {"inputs": PROMPT, "parameters": {"max_new_tokens": 24, "details": True}})
    assert response.status_code == 200, response.text
    body = response.json()[0]
    tokens = body["details"]["tokens"]
    return body["generated_text"], [t["id"] for t in tokens], [t["logprob"] for t in tokens]


def test_the_warmup_runs_before_ready_and_the_first_answer_is_the_one_without_it(start_server):
    warm = start_server(env={"RESPONSE_CACHE_SIZE": "0"})
    line = re.search(r"warm-up: (\d+) sequences at batch sizes 1–(\d+) in [\d.]+ s\n", warm.log_text())
    assert line is not None, warm.log_tail()
    assert int(line.group(2)) == 64 and int(line.group(1)) == 1 + 2 + 4 + 8 + 16 + 32 + 64 + 1
    # Nothing of it shows: no request counted, no prefix kept, no finished sequence.
    assert metric(warm.url, "tgi_request_count") == 0
    assert metric(warm.url, "sluice_prefix_cache_entries") == 0
    assert metric(warm.url, "sluice_prefix_cache_tokens") == 0
    cold = start_server(env={"RESPONSE_CACHE_SIZE": "0", "SLUICE_WARMUP": "0"})
    assert "warm-up: off (SLUICE_WARMUP=0)" in cold.log_text()
    text, ids, logprobs = first_answer(warm.url)
    cold_text, cold_ids, cold_logprobs = first_answer(cold.url)
    assert (text, ids) == (cold_text, cold_ids)
    assert logprobs == pytest.approx(cold_logprobs, abs=1e-4)
    assert metric(warm.url, "sluice_prefix_cache_hits") == 0  # its prompt matched nothing the warm-up ran
