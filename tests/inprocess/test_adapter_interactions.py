"""LoRA adapters beside the other per-request features of the native engine: stateful sessions
(whose conversations stay pinned in the prefix cache) and the biases chosen per row (TGI's
watermark, OpenAI's ``logit_bias``).

A session's pinned KV was computed with one adapter, so only a later turn with that adapter may
reuse it; the other turns of the session prefill in full and answer exactly as with no cache at
all. A batch whose rows mix adapters with watermarked and biased rows gives every row what it
gives alone, and each row's own choice shows (float32, greedy).
"""

from __future__ import annotations

import dataclasses
import time

import pytest
from native_engine import adapter_engine, drain, request, with_adapter

from sluice.request import SessionPin

pytest.importorskip("peft", reason="the adapters are PEFT directories (requirements/dev.txt)")

BLOCK = 16  # the prefix cache's block
SYSTEM = "You are the cheese shop's assistant; answer briefly and kindly. " * 2
FORCED = 300  # a token id the tiny model's vocabulary holds


def run_alone(engine, valids) -> list[list[int]]:
    """Each request's tokens, one after another on a started ``engine`` (closed afterwards)."""
    engine.start()
    try:
        return [drain(engine.submit(valid))[0] for valid in valids]
    finally:
        engine.close(10)


def in_session(valid, session: SessionPin):
    return dataclasses.replace(valid, session=session)


def wait_for_pin(engine, timeout: float = 10.0) -> int:
    """The pinned tokens once the engine has pinned a finished turn (just after its last token)."""
    deadline = time.monotonic() + timeout
    while not engine.stats.prefix_cache_pinned_tokens and time.monotonic() < deadline:
        time.sleep(0.01)
    return engine.stats.prefix_cache_pinned_tokens


def test_a_sessions_next_turn_reuses_its_pinned_kv_only_with_the_adapter_that_computed_it(lora_model, tiny_adapters):
    loaded, shapes = lora_model
    session = SessionPin("s1", time.time() + 600)
    first = request(loaded, SYSTEM + "Which cheese goes with pears?", max_new_tokens=12)
    engine, refs = adapter_engine(loaded, shapes, tiny_adapters)
    engine.start()
    try:
        answer = drain(engine.submit(in_session(with_adapter(first, refs["a"]), session)))[0]
        pinned = wait_for_pin(engine)
        assert pinned == (first.input_length + len(answer) - 1) // BLOCK * BLOCK >= 2 * BLOCK
        follow_up = loaded.tokenizer(" And with apples?", add_special_tokens=False)["input_ids"]
        second = dataclasses.replace(first, input_ids=first.input_ids + tuple(answer) + tuple(follow_up))
        turns, hits = {}, {}
        for name in ("b", None, "a"):  # another adapter and the base first: the pin must not serve them
            before = engine.stats.prefix_cache_hit_tokens
            turns[name] = drain(engine.submit(in_session(with_adapter(second, refs.get(name)), session)))[0]
            hits[name] = engine.stats.prefix_cache_hit_tokens - before
    finally:
        engine.close(10)
    assert hits == {"b": 0, None: 0, "a": pinned}

    uncached, _ = adapter_engine(loaded, shapes, tiny_adapters, prefix_tokens=0)
    expected = run_alone(uncached, [with_adapter(second, refs.get(name)) for name in turns])
    assert list(turns.values()) == expected  # reused or not, each turn answers as with no cache
    assert len({tuple(tokens) for tokens in expected}) == 3  # the three really differ


def test_unregistering_an_adapter_drops_its_pinned_conversation(lora_model, tiny_adapters):
    loaded, shapes = lora_model
    engine, refs = adapter_engine(loaded, shapes, tiny_adapters)
    valid = request(loaded, SYSTEM + "Is brie a soft cheese?", max_new_tokens=8)
    engine.start()
    try:
        drain(engine.submit(in_session(with_adapter(valid, refs["b"]), SessionPin("s2", time.time() + 600))))
        assert wait_for_pin(engine) > 0
        engine.remove_adapter(refs["b"])
        deadline = time.monotonic() + 10
        while engine.stats.prefix_cache_pinned_tokens and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        engine.close(10)
    assert (engine.stats.prefix_cache_pinned_tokens, engine.stats.prefix_cache_tokens) == (0, 0)


def biased(valid, *, watermark: bool = False, logit_bias: tuple[tuple[int, float], ...] = ()):
    sampling = dataclasses.replace(valid.request.sampling, watermark=watermark, logit_bias=logit_bias)
    return dataclasses.replace(valid, request=dataclasses.replace(valid.request, sampling=sampling))


def test_a_batch_mixing_adapters_with_watermarked_and_biased_rows_gives_each_row_its_own_tokens(
        lora_model, tiny_adapters):
    loaded, shapes = lora_model
    prompts = ["The cheese shop opens at nine", "Rice needs water", "How do websites load so fast?"]
    plain = [request(loaded, prompt, max_new_tokens=12) for prompt in prompts]
    reference, refs = adapter_engine(loaded, shapes, tiny_adapters, prefix_tokens=0)
    rows = {
        "a": with_adapter(plain[0], refs["a"]),
        "base, watermark": biased(plain[1], watermark=True),
        "b, logit_bias": with_adapter(biased(plain[2], logit_bias=((FORCED, 100.0),)), refs["b"]),
        "a, watermark": with_adapter(biased(plain[1], watermark=True), refs["a"]),
        "base": plain[1],
        "a, unbiased": with_adapter(plain[1], refs["a"]),
    }
    alone = dict(zip(rows, run_alone(reference, rows.values()), strict=True))

    engine, _ = adapter_engine(loaded, shapes, tiny_adapters, prefix_tokens=0)  # the same refs
    sequences = [engine.submit(valid) for valid in rows.values()]  # all waiting before the first step
    engine.start()
    try:
        together = dict(zip(rows, (drain(sequence)[0] for sequence in sequences), strict=True))
    finally:
        engine.close(10)
    assert together == alone
    assert alone["base, watermark"] != alone["base"]  # the watermark changed the base row
    assert alone["a, watermark"] not in (alone["a, unbiased"], alone["base, watermark"])  # both applied
    assert alone["b, logit_bias"] == [FORCED] * 12
