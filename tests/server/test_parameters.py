"""Every generation parameter through the real server: its visible effect, TGI's exact 422 for a
bad value, and values at float32's edges (where sampling runs): a value that would vanish or
overflow is a clear 422 for its sender and costs no other client its stream; one at the edge of
what is accepted still gives finite, strict-JSON log-probabilities."""

from __future__ import annotations

import json

import pytest
import requests

from http_client import generate, post, stream_events, stream_raw, strict_json

PROMPT = "How do you make cheese? First,"


def details(server, prompt=PROMPT, **parameters):
    return generate(server.url, prompt, details=True, **parameters)[0]


def test_greedy_is_deterministic(server):
    first = details(server, max_new_tokens=16)
    second = details(server, max_new_tokens=16)
    assert first["generated_text"] == second["generated_text"]
    assert first["details"]["seed"] is None


def test_same_seed_gives_the_same_sample_and_other_seeds_differ(server):
    runs = [details(server, do_sample=True, seed=seed, max_new_tokens=24) for seed in (7, 7, 8, 9)]
    assert runs[0]["generated_text"] == runs[1]["generated_text"]
    assert runs[0]["details"]["seed"] == 7
    assert len({r["generated_text"] for r in runs}) >= 3


def test_sampling_without_seed_reports_the_seed_it_used(server):
    run = details(server, do_sample=True, max_new_tokens=4)
    again = details(server, do_sample=True, seed=run["details"]["seed"], max_new_tokens=4)
    assert again["generated_text"] == run["generated_text"]


def test_temperature_zero_means_greedy_and_top_k_one_equals_greedy(server):
    greedy = details(server, max_new_tokens=12)["generated_text"]
    assert details(server, do_sample=True, temperature=0.0, max_new_tokens=12)["generated_text"] == greedy
    assert details(server, top_k=1, seed=3, max_new_tokens=12)["generated_text"] == greedy


def test_setting_temperature_turns_sampling_on(server):
    run = details(server, temperature=1.5, seed=11, max_new_tokens=8)
    assert run["details"]["seed"] == 11


def test_max_new_tokens_caps_the_generation(server):
    for n in (1, 7):
        run = details(server, max_new_tokens=n)
        assert run["details"]["generated_tokens"] == n
        assert run["details"]["finish_reason"] == "length"


def test_default_max_new_tokens_is_20(server):
    assert details(server)["details"]["generated_tokens"] == 20


def test_return_full_text_prepends_the_prompt(server):
    bare = details(server, max_new_tokens=6, return_full_text=False)["generated_text"]
    full = details(server, max_new_tokens=6, return_full_text=True)["generated_text"]
    assert full == PROMPT + bare


def test_stop_sequence_ends_generation_with_its_finish_reason(server):
    free = details(server, max_new_tokens=30, return_full_text=False)
    texts = [t["text"] for t in free["details"]["tokens"]]
    # a stop string that spans the boundary between two generated tokens, first seen there
    for k in range(3, 20):
        prefix = "".join(texts[:k])
        stop = (prefix + texts[k])[len(prefix) - 1:len(prefix) + 1]
        if len(stop) == 2 and stop not in prefix:
            break
    else:
        pytest.fail(f"no token boundary to test a spanning stop sequence in {texts}")
    stopped = details(server, max_new_tokens=30, return_full_text=False, stop=[stop])
    assert stopped["details"]["finish_reason"] == "stop_sequence"
    assert stopped["details"]["generated_tokens"] == k + 1
    assert stopped["generated_text"] == "".join(texts[:k + 1])
    streamed = stream_events(server.url, PROMPT, max_new_tokens=30, stop=[stop], details=True,
                             return_full_text=False)
    assert streamed[-1]["details"]["finish_reason"] == "stop_sequence"
    assert streamed[-1]["generated_text"] == stopped["generated_text"]


def test_truncate_keeps_the_last_tokens_of_the_prompt(server):
    long_prompt = "one two three four five six seven eight nine ten " * 3
    whole = details(server, long_prompt, max_new_tokens=1, decoder_input_details=True)["details"]["prefill"]
    cut = details(server, long_prompt, max_new_tokens=1, decoder_input_details=True, truncate=5)["details"]["prefill"]
    assert [t["id"] for t in cut] == [t["id"] for t in whole[-5:]]


def test_repetition_penalty_stops_repeats(server):
    tokens = details(server, "a a a a", max_new_tokens=24, repetition_penalty=1000.0)["details"]["tokens"]
    ids = [t["id"] for t in tokens]
    assert len(set(ids)) == len(ids)


def test_top_n_tokens_lists_the_most_likely_alternatives(server):
    tokens = details(server, max_new_tokens=4, top_n_tokens=3)["details"]
    for chosen, tops in zip(tokens["tokens"], tokens["top_tokens"], strict=True):
        assert len(tops) == 3
        assert [t["logprob"] for t in tops] == sorted((t["logprob"] for t in tops), reverse=True)
        assert tops[0]["id"] == chosen["id"]  # greedy takes the most likely token


def test_best_of_returns_the_other_sequences(server):
    run = details(server, do_sample=True, best_of=2, max_new_tokens=5)
    assert len(run["details"]["best_of_sequences"]) == 1


def test_watermark_and_unknown_keys_and_nulls_are_accepted(server):
    run = generate(server.url, PROMPT, max_new_tokens=3, watermark=True, num_beams=4, no_repeat_ngram_size=3,
                   temperature=None, top_p=None, seed=None)
    assert run[0]["generated_text"]


@pytest.mark.parametrize("parameters, message", [
    ({"temperature": -0.5}, "`temperature` must be strictly positive"),
    ({"top_p": 0.0}, "`top_p` must be > 0.0 and <= 1.0"),
    ({"top_p": 1.5}, "`top_p` must be > 0.0 and <= 1.0"),
    ({"typical_p": 0.0}, "`typical_p` must be > 0.0 and <= 1.0"),
    ({"top_k": 0}, "`top_k` must be strictly positive"),
    ({"repetition_penalty": 0.0}, "`repetition_penalty` must be strictly positive"),
    ({"frequency_penalty": 3.0}, "`frequency_penalty` must be >= -2.0 and <= 2.0"),
    ({"max_new_tokens": 0}, "`max_new_tokens` must be strictly positive"),
    ({"stop": ["a", "b", "c", "d", "e"]}, "`stop` supports up to 4 stop sequences. Given: 5"),
    ({"top_n_tokens": 6}, "`top_n_tokens` must be >= 0 and <= 5. Given: 6"),
    ({"best_of": 3, "do_sample": True}, "`best_of` must be > 0 and <= 2. Given: 3"),
    ({"best_of": 2}, "you must use sampling when `best_of` is > 1"),
    ({"best_of": 2, "do_sample": True, "seed": 1}, "`seed` must not be set when `best_of` > 1"),
    ({"truncate": 0}, "`truncate` must be strictly positive and less than 2047. Given: 0"),
])
def test_invalid_parameter_gets_tgis_exact_422(server, parameters, message):
    response = post(server.url, {"inputs": PROMPT, "parameters": parameters})
    assert response.status_code == 422
    assert response.json() == {"error": f"Input validation error: {message}", "error_type": "validation"}


def test_validation_error_in_a_stream_is_an_in_band_event(server):
    events = stream_events(server.url, PROMPT, temperature=-1.0)
    assert events == [{"error": "Input validation error: `temperature` must be strictly positive",
                       "error_type": "validation"}]


def test_decoder_input_details_cannot_stream(server):
    events = stream_events(server.url, PROMPT, decoder_input_details=True)
    assert events[0]["error"] == ("Input validation error: `decoder_input_details` == true is not supported "
                                  "when streaming tokens")


# --- values at float32's edges ---------------------------------------------------------------

LONG_STREAM_TOKENS = 450
U64_MAX = 2**64 - 1
FLOAT_BOUNDS = "must be >= 1e-37 and <= 1e37"

HOSTILE = [
    ({"do_sample": True, "temperature": 1e-300},
     f"Input validation error: `temperature` {FLOAT_BOUNDS} (or 0 for greedy). Given: 1e-300"),
    ({"do_sample": True, "temperature": 1e39},
     f"Input validation error: `temperature` {FLOAT_BOUNDS} (or 0 for greedy). Given: 1e39"),
    ({"do_sample": True, "top_p": 1e-300},
     "Input validation error: `top_p` must be >= 1e-37 and <= 1.0. Given: 1e-300"),
    ({"do_sample": True, "typical_p": 5e-324},
     "Input validation error: `typical_p` must be >= 1e-37 and <= 1.0. Given: 5e-324"),
    ({"do_sample": True, "repetition_penalty": 1e-40},
     f"Input validation error: `repetition_penalty` {FLOAT_BOUNDS}. Given: 1e-40"),
    ({"repetition_penalty": 1e39},
     f"Input validation error: `repetition_penalty` {FLOAT_BOUNDS}. Given: 1e39"),
    ({"do_sample": True, "seed": 2**64},
     "Failed to deserialize the JSON body into the target type: parameters.seed: invalid value: "
     "integer `18446744073709551616`, expected u64"),
    ({"top_k": 2**31},
     "Failed to deserialize the JSON body into the target type: parameters.top_k: invalid value: "
     "integer `2147483648`, expected i32"),
]

# At the bounds every value is accepted, and sampling must stay finite.
EXTREME_BUT_VALID = [
    {"do_sample": True, "temperature": 1e-37}, {"do_sample": True, "temperature": 1e37},
    {"do_sample": True, "top_p": 1e-37}, {"do_sample": True, "typical_p": 1e-37},
    {"do_sample": True, "repetition_penalty": 1e-37}, {"do_sample": True, "repetition_penalty": 1e37},
]


class LongStream:
    """Another client's stream, opened before the hostile requests and read to its end after."""

    def __init__(self, url: str):
        body = {"inputs": "Tell me a long story", "parameters": {"max_new_tokens": LONG_STREAM_TOKENS}}
        self.response = requests.post(url + "/generate_stream", json=body, stream=True, timeout=300)
        self.lines = self.response.iter_lines()
        self.events = [self._next()]  # its first token: the stream is running in the batch now

    def _next(self) -> dict:
        for line in self.lines:
            if line.startswith(b"data:"):
                return json.loads(line[len(b"data:"):])
        raise AssertionError("the stream ended without a last event")

    def finish(self) -> list[dict]:
        while "generated_text" not in self.events[-1] or self.events[-1]["generated_text"] is None:
            self.events.append(self._next())
            assert "error" not in self.events[-1], self.events[-1]
        return self.events


def assert_stream_refused(url: str, parameters: dict, message: str) -> None:
    """Validation errors come in-band (HTTP 200), as TGI's; a body serde cannot read is a plain 422
    there too, because TGI's JSON extractor refuses it before the stream starts."""
    error = {"error": message, "error_type": "validation"}
    if message.startswith("Failed to deserialize"):
        response = post(url, {"inputs": PROMPT, "parameters": parameters}, path="/generate_stream")
        assert (response.status_code, response.json()) == (422, error)
    else:
        assert stream_events(url, PROMPT, path="/generate_stream", **parameters) == [error]


def test_hostile_values_get_a_422_naming_them_and_a_running_stream_is_unharmed(server):
    neighbour = LongStream(server.url)
    for parameters, message in HOSTILE:
        response = post(server.url, {"inputs": PROMPT, "parameters": parameters}, path="/generate")
        assert (response.status_code, response.json()) == (422, {"error": message, "error_type": "validation"})
        assert_stream_refused(server.url, parameters, message)
    for parameters in EXTREME_BUT_VALID:
        run = generate(server.url, PROMPT, path="/generate", max_new_tokens=8, details=True, **parameters)
        assert run["details"]["generated_tokens"] == 8, parameters
    events = neighbour.finish()
    assert [e["index"] for e in events] == list(range(1, LONG_STREAM_TOKENS + 1))


def test_the_largest_u64_seed_is_used_and_echoed(server):
    run = generate(server.url, PROMPT, path="/generate", do_sample=True, seed=U64_MAX, max_new_tokens=6, details=True)
    again = generate(server.url, PROMPT, path="/generate", do_sample=True, seed=U64_MAX, max_new_tokens=6, details=True)
    assert run["details"]["seed"] == U64_MAX and again["generated_text"] == run["generated_text"]
    events = stream_events(server.url, PROMPT, path="/generate_stream", do_sample=True, seed=U64_MAX,
                           max_new_tokens=6, details=True)
    assert events[-1]["details"]["seed"] == U64_MAX
    assert events[-1]["generated_text"] == run["generated_text"]


# The most extreme values validation accepts (float32's range): the logits they produce must still
# reach the client as strict JSON. (Beyond that range, e.g. `repetition_penalty: 1e300`, which once
# produced `"logprob":NaN`, is a 422: above.)
EXTREME_CHATS = [
    {"messages": [{"role": "user", "content": "hello there"}], "max_tokens": 4, "logprobs": True,
     "top_logprobs": 5, "repetition_penalty": 1e37},
    {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 4, "logprobs": True,
     "top_logprobs": 3, "temperature": 1e-37, "seed": 1},
]


@pytest.mark.parametrize("body", EXTREME_CHATS, ids=["penalty 1e37", "temperature 1e-37"])
def test_extreme_parameters_give_strict_json_logprobs(server, body):
    response = post(server.url, body, path="/v1/chat/completions")
    assert response.status_code == 200
    content = strict_json(response.text)["choices"][0]["logprobs"]["content"]
    assert len(content) == 4
    assert all(e["logprob"] is None or isinstance(e["logprob"], float) for e in content)


@pytest.mark.parametrize("body", EXTREME_CHATS, ids=["penalty 1e37", "temperature 1e-37"])
def test_extreme_parameters_give_strict_json_stream_events(server, body):
    response, raw = stream_raw(server.url, dict(body, stream=True), path="/v1/chat/completions")
    assert response.status_code == 200 and raw.endswith(b"data: [DONE]\n\n")
    chunks = [strict_json(block[len(b"data: "):].decode()) for block in raw.split(b"\n\n")[:-2]]
    assert len(chunks) == 4 and all(c["choices"][0]["logprobs"]["content"] for c in chunks)
