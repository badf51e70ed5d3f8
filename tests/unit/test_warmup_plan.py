"""What the native engine's warm-up runs (``engines/native/warmup``); through the real server:
server/test_warmup."""

from __future__ import annotations

from sluice.engines.native.scheduler import SchedulerBudget
from sluice.engines.native.warmup import batch_sizes, warmup_ids


def budget(max_batch_size=None) -> SchedulerBudget:
    return SchedulerBudget(max_batch_total_tokens=100_000, max_batch_prefill_tokens=4096,
                           max_batch_size=max_batch_size)


def test_batch_sizes_climb_in_powers_of_two_to_the_largest_batch_the_server_runs():
    assert batch_sizes(budget(), 128) == (1, 2, 4, 8, 16, 32, 64)
    assert batch_sizes(budget(), 20) == (1, 2, 4, 8, 16)  # MAX_CONCURRENT_REQUESTS
    assert batch_sizes(budget(max_batch_size=8), 128) == (1, 2, 4, 8)  # MAX_BATCH_SIZE
    assert batch_sizes(budget(), 1) == (1,)


def test_warmup_prompts_are_ordinary_tokens_and_none_is_a_prefix_of_another():
    specials = frozenset({0, 1, 2, 5})
    prompts = [warmup_ids(1000, specials, 32, index) for index in range(128)]
    assert all(len(p) == 32 for p in prompts)
    assert not any(token in specials for p in prompts for token in p)  # no EOS: each runs its tokens
    assert len({p[0] for p in prompts}) == 128  # no prompt's first block is another's: no prefix hit
    assert warmup_ids(1000, specials, 3, 7) == warmup_ids(1000, specials, 32, 7)[:3]
