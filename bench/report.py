"""Ratios between the contenders and the markdown tables, both computed from the results dict."""

from __future__ import annotations

import statistics

from bench.contenders import CONTENDERS, SHORT_DTYPE

VLLM_SERVER = "vllm-server-bf16"


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def _levels(results: dict, key: str) -> dict:
    return results["contenders"].get(key, {}).get("levels", {})


def compute_ratios(results: dict) -> dict:
    """Per level and contender: × sequential, × vLLM's server (throughput and TTFT p50),
    efficiency vs the ideal at its dtype; the own engine's TTFT at concurrency 1 vs its bound."""
    sequential = results["sequential"]["tokens_per_s"]
    reference = _levels(results, VLLM_SERVER)
    ratios: dict = {"levels": {}}
    for key, entry in results["contenders"].items():
        for level, figures in entry.get("levels", {}).items():
            peer = reference.get(level, {})
            ratios["levels"].setdefault(level, {})[key] = {
                "vs_sequential": _ratio(figures["tokens_per_s"], sequential),
                "vs_vllm_server": _ratio(figures["tokens_per_s"], peer.get("tokens_per_s")),
                "ttft_p50_vs_vllm_server": _ratio(figures["ttft_p50_s"], peer.get("ttft_p50_s")),
                "efficiency": _ratio(figures.get("ideal_s"), figures["wall_s"]),
            }
    for key in ("sluice-bf16", "sluice-fp32"):
        single = _levels(results, key).get("1")
        ideal = results["ideal"].get(CONTENDERS[key].dtype)
        if single and ideal and not single["errors"]:
            bounds = [p + ideal["decode_step_s"]["1"] for p in ideal["prefill_s"]]
            per_request = [t / bounds[i % len(bounds)] for i, t in enumerate(single["ttft_s"])]
            ratios.setdefault("ttft_vs_prefill_plus_one_decode_c1", {})[key] = {
                "median_of_ratios": statistics.median(per_request),
                "max_of_ratios": max(per_request),
                "ratio_of_medians": _ratio(single["ttft_p50_s"], statistics.median(bounds)),
            }
    return ratios


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f}"


def _rate(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _x(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _who(results: dict, key: str) -> str:
    entry = results["contenders"].get(key, {})
    return (f"{CONTENDERS[key].label} | {SHORT_DTYPE.get(CONTENDERS[key].dtype, CONTENDERS[key].dtype)} | "
            f"{entry.get('threads', '–')}")


def throughput_table(results: dict) -> list[str]:
    ratios = results["ratios"]["levels"]
    lines = [
        "| setup | dtype | threads | concurrency | gen tok/s | × sequential | × vLLM server | "
        "TTFT p50 / p95 (ms) | TTFT p50 × vLLM server | ITL p50 / p95 (ms) | efficiency | ping p99 (ms) | "
        "peak RSS (MiB) | errors |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        f"| sequential `model.generate` | {SHORT_DTYPE.get(results['sequential'].get('dtype'), '–')} | "
        f"{results['config']['threads']} threads | 1 | {_rate(results['sequential']['tokens_per_s'])} | 1.00× | – | – "
        f"| – | – | – | – | – | 0 |",
    ]
    for key, entry in results["contenders"].items():
        if entry.get("error"):
            lines.append(f"| {_who(results, key)} | – | failed: {entry['error'].splitlines()[0][:160]} "
                         f"| – | – | – | – | – | – | – | – | – |")
        for level, f in entry.get("levels", {}).items():
            r = ratios.get(level, {}).get(key, {})
            lines.append(
                f"| {_who(results, key)} | {level} | {f['tokens_per_s']:.1f} | {_x(r.get('vs_sequential'))} | "
                f"{_x(r.get('vs_vllm_server')) if key != VLLM_SERVER else '1.00×' if r.get('vs_vllm_server') else '–'}"
                " | "
                f"{_ms(f['ttft_p50_s'])} / {_ms(f['ttft_p95_s'])} | {_x(r.get('ttft_p50_vs_vllm_server'))} | "
                f"{_ms(f['itl_p50_s'])} / {_ms(f['itl_p95_s'])} | {_x(r.get('efficiency'))} | "
                f"{_ms(f['ping_p99_s'])} | {f.get('tree_peak_rss_mib', 0):.0f} | {f['errors']} |")
    for dtype in results["ideal"]:
        for level in sorted({lv for e in results["contenders"].values() for lv in e.get("levels", {})}, key=int):
            owner = next((e["levels"][level] for k, e in results["contenders"].items()
                          if CONTENDERS[k].dtype == dtype and level in e.get("levels", {})
                          and e["levels"][level].get("ideal_s")), None)
            if owner:
                rate = owner["generated_tokens"] / owner["ideal_s"]
                lines.append(f"| ideal schedule (raw prefill + decode waves) | {SHORT_DTYPE.get(dtype, dtype)} | – | "
                             f"{level} | {rate:.1f} | {_x(_ratio(rate, results['sequential']['tokens_per_s']))} | – "
                             f"| – | – | – | 1.00× | – | – | – |")
    lines.append("")
    short = [f"{key} c={level}: {f['min_tokens_per_request']}" for key, entry in results["contenders"].items()
             for level, f in entry.get("levels", {}).items()
             if f["generated_tokens"] != f["requests"] * results["config"]["new_tokens"]]
    lines.append("Every request of every row generated exactly the same number of tokens."
                 if not short else f"Rows with requests that stopped early (fewest tokens): {'; '.join(short)}.")
    for dtype, ideal in results["ideal"].items():
        steps = ", ".join(f"b{b}: {s * 1000:.1f} ms" for b, s in ideal["decode_step_s"].items())
        lines.append(f"Raw {SHORT_DTYPE.get(dtype, dtype)}: prefill {ideal['prefill_tokens_per_s']:.0f} tok/s; decode "
                     f"step ({steps}) at {ideal['decode_context_tokens']} cached tokens.")
    for key, ttft in results["ratios"].get("ttft_vs_prefill_plus_one_decode_c1", {}).items():
        lines.append(f"{key}: TTFT at concurrency 1 / (raw prefill + one decode step): median "
                     f"{ttft['median_of_ratios']:.2f}, max {ttft['max_of_ratios']:.2f}.")
    return lines


# What each head-to-head ratio is held to (issue 10: Sluice on vLLM; issue 12: the own engine).
H2H_TARGETS = {"sluice-vllm-bf16": "targets: throughput >= 0.95, TTFT p50 <= 1.1",
               "sluice-bf16": "target: throughput >= 0.8 at 16 streams"}


def head_to_head_table(results: dict) -> list[str]:
    h2h = results.get("head_to_head")
    if not h2h:
        return []
    keys = h2h["contenders"]
    lines = [f"Head-to-head, all up, alternating rounds of {h2h['streams']} streams x {h2h['new_tokens']} tokens "
             f"(medians of {len(h2h['rounds']) // len(keys)} rounds each):", "",
             "| setup | dtype | threads | gen tok/s (rounds) | TTFT p50 (ms, rounds) | TPOT mean (ms) | errors |",
             "|---|---|---|---|---|---|---|"]
    for key in keys:
        mine = [r for r in h2h["rounds"] if r["contender"] == key]
        m = h2h["medians"][key]
        rates = ", ".join("%.1f" % r["tokens_per_s"] for r in mine)
        ttfts = ", ".join(_ms(r["ttft_p50_s"]) for r in mine)
        lines.append(f"| {_who(results, key)} | {m['tokens_per_s']:.1f} ({rates}) | {_ms(m['ttft_p50_s'])} "
                     f"({ttfts}) | {m['tpot_mean_s'] * 1000:.1f} | {m['errors']} |")
    lines.append("")
    reference = CONTENDERS[h2h["reference"]].label
    for key, ratio in h2h["ratios"].items():
        target = f" ({H2H_TARGETS[key]})" if key in H2H_TARGETS else ""
        lines.append(f"{CONTENDERS[key].label} / {reference}: throughput {ratio['throughput']:.2f}×, "
                     f"TTFT p50 {ratio['ttft_p50']:.2f}×{target}.")
    return lines


def chat_table(results: dict) -> list[str]:
    chat = results["scenarios"].get("chat")
    if not chat:
        return []
    any_entry = next(iter(chat.values()))
    kinds = list(any_entry.get("by_kind", {}))
    counts = ", ".join(f"{any_entry['by_kind'][k]['requests']} {k}" for k in kinds)
    lines = [f"Chat: {len(any_entry['prompt_tokens'])} requests one at a time as a chat client sends them (1 first, "
             f"{counts}; every turn resends its history), sharing a {any_entry['shared_prefix_tokens']}-token "
             f"prefix (system prompt), prompts {min(any_entry['prompt_tokens'])}-{max(any_entry['prompt_tokens'])} "
             "tokens; then as many fresh conversations with unseen histories at once:", "",
             "| setup | dtype | threads | TTFT 1st (ms) | TTFT 2nd..nth p50 (ms) | 2nd..nth / 1st | "
             + "".join(f"{k} / 1st | " for k in kinds)
             + "concurrent: gen tok/s | concurrent: TTFT p50 / p95 (ms) | problems |",
             "|---|---|---|---|---|---|" + "---|" * len(kinds) + "---|---|---|"]
    for key, c in chat.items():
        w = c["concurrent"]
        lines.append(f"| {_who(results, key)} | {_ms(c['first_ttft_s'])} | {_ms(c['rest_ttft_p50_s'])} | "
                     f"{_x(c['rest_vs_first_ttft_p50'])} | "
                     + "".join(f"{_x(c['by_kind'][k]['vs_first_ttft_p50'])} | " for k in kinds)
                     + f"{w['tokens_per_s']:.1f} | {_ms(w['ttft_p50_s'])} / {_ms(w['ttft_p95_s'])} | "
                     f"{len(c['problems']) + w['errors']} |")
    return lines


SESSION_TARGET = 0.2  # a follow-up turn in a session: TTFT at most this share of the first turn's


def chat_sessions_table(results: dict) -> list[str]:
    played = results["scenarios"].get("chat_sessions")
    if not played:
        return []
    sample = next(iter(played.values()))["in_sessions"]
    turns = sample["turns"] // sample["conversations"]
    lines = [f"Chat in sessions: {sample['conversations']} conversations of {turns} turns in stateful sessions and "
             f"{sample['conversations']} without, all taking turns round-robin; each conversation its own fresh "
             "system prompt (so every first turn finds nothing cached), every turn resending the history with the "
             "model's own answers:", "",
             "| setup | dtype | threads | sessions | first turns: TTFT p50 (ms) | follow-up turns: TTFT p50 (ms) "
             "| follow-up / first | problems |",
             "|---|---|---|---|---|---|---|---|"]
    for key, variants in played.items():
        for name in ("without_sessions", "in_sessions"):
            v = variants[name]
            lines.append(f"| {_who(results, key)} | {'yes' if v['sessions'] else 'no'} | {_ms(v['first_ttft_p50_s'])} "
                         f"| {_ms(v['follow_up_ttft_p50_s'])} | {_x(v['follow_up_vs_first_ttft_p50'])} | "
                         f"{len(v['problems'])} |")
    lines.append("")
    for key, variants in played.items():
        ratio = variants["in_sessions"]["follow_up_vs_first_ttft_p50"]
        verdict = "–" if ratio is None else "met" if ratio <= SESSION_TARGET else "NOT met"
        lines.append(f"{CONTENDERS[key].label} ({SHORT_DTYPE.get(CONTENDERS[key].dtype)}): a follow-up turn in a "
                     f"session / a first turn: TTFT p50 {_x(ratio)} (target <= {SESSION_TARGET}: {verdict}).")
    return lines


def arrivals_table(results: dict) -> list[str]:
    arrivals = results["scenarios"].get("arrivals")
    if not arrivals:
        return []
    e = next(iter(arrivals.values()))
    lines = [f"Arrivals: {e['running_streams']} running streams ({e['running_tokens']} tokens each); "
             f"{e['arriving_prompts']} prompts of {e['arriving_prompt_tokens'][0]} tokens arrive "
             f"{e['stagger_s']} s apart; ITL of the running streams from the first arrival until the last "
             f"one's first token vs the same streams alone:", "",
             "| setup | dtype | threads | ITL p50 / p95 / max alone (ms) | during arrivals (ms) | p95 × alone | "
             "window (s) | arrivals' TTFT p50 (ms) | streams outlasted window | problems |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for key, a in arrivals.items():
        alone, during = a["without_arrivals"], a["during_arrivals"]
        lines.append(f"| {_who(results, key)} | {_ms(alone['itl_p50_s'])} / {_ms(alone['itl_p95_s'])} / "
                     f"{_ms(alone['itl_max_s'])} | {_ms(during['itl_p50_s'])} / {_ms(during['itl_p95_s'])} / "
                     f"{_ms(during['itl_max_s'])} | {_x(a['itl_p95_ratio'])} | {a['window_s']:.1f} | "
                     f"{_ms(a['arrivals_ttft_p50_s'])} | {'yes' if a['running_outlasted_window'] else 'no'} | "
                     f"{len(a['problems'])} |")
    return lines


def markdown_table(results: dict) -> str:
    machine = results["machine"]
    lines = throughput_table(results)
    for part in (head_to_head_table(results), chat_table(results), chat_sessions_table(results),
                 arrivals_table(results)):
        if part:
            lines += [""] + part
    lines += ["", f"Load average at start {machine['loadavg_at_start'][0]:.2f}, at end "
                  f"{machine.get('loadavg_at_end', (0,))[0]:.2f} ({machine['cores']} cores); whole run "
                  f"{results.get('total_s', 0):.0f} s."]
    return "\n".join(lines)
