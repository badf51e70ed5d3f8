"""The ``gpu-sim`` results as markdown: one table per step time, and the acceptance lines."""

from __future__ import annotations

from bench.gpu_sim.contenders import CONTENDERS

# Issue 21's lines, checked on the medians of one run.
STANDIN_MIN_VS_IDEAL = {20: 0.9, 10: 0.8}  # at 256 streams
STANDIN_ITL_P95_MAX_STEPS = 1.5  # x S, up to 256 streams
STANDIN = "sluice-standin"
SLUICE_ON_VLLM = {"sluice-vllm-openai": "asked what vLLM's server is asked (OpenAI completions)",
                  "sluice-vllm": "TGI stream, each event with its token's log-probability"}


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def tables(results: dict) -> list[str]:
    lines = []
    spec = results["spec"]
    for step_ms, by_streams in results["points"].items():
        clock = ("the host's work beside the step, as vLLM schedules on CUDA" if spec.get("overlapped", False)
                 else "the host's work between two steps, serial")
        lines += [f"Simulated GPU step S = {step_ms} ms ({clock}), {spec['new_tokens']} new tokens per stream, "
                  f"medians of {spec['rounds']} alternating rounds:", "",
                  "| streams | setup | tok/s (rounds) | ideal | × ideal | × best vLLM server | TTFT p50 / p95 (ms) | "
                  "ITL p50 / p95 (ms) | step gap p50 / p95 (ms) | server CPU (cores) | client CPU | errors |",
                  "|---|---|---|---|---|---|---|---|---|---|---|---|"]
        for streams, by_key in by_streams.items():
            ratio = results["ratios"][step_ms][streams]
            for key, entry in by_key.items():
                m = entry["median"]
                rates = ", ".join(f"{r['tokens_per_s']:.0f}" for r in entry["rounds"])
                vs = ratio.get(key)
                best = " (best)" if key == ratio["best_vllm_server"] else ""
                ideal = entry["rounds"][0]["ideal_tokens_per_s"]
                lines.append(
                    f"| {streams} | {CONTENDERS[key].label} | {m['tokens_per_s']:.0f} ({rates}) | {ideal:.0f} | "
                    f"{m['vs_ideal']:.2f} | {'–' if vs is None else f'{vs:.2f}×'}{best} | "
                    f"{_ms(m['ttft_p50_s'])} / {_ms(m['ttft_p95_s'])} | "
                    f"{_ms(m['itl_p50_s'])} / {_ms(m['itl_p95_s'])} | "
                    f"{m['gap_ms_p50']:.1f} / {m['gap_ms_p95']:.1f} | {m['server_cpu_cores']:.2f} | "
                    f"{m['client_cpu_cores']:.2f} | {m['errors']} |")
        lines.append("")
    return lines


def acceptance(results: dict) -> list[str]:
    """Each of issue 21's lines this run can speak to, met or not, with the figures."""
    lines = []
    points = results["points"]
    for key, how in SLUICE_ON_VLLM.items():
        ratios = [(s, n, results["ratios"][s][n].get(key)) for s in points for n in points[s]
                  if key in points[s][n] and results["ratios"][s][n]["best_vllm_server"]]
        if ratios:
            worst = min(ratios, key=lambda p: p[2])
            met = all(r >= 1.0 for _, _, r in ratios)
            lines.append(f"- Sluice on vLLM, {how}, ≥ 1.0× the best vLLM server layout at every point: "
                         f"{'met' if met else 'NOT met'} (lowest {worst[2]:.2f}× at S = {worst[0]} ms, "
                         f"N = {worst[1]}).")
    same = [(s, n, results["ratios"][s][n]["same_work"]) for s in points for n in points[s]
            if "same_work" in results["ratios"][s][n]]
    if same:
        worst = min(same, key=lambda p: p[2])
        listed = ", ".join(f"{r:.2f}× (S = {s}, N = {n})" for s, n, r in same)
        lines.append(f"- (Not an issue line.) Sluice on vLLM, TGI stream, against vLLM's server (one-GPU layout) asked "
                     f"for the same log-probabilities: lowest {worst[2]:.2f}×; {listed}.")
    for step_ms, floor in STANDIN_MIN_VS_IDEAL.items():
        entry = points.get(f"{step_ms:g}", {}).get("256", {}).get(STANDIN)
        if entry:
            ratio = entry["median"]["vs_ideal"]
            lines.append(f"- Stand-in engine ≥ {floor}× ideal at 256 streams, S = {step_ms} ms: "
                         f"{'met' if ratio >= floor else 'NOT met'} ({ratio:.2f}×).")
    itl = [(s, n, e[STANDIN]["median"]["itl_p95_s"] * 1000 / float(s)) for s, by_n in points.items()
           for n, e in by_n.items() if STANDIN in e and int(n) <= 256]
    if itl:
        worst = max(itl, key=lambda p: p[2])
        lines.append(f"- Stand-in engine ITL p95 ≤ {STANDIN_ITL_P95_MAX_STEPS} × S up to 256 streams: "
                     f"{'met' if worst[2] <= STANDIN_ITL_P95_MAX_STEPS else 'NOT met'} "
                     f"(highest {worst[2]:.2f} × S at S = {worst[0]} ms, N = {worst[1]}).")
    return lines


def markdown(results: dict) -> str:
    lines = tables(results) + ["Acceptance (issue 21):"] + acceptance(results)
    lines.append(f"Load average at start {results['loadavg_at_start'][0]:.2f}, at end "
                 f"{results['loadavg_at_end'][0]:.2f}; every round's own is in the JSON.")
    return "\n".join(lines)
