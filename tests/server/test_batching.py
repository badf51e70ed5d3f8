"""Continuous batching seen from clients: independence, invariance, backpressure, cancellation,
and health checks while the batch is full."""

from __future__ import annotations

import concurrent.futures as futures
import re
import threading
import time

import requests

from http_client import generate, metric, open_stream_and_hang_up, send_raw, sse_events, stream_raw, wait_for

PROMPTS = ["Tell me about cheese.", "如何做网站？", "ウェブサイトを作成する方法は?", "The weather in Paris",
           "A short story: once upon a time, in a small village by the sea, there lived",
           "SageMaker endpoints", "1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16", "Hi"]


def alone(url, prompt, **parameters):
    return generate(url, prompt, return_full_text=False, details=True, **parameters)[0]


def stream_text(url, prompt, **parameters):
    response, raw = stream_raw(url, {"inputs": prompt, "stream": True,
                                     "parameters": dict(parameters, return_full_text=False)})
    assert response.status_code == 200
    return sse_events(raw)[-1]["generated_text"]


def test_concurrent_streams_complete_with_the_outputs_they_get_alone(server):
    lengths = [8, 40, 16, 64, 24, 12, 48, 32]
    expected = [alone(server.url, p, max_new_tokens=n)["generated_text"] for p, n in zip(PROMPTS, lengths, strict=True)]
    with futures.ThreadPoolExecutor(len(PROMPTS)) as pool:
        results = list(pool.map(lambda pn: stream_text(server.url, pn[0], max_new_tokens=pn[1]),
                                zip(PROMPTS, lengths, strict=True)))
    assert results == expected


def test_seeded_sample_is_the_same_whatever_else_is_running(server):
    parameters = dict(do_sample=True, seed=1234, temperature=0.9, top_k=50, max_new_tokens=32)
    quiet = alone(server.url, PROMPTS[0], **parameters)["generated_text"]
    with futures.ThreadPoolExecutor(6) as pool:
        noise = [pool.submit(stream_text, server.url, p, max_new_tokens=48) for p in PROMPTS[1:6]]
        wait_for(lambda: metric(server.url, "tgi_batch_current_size") >= 1 or all(n.done() for n in noise),
                 "the other requests are generating")
        busy = alone(server.url, PROMPTS[0], **parameters)["generated_text"]
        [n.result() for n in noise]
    assert busy == quiet


def test_overload_answers_429_with_tgis_body_and_in_band_when_streaming(start_server):
    small = start_server(env={"MAX_CONCURRENT_REQUESTS": "2", "RESPONSE_CACHE_SIZE": "0"})
    overloaded = {"error": "Model is overloaded", "error_type": "overloaded"}

    def plain(_):
        response = requests.post(small.url + "/invocations", timeout=60,
                                 json={"inputs": "Hello", "parameters": {"max_new_tokens": 100}})
        return response.status_code, response.json()

    def streamed(_):
        response, raw = stream_raw(small.url, {"inputs": "Hello", "stream": True,
                                               "parameters": {"max_new_tokens": 100}})
        return response.status_code, sse_events(raw)

    with futures.ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(plain, range(12)))
        streams = list(pool.map(streamed, range(12)))
    # every request got an answer: either its generation or TGI's overload error, nothing else
    assert {status for status, _ in answers} == {200, 429}
    assert all(body == overloaded for status, body in answers if status == 429)
    assert all(body[0]["generated_text"].startswith("Hello") for status, body in answers if status == 200)
    assert all(status == 200 for status, _ in streams)
    rejected = [events for _, events in streams if events == [overloaded]]
    served = [events for _, events in streams if events != [overloaded]]
    assert rejected and served
    assert all(len(events) == 100 and events[-1]["generated_text"] for events in served)
    # and the slots all come back: one more request is served
    assert requests.post(small.url + "/invocations", json={"inputs": "x"}, timeout=30).status_code == 200


def test_a_client_that_disconnects_mid_stream_frees_its_sequence(start_server):
    process = start_server()
    open_stream_and_hang_up(process.url)
    wait_for(lambda: "cancelled (client disconnected)" in process.log_text(), "the engine cancels the sequence",
             detail=process.log_tail)
    assert "slot freed" in process.log_text()
    wait_for(lambda: not (metric(process.url, "sluice_requests_in_flight") or
                          metric(process.url, "tgi_batch_current_size")),
             "the hung-up request frees its slot and batch row")
    assert metric(process.url, "sluice_request_cancelled") == 1


def test_ping_answers_within_sagemakers_budget_while_8_streams_run(server):
    stop = threading.Event()
    statuses = []

    def ping_loop():
        while not stop.is_set():
            statuses.append(requests.get(server.url + "/ping", timeout=2).status_code)
            time.sleep(0.02)

    with futures.ThreadPoolExecutor(9) as pool:
        # Long enough that the pinger gets well over 10 answers in while they run (96 tokens gave
        # exactly 10 on a fast run: the count, not the latency, failed).
        streams = [pool.submit(stream_text, server.url, p, max_new_tokens=256) for p in PROMPTS]
        pinger = pool.submit(ping_loop)
        [s.result() for s in streams]
        stop.set()
        pinger.result()  # a ping slower than 2 s raises here (SageMaker's timeout)
    assert len(statuses) > 10 and set(statuses) == {200}


def test_kv_budget_admits_only_what_fits_and_queues_the_rest_in_order(start_server):
    # each request needs its prompt + 100 new tokens of KV: two of them never fit in 200
    tight = start_server(env={"MAX_TOTAL_TOKENS": "128", "MAX_INPUT_TOKENS": "64",
                              "MAX_BATCH_TOTAL_TOKENS": "200", "RESPONSE_CACHE_SIZE": "0"})
    expected = [alone(tight.url, p, max_new_tokens=100)["generated_text"] for p in PROMPTS[:4]]
    batch_sizes, queue_sizes = [], []
    with futures.ThreadPoolExecutor(5) as pool:
        streams = [pool.submit(stream_text, tight.url, p, max_new_tokens=100) for p in PROMPTS[:4]]
        while not all(s.done() for s in streams):
            batch_sizes.append(metric(tight.url, "tgi_batch_current_size"))
            queue_sizes.append(metric(tight.url, "tgi_queue_size"))
            time.sleep(0.01)
        results = [s.result() for s in streams]
    assert results == expected
    assert max(batch_sizes) == 1
    assert max(queue_sizes) >= 1


def test_an_abandoned_stream_is_never_replayed_from_the_cache(start_server):
    cached = start_server()  # response cache on (the default)
    open_stream_and_hang_up(cached.url, max_new_tokens=400)  # the same request as below, hung up early
    wait_for(lambda: metric(cached.url, "sluice_requests_in_flight") == 0, "the hung-up stream frees its slot")
    response = requests.post(cached.url + "/invocations", timeout=120, json={
        "inputs": "Tell me a long story", "parameters": {"max_new_tokens": 400, "details": True}})
    assert response.headers["x-sluice-cache"] == "miss"
    assert response.json()[0]["details"]["generated_tokens"] == 400


def test_a_stream_waiting_in_the_queue_gets_sse_keep_alives(start_server):
    # one request fills the KV budget; the next waits in the queue, and its stream stays alive
    queued = start_server(env={"MAX_BATCH_TOTAL_TOKENS": "2100", "SSE_KEEPALIVE_SECONDS": "1",
                               "RESPONSE_CACHE_SIZE": "0"})
    with futures.ThreadPoolExecutor(2) as pool:
        first = pool.submit(stream_raw, queued.url, {"inputs": "Hello", "stream": True,
                                                     "parameters": {"max_new_tokens": 1800}})
        wait_for(lambda: metric(queued.url, "tgi_batch_current_size") == 1, "the first request is generating")
        response, raw = stream_raw(queued.url, {"inputs": "Hi", "stream": True, "parameters": {"max_new_tokens": 400}})
        first.result()
    assert raw.startswith(b":\n\n"), raw[:40]
    events = sse_events(raw[raw.index(b"data: "):])
    assert len(events) == 400 and events[-1]["generated_text"].startswith("Hi")


def _cancelled_after(process) -> list[int]:
    """How many tokens each cancelled sequence had generated, from the engine's log."""
    return [int(n) for n in re.findall(r"cancelled \(client disconnected\) after (\d+) tokens", process.log_text())]


def test_abandoned_non_streaming_requests_are_all_cancelled_and_free_their_slots(start_server):
    clients = 5  # every slot: a request left running would keep one
    small = start_server(env={"MAX_CONCURRENT_REQUESTS": str(clients), "RESPONSE_CACHE_SIZE": "0"})
    body = {"inputs": "Tell me a long story", "parameters": {"max_new_tokens": 900}}
    sockets = [send_raw(small.url, "/generate", body) for _ in range(clients)]
    wait_for(lambda: metric(small.url, "tgi_batch_current_size") == clients, "all requests are generating")
    for sock in sockets:
        sock.close()
    wait_for(lambda: metric(small.url, "sluice_request_cancelled") == clients, "every request is cancelled")
    wait_for(lambda: metric(small.url, "sluice_requests_in_flight") == 0, "every slot is free")
    wait_for(lambda: metric(small.url, "tgi_batch_current_size") == 0, "every batch row is free")
    assert metric(small.url, "tgi_request_success") == 0
    wait_for(lambda: len(_cancelled_after(small)) == clients, "the engine logged every cancellation",
              detail=lambda: small.log_tail(15))
    assert max(_cancelled_after(small)) < 900, _cancelled_after(small)
    # every slot came back: a full set of new requests is admitted, none refused with 429
    for _ in range(clients):
        generate(small.url, "Hi", path="/generate", max_new_tokens=2)
