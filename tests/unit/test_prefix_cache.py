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
