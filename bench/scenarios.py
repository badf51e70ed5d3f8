"""The two workloads beyond plain throughput, run against any contender's ``send``.

* chat: conversations sharing a long system prompt, played turn by turn as a chat client does
  (each turn resends the history). First one at a time (the first request finds nothing cached;
  the 2nd..nth share its system prompt, follow-up turns also their own earlier turns: their TTFT
  over the first's shows what prefix reuse buys), then fresh ones with unseen histories at once.
* arrivals: running streams decode while long prompts arrive one after another; the running
  streams' inter-token latency during the arrivals over the same without arrivals shows how
  much a long prefill stalls everyone else.

``send(prompt, max_new_tokens, timing=None)`` is a contender's streaming client (bench/run.py).
"""

from __future__ import annotations

import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from bench.clients import StreamTiming
from bench.load import percentile, run_load


def _checked(timings: list[StreamTiming], new_tokens: int) -> list[str]:
    """Errors and short streams (an early EOS would make contenders incomparable)."""
    problems = [t.error for t in timings if t.error]
    problems += [f"{t.generated_tokens} of {new_tokens} tokens" for t in timings
                 if not t.error and t.generated_tokens != new_tokens]
    return problems


def chat(send, url: str, ping_path: str, sequential, kinds: list[str], concurrent, shared_tokens: int,
         new_tokens: int) -> dict:
    """TTFT of the 2nd..nth request (sharing the 1st's system prompt) vs the 1st's, one at a time,
    in the order a chat client sends them (``kinds`` says which are follow-up turns); then
    ``concurrent`` conversations with unseen histories (same system prompt) as one wave."""
    timings = [send(prompt, new_tokens) for prompt in sequential]
    problems = _checked(timings, new_tokens)
    first, rest = timings[0].ttft, [t.ttft for t in timings[1:]]
    by_kind = {}
    for kind in dict.fromkeys(kinds[1:]):
        ttfts = [t.ttft for t, k in zip(timings, kinds, strict=True) if k == kind]
        by_kind[kind] = {"requests": len(ttfts), "ttft_p50_s": statistics.median(ttfts),
                         "vs_first_ttft_p50": statistics.median(ttfts) / first}
    wave = run_load(lambda p: send(p, new_tokens), concurrent, len(concurrent), url, ping_path)
    return {
        "shared_prefix_tokens": shared_tokens,
        "prompt_tokens": [p.length for p in sequential],
        "kinds": kinds,
        "first_ttft_s": first,
        "rest_ttft_s": rest,
        "rest_ttft_p50_s": statistics.median(rest),
        "rest_vs_first_ttft_p50": statistics.median(rest) / first,
        "by_kind": by_kind,
        "problems": problems,
        "concurrent": {k: v for k, v in wave.items() if k != "ttft_s"},
    }


def _gaps_within(timing: StreamTiming, start: float, end: float) -> list[float]:
    times = timing.event_times
    return [b - a for a, b in zip(times, times[1:], strict=False) if b > start and a < end]


def _itl(gaps: list[float]) -> dict:
    return {"gaps": len(gaps), "itl_p50_s": percentile(gaps, 50), "itl_p95_s": percentile(gaps, 95),
            "itl_max_s": max(gaps, default=0.0)}


def arrivals(send, running_alone, running, arriving, running_tokens: int, arriving_tokens: int,
             warm_tokens: int = 8, stagger_s: float = 0.25) -> dict:
    """ITL of running streams without (``running_alone``) and with (``running``, fresh prompts of
    the same lengths, so no prefix cache helps) ``arriving`` long prompts sent mid-stream.

    Both runs count only gaps after each running stream's ``warm_tokens``-th token. With
    arrivals, the window runs from the first arrival until the last one's first token (its
    prefill done); the running streams must outlast it, which the result records.
    """
    def run(running, with_arrivals: bool):
        watched = [StreamTiming(sent=0.0) for _ in running]
        with ThreadPoolExecutor(len(running) + len(arriving)) as pool:
            streams = [pool.submit(send, p, running_tokens, timing=t) for p, t in zip(running, watched, strict=True)]
            deadline = time.perf_counter() + 600
            while (any(len(t.event_times) < warm_tokens for t in watched)
                   and not any(f.done() for f in streams) and time.perf_counter() < deadline):
                time.sleep(0.005)
            started = time.perf_counter()
            late = []
            if with_arrivals:
                for prompt in arriving:
                    late.append(pool.submit(send, prompt, arriving_tokens))
                    time.sleep(stagger_s)
            done = [f.result() for f in streams]
            late = [f.result() for f in late]
        return started, done, late

    _, alone, _ = run(running_alone, False)
    started, loaded, late = run(running, True)
    problems = _checked(alone + loaded, running_tokens) + _checked(late, arriving_tokens)
    window_end = max((t.event_times[0] for t in late if t.event_times), default=started)
    last_running = min((t.event_times[-1] for t in loaded if t.event_times), default=started)
    baseline = _itl([g for t in alone for g in t.gaps[warm_tokens - 1:]])
    during = _itl([g for t in loaded for g in _gaps_within(t, started, window_end)])
    return {
        "running_streams": len(running), "arriving_prompts": len(arriving),
        "arriving_prompt_tokens": [p.length for p in arriving],
        "running_tokens": running_tokens, "arriving_tokens": arriving_tokens, "stagger_s": stagger_s,
        "without_arrivals": baseline, "during_arrivals": during,
        "window_s": window_end - started, "running_outlasted_window": last_running >= window_end,
        "itl_p95_ratio": during["itl_p95_s"] / baseline["itl_p95_s"] if baseline["itl_p95_s"] else None,
        "arrivals_ttft_p50_s": percentile([t.ttft for t in late if t.event_times], 50),
        "problems": problems,
    }
