"""The ``gpu-sim`` scenario: every contender behind the same simulated GPU, alternating rounds.

For each step time S the contenders are started together (the step time is fixed at start-up),
warmed up, then for each stream count N every contender runs one round of N streams x
``new_tokens`` tokens in turn, the order reversed every other round, so a neighbour's load
drifting on this shared machine falls on all of them alike; the medians of the rounds are
compared. A round's figures: tokens/s delivered to the clients (the servers' own token counts
over the wall time from the first request sent to the last stream's end), the ideal
``N * 1000 / S``, TTFT and the gaps between a stream's events (p50/p95), the gap between two
simulated steps on the server side (from its step log), the CPU the server's whole process tree
and the client used, and errors.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from pathlib import Path

from bench.gpu_sim import contenders as sim
from bench.gpu_sim.client import run_streams
from bench.gpu_sim.steps import read_steps, summarize_steps
from bench.load import percentile
from bench.processes import tree_cpu_seconds

GRID = {"streams": [16, 64, 256, 512], "step_ms": [10, 20], "new_tokens": 256, "rounds": 2,
        "shortest": 8, "longest": 32, "contenders": list(sim.CONTENDERS), "overlapped": True}
QUICK = {"streams": [4, 16], "step_ms": [20], "new_tokens": 32, "rounds": 1, "shortest": 16, "longest": 32,
         "contenders": ["sluice-standin"], "overlapped": True}
# Sluice's TGI stream and the vLLM server asked for the same log-probabilities.
SAME_WORK = ("sluice-vllm", "vllm-server-uni-logprobs")
SETTLE_S = 2.0  # vLLM's mp executor busy-polls its queue for 1 s after its last step


def _log(message: str) -> None:
    print(f"[bench gpu-sim] {message}", file=sys.stderr, flush=True)


def measure_round(running: sim.SimRunning, prompts, new_tokens: int, step_ms: float) -> dict:
    requests = [running.request(p, new_tokens) for p in prompts]
    cpu_before, client_before = tree_cpu_seconds(running.pid), time.process_time()
    wall_start, began = time.time(), time.perf_counter()
    timings = run_streams(running.host, running.port, requests)
    elapsed = time.perf_counter() - began
    server_cpu = tree_cpu_seconds(running.pid) - cpu_before
    client_cpu = time.process_time() - client_before
    good = [t for t in timings if not t.error and t.event_times]
    generated = sum(t.generated_tokens for t in good)
    ttfts = [t.ttft for t in good]
    gaps = [g for t in good for g in t.gaps]
    streams = len(prompts)
    ideal = streams * 1000.0 / step_ms
    steps = summarize_steps(read_steps(running.step_log, wall_start, time.time()), percentile)
    return {
        "streams": streams, "step_ms": step_ms, "new_tokens": new_tokens,
        "errors": len(timings) - len(good), "error_samples": [t.error for t in timings if t.error][:3],
        "generated_tokens": generated, "min_tokens_per_request": min((t.generated_tokens for t in good), default=0),
        "wall_s": elapsed, "tokens_per_s": generated / elapsed if elapsed else 0.0,
        "ideal_tokens_per_s": ideal, "vs_ideal": generated / elapsed / ideal if elapsed else 0.0,
        "ttft_p50_s": percentile(ttfts, 50), "ttft_p95_s": percentile(ttfts, 95),
        "itl_p50_s": percentile(gaps, 50), "itl_p95_s": percentile(gaps, 95),
        "events_per_request": statistics.fmean(len(t.event_times) for t in good) if good else 0.0,
        "server_cpu_cores": server_cpu / elapsed if elapsed else 0.0,
        "client_cpu_cores": client_cpu / elapsed if elapsed else 0.0,
        "loadavg": os.getloadavg()[0], **steps,
    }


MEDIAN_KEYS = ("tokens_per_s", "vs_ideal", "ttft_p50_s", "ttft_p95_s", "itl_p50_s", "itl_p95_s", "gap_ms_p50",
               "gap_ms_p95", "server_cpu_cores", "client_cpu_cores", "events_per_request")


def medians(rounds: list[dict]) -> dict:
    out = {k: statistics.median(r[k] for r in rounds) for k in MEDIAN_KEYS}
    out["errors"] = sum(r["errors"] for r in rounds)
    out["min_tokens_per_request"] = min(r["min_tokens_per_request"] for r in rounds)
    return out


def run(model_dir: Path, tokenizer, spec: dict, keys: list[str], port_base: int | None = None) -> dict:
    """The whole grid; returns ``{"spec", "points": {S: {N: {key: {"rounds", "median"}}}}, ...}``."""
    from bench.prompts import Corpus, target_lengths

    corpus = Corpus(tokenizer)

    def prompts(count: int) -> list:
        out = []
        for length in target_lengths(count, spec["shortest"], spec["longest"]):
            while True:
                try:
                    out.append(corpus.prompt(length))
                    break
                except ValueError as error:  # no exact cut here (re-encoding merges): move on
                    if "used up" in str(error):
                        raise
                    corpus.position += 1
        return out

    # The same prompts for every contender of a round; fresh ones per round and stream count.
    # Each step time restarts the servers, so the set is reused across step times.
    prompt_sets = {(n, r): prompts(n) for n in spec["streams"] for r in range(spec["rounds"])}
    warmup = prompts(4)
    limits = sim.limits_for(model_dir)
    results: dict = {"spec": {**spec, "contenders": keys, "limits": limits}, "points": {}, "contenders": {},
                     "loadavg_at_start": os.getloadavg()}
    for step_ms in spec["step_ms"]:
        started: list[sim.SimRunning] = []
        try:
            for index, key in enumerate(keys):
                port = port_base + index if port_base else None
                began = time.perf_counter()
                running = sim.start(sim.CONTENDERS[key], model_dir, step_ms, limits, port=port,
                                    overlapped=spec["overlapped"])
                started.append(running)
                running.server.wait_ready(timeout=600)
                _log(f"{key} ready in {time.perf_counter() - began:.1f} s (S = {step_ms} ms)")
                run_streams(running.host, running.port, [running.request(p, 16) for p in warmup])
                results["contenders"].setdefault(key, {"label": sim.CONTENDERS[key].label,
                                                       "env": {k: v for k, v in running.env.items()
                                                               if k != "SLUICE_GPU_SIM_STEP_LOG"}})
            point = results["points"].setdefault(f"{step_ms:g}", {})
            for streams in spec["streams"]:
                rounds: dict[str, list] = {key: [] for key in keys}
                for r in range(spec["rounds"]):
                    order = started if r % 2 == 0 else started[::-1]
                    for running in order:
                        time.sleep(SETTLE_S)
                        figures = measure_round(running, prompt_sets[(streams, r)], spec["new_tokens"], step_ms)
                        rounds[running.contender.key].append(figures)
                        _log(f"S={step_ms} N={streams} round {r + 1} {running.contender.key}: "
                             f"{figures['tokens_per_s']:.0f} tok/s ({figures['vs_ideal']:.2f} of ideal), "
                             f"ITL p95 {figures['itl_p95_s'] * 1000:.1f} ms, gap p50 {figures['gap_ms_p50']:.1f} ms, "
                             f"server {figures['server_cpu_cores']:.2f} cores, errors {figures['errors']}, "
                             f"load {figures['loadavg']:.1f}")
                point[str(streams)] = {key: {"rounds": rounds[key], "median": medians(rounds[key])} for key in keys}
        finally:
            for running in started:
                running.stop()
                sim.clean(running)
    results["loadavg_at_end"] = os.getloadavg()
    results["ratios"] = ratios(results)
    return results


def ratios(results: dict) -> dict:
    """Per point: each contender's median tok/s over the best vLLM server layout's."""
    out: dict = {}
    for step_ms, by_streams in results["points"].items():
        for streams, by_key in by_streams.items():
            servers = {k: v["median"]["tokens_per_s"] for k, v in by_key.items()
                       if sim.CONTENDERS[k].is_vllm_server and not sim.CONTENDERS[k].logprobs}
            best = max(servers, key=servers.get) if servers else None
            entry = {"best_vllm_server": best}
            for key, value in by_key.items():
                entry[key] = value["median"]["tokens_per_s"] / servers[best] if best and servers[best] else None
            same_work = by_key.get(SAME_WORK[1])
            if same_work and SAME_WORK[0] in by_key and same_work["median"]["tokens_per_s"]:
                entry["same_work"] = (by_key[SAME_WORK[0]]["median"]["tokens_per_s"]
                                      / same_work["median"]["tokens_per_s"])
            out.setdefault(step_ms, {})[streams] = entry
    return out
