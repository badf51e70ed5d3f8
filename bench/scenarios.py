"""The two workloads beyond plain throughput, run against any contender's ``send``.

* chat: conversations sharing a long system prompt, played turn by turn as a chat client does
  (each turn resends the history). First one at a time (the first request finds nothing cached;
  the 2nd..nth share its system prompt, follow-up turns also their own earlier turns: their TTFT
  over the first's shows what prefix reuse buys), then fresh ones with unseen histories at once.
  On Sluice also ``chat_turns``: conversations whose history holds the model's own answers, each
  in a stateful session, and the same without sessions: what a session buys a follow-up turn.
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



def chat_turns(play, open_session, close_session, render, variants: dict, new_tokens: int) -> dict:
    """Conversations played as a chat client plays them, every turn resending the history with
    the model's own earlier answers (``play(prompt, new_tokens, session_id) -> StreamTiming`` keeps
    the answer's text). ``variants`` maps a name to ``(conversations, sessions)``; with
    ``sessions`` each conversation runs in its own stateful session, closed after its last turn.
    All conversations of all variants take turns round-robin (turn 1 of each, then turn 2 of
    each, ...), so load drifting on the machine touches every variant alike, and each turn
    follows other conversations' turns as on a shared server. Every first turn finds nothing
    cached: per variant, the follow-up turns' TTFT over the first turns' is what reuse buys."""
    players = [(name, conversation, sessions) for name, (conversations, sessions) in variants.items()
               for conversation in conversations]
    state = [{"session": open_session() if sessions else None,
              "messages": [{"role": "system", "content": conversation.system}], "timings": []}
             for _, conversation, sessions in players]
    for turn in range(max(len(c.questions) for _, c, _ in players)):
        for (_, conversation, _), mine in zip(players, state, strict=True):
            if turn < len(conversation.questions):
                mine["messages"].append({"role": "user", "content": conversation.questions[turn]})
                timing = play(render(mine["messages"]), new_tokens, mine["session"])
                mine["messages"].append({"role": "assistant", "content": timing.text})
                mine["timings"].append(timing)
    for mine in state:
        if mine["session"] is not None:
            close_session(mine["session"])
    figures = {}
    for name, (_, sessions) in variants.items():
        timings = [mine["timings"] for (owner, _, _), mine in zip(players, state, strict=True) if owner == name]
        firsts = [t[0].ttft for t in timings if t[0].event_times]
        follow_ups = [x.ttft for t in timings for x in t[1:] if x.event_times]
        figures[name] = {
            "sessions": sessions, "conversations": len(timings), "turns": sum(len(t) for t in timings),
            "first_ttft_p50_s": statistics.median(firsts) if firsts else None,
            "follow_up_ttft_p50_s": statistics.median(follow_ups) if follow_ups else None,
            "follow_up_vs_first_ttft_p50": (statistics.median(follow_ups) / statistics.median(firsts)
                                            if firsts and follow_ups else None),
            "ttft_s": [[x.ttft if x.event_times else None for x in t] for t in timings],
            "problems": _checked([x for t in timings for x in t], new_tokens)}
    return figures
