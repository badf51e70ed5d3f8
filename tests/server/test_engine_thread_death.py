"""The engine thread dying, through the real `container/serve` process: docs/operating.md says
`/ping` answers 503 again if the engine stops, and docs/http-api.md's error table gives requests
the same 503 `healthcheck` ("or the engine thread stopped"). Found by an on-call probe: `/ping`
said 503, but every request in flight hung (keep-alive comments only, until
SAGEMAKER_MODEL_SERVER_TIMEOUT's hour) and every new request was taken and hung too.

Nothing a client sends is known to stop the engine's loop (a failed step fails its rows and the
loop goes on), so the death is injected from outside the code under test: a `sitecustomize` on the
server's PYTHONPATH wraps the native engine's admission (`_begin_prefills`, outside the loop's
guarded step) so that a request with POISON_SEED raises there, as any bug outside the step would.
Everything else is the production server.
"""

from __future__ import annotations

import time

import pytest
import requests

from fault_injection import poisoning_sitecustomize
from http_client import post, sse_events, wait_for

POISON_SEED = 4343
ENGINE_STOPPED = {"error": "The generation engine has stopped", "error_type": "healthcheck"}
NEIGHBOUR_TOKENS = 1500  # far more than it can generate before the engine dies

SITECUSTOMIZE = poisoning_sitecustomize("sluice.engines.native.engine", f"""
    def _poison(module):
        begin = module.NativeEngine._begin_prefills

        def begin_or_die(self, newcomers):
            if any(s.sampler.seed == {POISON_SEED} for s in newcomers):
                raise RuntimeError("injected: the engine loop broke outside its guarded step")
            return begin(self, newcomers)

        module.NativeEngine._begin_prefills = begin_or_die
        print("sluice-test: NativeEngine._begin_prefills poisoned for seed {POISON_SEED}", file=sys.stderr, flush=True)
""")


@pytest.fixture
def poisoned_server(start_server, tmp_path):
    (tmp_path / "sitecustomize.py").write_text(SITECUSTOMIZE)
    process = start_server({"PYTHONPATH": str(tmp_path), "RESPONSE_CACHE_SIZE": "0", "MAX_CONCURRENT_REQUESTS": "8"})
    assert "_begin_prefills poisoned" in process.log_text(), process.log_tail()
    return process


def test_when_the_engine_thread_dies_requests_end_and_new_ones_get_503_at_once(poisoned_server):
    url = poisoned_server.url
    body = {"inputs": "Tell me a long story", "parameters": {"max_new_tokens": NEIGHBOUR_TOKENS}}
    neighbour = requests.post(url + "/generate_stream", json=body, stream=True, timeout=60)
    chunks = neighbour.iter_content(chunk_size=None)
    raw = next(chunks)  # generating now

    started = time.monotonic()
    victim = post(url, {"inputs": "Hi", "parameters": {"do_sample": True, "seed": POISON_SEED}}, path="/generate")
    # the request that met the dead engine gets an error answer, not an hour's wait
    assert victim.status_code >= 500 and "error" in victim.json(), victim.text
    assert time.monotonic() - started < 10
    wait_for(lambda: requests.get(url + "/ping", timeout=2).status_code == 503, "/ping says 503", timeout=10)

    # the stream that was running ends with an in-band error event after the tokens it had
    raw += b"".join(chunks)
    events = sse_events(raw)
    assert "error" in events[-1] and all("error" not in e for e in events[:-1]), events[-1]
    assert len(events) - 1 < NEIGHBOUR_TOKENS
    assert time.monotonic() - started < 15

    # new requests, streamed or not, are refused at once with the error table's 503
    for path, payload in (("/generate", {"inputs": "Hi"}), ("/generate_stream", {"inputs": "Hi"}),
                          ("/invocations", {"inputs": "Hi", "stream": True})):
        asked = time.monotonic()
        response = requests.post(url + path, json=payload, timeout=10)
        assert (response.status_code, response.json()) == (503, ENGINE_STOPPED), (path, response.text)
        assert time.monotonic() - asked < 2
    assert "injected: the engine loop broke" in poisoned_server.log_text()  # the cause is in the log
