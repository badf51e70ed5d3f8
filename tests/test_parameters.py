"""Every generation parameter: its visible effect, and TGI's exact 422 message for bad values."""

from __future__ import annotations

import pytest

from http_client import generate, post, stream_events

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
    ids = [t["id"] for t in details(server, "a a a a", max_new_tokens=24, repetition_penalty=1000.0)["details"]["tokens"]]
    assert len(set(ids)) == len(ids)


def test_top_n_tokens_lists_the_most_likely_alternatives(server):
    tokens = details(server, max_new_tokens=4, top_n_tokens=3)["details"]
    for chosen, tops in zip(tokens["tokens"], tokens["top_tokens"]):
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
