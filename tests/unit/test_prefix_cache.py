"""The prefix cache's matching and LRU rules (through the real server: server/test_prefix_cache_hits)."""

from __future__ import annotations

from sluice.engines.native.prefix_cache import PrefixCache


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


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def pinned_payload(name: str):
    return lambda: (name, 0)


def test_a_sessions_pinned_conversation_outlives_lru_pressure_until_it_is_released():
    cache = PrefixCache(budget_tokens=16, block=4, clock=Clock())
    cache.pin("s1", 2000.0, tokens(8), pinned_payload("conversation"))
    for start in range(100, 400, 100):  # three times the room left by the pin
        cache.insert(tokens(8, start), f"other-{start}")
    assert cache.lookup(tokens(8) + (1,)).entry.payload == "conversation"
    assert cache.cached_tokens <= cache.budget_tokens and cache.pinned_tokens == 8
    cache.release("s1")
    cache.insert(tokens(8, 500), "a")
    cache.insert(tokens(8, 600), "b")
    assert cache.lookup(tokens(8) + (1,)) is None and cache.pinned_tokens == 0


def test_pins_hold_at_most_their_share_and_the_oldest_session_yields():
    cache = PrefixCache(budget_tokens=32, block=4, clock=Clock())  # pins: 16 tokens at most
    cache.pin("old", 2000.0, tokens(8, 0), pinned_payload("old"))
    cache.pin("mid", 2000.0, tokens(8, 100), pinned_payload("mid"))
    cache.pin("new", 2000.0, tokens(8, 200), pinned_payload("new"))
    assert cache.pinned_tokens == 16 and cache.pinned_sessions == 2
    for start in range(300, 700, 100):
        cache.insert(tokens(8, start), "pressure")
    assert cache.lookup(tokens(8, 0) + (1,)) is None  # unpinned, then evicted like any entry
    assert cache.lookup(tokens(8, 200) + (1,)).entry.payload == "new"
    assert cache.cached_tokens <= 32
    cache.pin("huge", 2000.0, tokens(20, 800), pinned_payload("huge"))  # over the share: not pinned
    assert cache.pinned_sessions == 2 and cache.lookup(tokens(20, 800) + (1,)) is None


def test_a_sessions_next_turn_replaces_its_pin_and_an_expired_pin_lapses():
    clock = Clock()
    cache = PrefixCache(budget_tokens=64, block=4, clock=clock)
    cache.pin("s", 1010.0, tokens(8), pinned_payload("turn 1"))
    cache.pin("s", 1010.0, tokens(12), pinned_payload("turn 2"))
    assert cache.pinned_tokens == 12 and cache.pinned_sessions == 1
    cache.pin("t", 1010.0, tokens(8), pinned_payload("copy"))  # held whole by turn 2's: shared, not copied
    assert (cache.entries, cache.pinned_tokens, cache.pinned_sessions) == (2, 12, 2)
    clock.now = 1011.0
    assert cache.lookup(tokens(4, 900)) is None and cache.pinned_tokens == 0 and cache.pinned_sessions == 0


def test_a_pin_belongs_to_its_adapters_namespace_and_forgetting_the_adapter_drops_it():
    cache = PrefixCache(budget_tokens=64, block=4, clock=Clock())
    cache.pin("s", 2000.0, tokens(8), pinned_payload("with a"), namespace="a")
    assert cache.lookup(tokens(8) + (1,)) is None and cache.lookup(tokens(8) + (1,), "b") is None
    assert cache.lookup(tokens(8) + (1,), "a").entry.payload == "with a"
    cache.pin("t", 2000.0, tokens(8), pinned_payload("base"))  # the same tokens on the base: its own KV
    assert (cache.entries, cache.pinned_tokens) == (2, 16)
    assert cache.lookup(tokens(8) + (1,)).entry.payload == "base"
    cache.insert(tokens(12), "a, longer", namespace="a")
    cache.forget("a")
    assert cache.lookup(tokens(12) + (1,), "a") is None
    assert (cache.entries, cache.cached_tokens, cache.pinned_sessions) == (1, 8, 1)
