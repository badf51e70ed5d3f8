"""Ratios between the contenders and the markdown table, both computed from the results dict."""

from __future__ import annotations

import statistics


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def compute_ratios(results: dict) -> dict:
    """Sluice / sequential, Sluice / transformers serve, efficiency per level; TTFT at c=1."""
    sequential = results["sequential"]["tokens_per_s"]
    peer_levels = results.get("transformers_serve", {}).get("levels", {})
    ideal_decode_1 = results["ideal"]["decode_step_s"].get("1")
    ratios: dict = {"levels": {}}
    for level, figures in results["sluice"]["levels"].items():
        peer = peer_levels.get(level, {}).get("tokens_per_s")
        ratios["levels"][level] = {
            "sluice_vs_sequential": _ratio(figures["tokens_per_s"], sequential),
            "sluice_vs_transformers_serve": _ratio(figures["tokens_per_s"], peer),
            "efficiency": _ratio(figures["ideal_s"], figures["wall_s"]),
        }
    for level, figures in peer_levels.items():
        ratios["levels"].setdefault(level, {})
        ratios["levels"][level]["transformers_serve_vs_sequential"] = _ratio(figures["tokens_per_s"], sequential)
        ratios["levels"][level]["transformers_serve_efficiency"] = _ratio(figures.get("ideal_s"), figures["wall_s"])
    single = results["sluice"]["levels"].get("1")
    if single and ideal_decode_1 and not single["errors"]:
        bounds = [p + ideal_decode_1 for p in results["ideal"]["prefill_s"]]
        per_request = [t / b for t, b in zip(single["ttft_s"], bounds)]
        ratios["ttft_vs_prefill_plus_one_decode_c1"] = {
            "median_of_ratios": statistics.median(per_request),
            "max_of_ratios": max(per_request),
            "ratio_of_medians": _ratio(single["ttft_p50_s"], statistics.median(bounds)),
        }
    return ratios


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _level_row(name: str, level: str, figures: dict, ratios: dict, vs_seq_key: str, eff_key: str) -> str:
    r = ratios["levels"].get(level, {})
    return (f"| {name} | {level} | {figures['tokens_per_s']:.1f} | {_x(r.get(vs_seq_key))} | "
            f"{_x(r.get('sluice_vs_transformers_serve')) if name == 'Sluice' else '–'} | "
            f"{_x(r.get(eff_key))} | {_ms(figures['ttft_p50_s'])} / {_ms(figures['ttft_p95_s'])} | "
            f"{_ms(figures['itl_p50_s'])} / {_ms(figures['itl_p95_s'])} | {_ms(figures['ping_p99_s'])} | "
            f"{figures.get('tree_peak_rss_mib', 0):.0f} | {figures['errors']} |")


def markdown_table(results: dict) -> str:
    ratios = results["ratios"]
    ideal = results["ideal"]
    lines = [
        "| setup | concurrency | gen tok/s | × sequential | × transformers serve | efficiency | "
        "TTFT p50 / p95 (ms) | ITL p50 / p95 (ms) | ping p99 (ms) | peak RSS (MiB) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        f"| sequential `model.generate` | 1 | {results['sequential']['tokens_per_s']:.1f} | 1.00× | – | – "
        f"| – | – | – | – | 0 |",
    ]
    for level, figures in results["sluice"]["levels"].items():
        lines.append(_level_row("Sluice", level, figures, ratios, "sluice_vs_sequential", "efficiency"))
    for level, figures in results.get("transformers_serve", {}).get("levels", {}).items():
        lines.append(_level_row("transformers serve --continuous-batching", level, figures, ratios,
                                "transformers_serve_vs_sequential", "transformers_serve_efficiency"))
    for level, figures in results["sluice"]["levels"].items():
        tokens = figures["generated_tokens"]
        lines.append(f"| ideal schedule (raw prefill + decode waves) | {level} | "
                     f"{tokens / figures['ideal_s']:.1f} | "
                     f"{_x(tokens / figures['ideal_s'] / results['sequential']['tokens_per_s'])} | – | 1.00× "
                     f"| – | – | – | – | – |")
    steps = ", ".join(f"b{b}: {s * 1000:.1f} ms" for b, s in ideal["decode_step_s"].items())
    lines.append("")
    lines.append(f"Raw prefill {ideal['prefill_tokens_per_s']:.0f} tok/s; raw decode step ({steps}) "
                 f"at {ideal['decode_context_tokens']} cached tokens.")
    ttft = ratios.get("ttft_vs_prefill_plus_one_decode_c1")
    if ttft:
        lines.append(f"TTFT at concurrency 1 / (raw prefill + one decode step): median "
                     f"{ttft['median_of_ratios']:.2f}, max {ttft['max_of_ratios']:.2f}.")
    peer = results.get("transformers_serve", {})
    if peer.get("skipped") or peer.get("error"):
        lines.append(f"transformers serve: {peer.get('skipped') or peer.get('error')}")
    return "\n".join(lines)
