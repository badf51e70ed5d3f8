"""Issue 13 item 9 / issue 14 item 1, through the real `container/serve` process: when choosing
one request's next token fails, only that request gets the 424; the other clients' streams, running
in the same batch, run to their end with the tokens they would have had alone.

Validation now refuses every value known to break sampling (tests/server/test_parameters.py), so
the failure is injected from outside the code under test: a `sitecustomize` on the server's
PYTHONPATH wraps `SequenceSampler.pick` so that a sampler seeded with POISON_SEED raises on its
fifth token, as torch's multinomial does on a NaN row. Everything else is the production server.
"""

from __future__ import annotations

import time

import pytest
import requests

from fault_injection import poisoning_sitecustomize
from http_client import generate, post, sse_events, stream_raw, wait_for

POISON_SEED = 4242
FAIL_AT = 5  # the poisoned sampler's fifth pick raises: four tokens reach the client first
ROW_FAILED = {"error": "Request failed during generation: choosing the next token failed", "error_type": "generation"}
NEIGHBOUR_TOKENS = 200  # long enough to span the victim's whole life

SITECUSTOMIZE = poisoning_sitecustomize("sluice.engines.native.sampling", f"""
    def _poison(module):
        pick = module.SequenceSampler.pick

        def pick_or_fail(self, logits):
            if self.seed == {POISON_SEED}:
                self._poison_calls = getattr(self, "_poison_calls", 0) + 1
                if self._poison_calls == {FAIL_AT}:
                    raise RuntimeError("probability tensor contains either `inf`, `nan` or element < 0")
            return pick(self, logits)

        module.SequenceSampler.pick = pick_or_fail
        print("sluice-test: SequenceSampler.pick poisoned for seed {POISON_SEED}", file=sys.stderr, flush=True)
""")


@pytest.fixture(scope="module")
def poisoned_server(tiny_model_dir, tmp_path_factory):
    from deploy.local import ContainerProcess

    hook_dir = tmp_path_factory.mktemp("poison")
    (hook_dir / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {"PYTHONPATH": str(hook_dir), "RESPONSE_CACHE_SIZE": "0", "MAX_CONCURRENT_REQUESTS": "16"}
    with ContainerProcess(tiny_model_dir, env=env) as process:
        assert "SequenceSampler.pick poisoned" in process.log_text(), process.log_tail()
        yield process


class Neighbour:
    """Another client's stream, already generating (its first event read) when the victim arrives."""

    def __init__(self, url: str, **parameters):
        body = {"inputs": "Tell me a long story", "stream": True,
                "parameters": dict(max_new_tokens=NEIGHBOUR_TOKENS, details=True, **parameters)}
        self.response = requests.post(url + "/generate_stream", json=body, stream=True, timeout=300)
        self.chunks = self.response.iter_content(chunk_size=None)
        self.raw = next(self.chunks)

    def finish(self) -> list[dict]:
        return sse_events(self.raw + b"".join(self.chunks))


def _batch_size(url: str) -> float:
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        if line.startswith("tgi_batch_current_size "):
            return float(line.split()[-1])
    raise AssertionError("tgi_batch_current_size not in /metrics")


def _settled_batch_size(url: str, leaving: float) -> float:
    """The batch size once it is no longer ``leaving`` (the engine drops a failed row just after
    the client has its error); polled, with a bound far above the few steps that takes."""
    deadline = time.monotonic() + 30
    while (size := _batch_size(url)) == leaving and time.monotonic() < deadline:
        time.sleep(0.01)
    return size


def _victim_parameters() -> dict:
    return {"do_sample": True, "seed": POISON_SEED, "max_new_tokens": 40, "details": True}


def test_a_failing_row_gets_its_424_and_the_running_streams_finish_untouched(poisoned_server):
    url = poisoned_server.url
    failures_before = poisoned_server.log_text().count("the other rows continue")
    greedy_alone = generate(url, "Tell me a long story", path="/generate", max_new_tokens=NEIGHBOUR_TOKENS)
    sampled_alone = generate(url, "Tell me a long story", path="/generate", max_new_tokens=NEIGHBOUR_TOKENS,
                             do_sample=True, seed=7)
    neighbours = [Neighbour(url), Neighbour(url, do_sample=True, seed=7)]
    # Both neighbours are generating now (the gauge follows a newcomer's first token by a moment).
    wait_for(lambda: _batch_size(url) == 2, "both neighbours in the batch", timeout=10)

    # the victim, non-streamed: a 424 JSON body with a fixed text, no torch internals
    response = post(url, {"inputs": "Hi", "parameters": _victim_parameters()}, path="/generate")
    assert (response.status_code, response.json()) == (424, ROW_FAILED)
    # the victim, streamed: its four tokens, then the error in-band (HTTP 200), as TGI
    _, raw = stream_raw(url, {"inputs": "Hi", "parameters": _victim_parameters()}, path="/generate_stream")
    events = sse_events(raw)
    assert [e.get("index") for e in events[:-1]] == list(range(1, FAIL_AT))
    assert events[-1] == ROW_FAILED
    # the neighbours were generating before the failures and still are, once the victim's row has left
    assert _settled_batch_size(url, leaving=3) == 2

    for neighbour, alone in zip(neighbours, (greedy_alone, sampled_alone), strict=True):
        streamed = neighbour.finish()
        assert all("error" not in e for e in streamed), [e for e in streamed if "error" in e]
        assert [e["index"] for e in streamed] == list(range(1, NEIGHBOUR_TOKENS + 1))
        assert streamed[-1]["generated_text"] == alone["generated_text"]  # the same tokens as alone

    log = poisoned_server.log_text()
    assert "probability tensor contains" in log  # the cause is in the log ...
    assert log.count("the other rows continue") - failures_before == 2  # ... once per failed request
    assert requests.get(url + "/ping", timeout=2).status_code == 200


def test_a_failing_row_does_not_fail_the_others_in_a_concurrent_burst(poisoned_server):
    """Eight clients at once, one of them poisoned: seven 200s and exactly one 424."""
    import concurrent.futures as futures

    def one(index):
        parameters = _victim_parameters() if index == 3 else {"do_sample": True, "seed": index, "max_new_tokens": 40}
        response = post(poisoned_server.url, {"inputs": f"Story {index}:", "parameters": parameters}, path="/generate")
        return response.status_code, response.json()

    with futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(8)))
    assert answers[3] == (424, ROW_FAILED)
    assert [status for i, (status, _) in enumerate(answers) if i != 3] == [200] * 7
    assert all("generated_text" in body for i, (_, body) in enumerate(answers) if i != 3)
