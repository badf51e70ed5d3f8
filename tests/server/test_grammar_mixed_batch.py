"""Issue 11's acceptance, as written: 50 sampled JSON-schema answers and 50 sampled regex answers
(different seeds, temperature 1.0, the untrained model) all valid while they share the batch with
unconstrained streams, and those streams keep flowing to their `max_new_tokens`.

tests/server/test_grammar.py checks 50 + 50 on their own and 8 constrained beside 8 streams; here all
100 run while the streams are generating: the streams are in the batch before the first
constrained request is sent and still there after the last constrained answer came back.
"""

from __future__ import annotations

import concurrent.futures as futures
import json
import re

import jsonschema
import requests

from grammar_cases import REGEX, SCHEMA, constrained
from http_client import sse_events, wait_for

STREAMS = 4
STREAM_TOKENS = 800  # several times the steps the 100 constrained answers need (about 200)


def batch_size(url: str) -> float:
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("tgi_batch_current_size "):
            return float(line.split()[-1])
    raise AssertionError("tgi_batch_current_size not in /metrics")


class Stream:
    """An unconstrained sampled stream, read up to its first token when opened."""

    def __init__(self, url: str, index: int):
        body = {"inputs": f"Story {index}:", "stream": True,
                "parameters": {"max_new_tokens": STREAM_TOKENS, "do_sample": True, "seed": index, "details": True}}
        self.response = requests.post(url + "/generate_stream", json=body, stream=True, timeout=600)
        self.chunks = self.response.iter_content(chunk_size=None)
        self.raw = next(self.chunks)

    def events(self) -> list[dict]:
        return sse_events(self.raw + b"".join(self.chunks))


def test_fifty_json_and_fifty_regex_answers_all_valid_in_a_batch_with_unconstrained_streams(server):
    streams = [Stream(server.url, i) for i in range(STREAMS)]
    # The unconstrained rows are generating: the engine thread writes the gauge just after a
    # newcomer's first token is published, so wait for it rather than read it once.
    wait_for(lambda: batch_size(server.url) >= STREAMS, "the unconstrained streams in the batch", timeout=10)

    grammars = [{"type": "json", "value": SCHEMA}] * 50 + [{"type": "regex", "value": REGEX}] * 50
    with futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda item: constrained(server.url, item[1], seed=item[0]), enumerate(grammars)))
    still_running = batch_size(server.url)

    for answer in answers[:50]:
        jsonschema.validate(json.loads(answer["generated_text"]), SCHEMA)
        assert answer["details"]["finish_reason"] == "eos_token"
    for answer in answers[50:]:
        assert re.fullmatch(REGEX, answer["generated_text"]), answer["generated_text"]
    assert len({a["generated_text"] for a in answers[:50]}) > 1  # sampled: the seeds differ, so do answers

    assert still_running >= STREAMS, "the streams ended before the constrained answers: they did not share the batch"
    for stream in streams:
        events = stream.events()
        assert all("error" not in e for e in events)
        assert [e["index"] for e in events] == list(range(1, STREAM_TOKENS + 1))
        assert events[-1]["details"]["finish_reason"] == "length"
