"""Side-by-side benchmark: Sluice (own engine, on vLLM), vLLM's server, transformers serve.

Also sequential `generate` and the ideal schedule, in process.

    python bench/run.py [--out bench/results/latest.json] [--quick] [--device cpu|cuda]
                        [--contenders KEY,...] [--scenarios throughput,head-to-head,chat,arrivals,gpu-sim]
                        [--skip-transformers-serve] [--skip-vllm] [--threads N] [--model-dir DIR]

One run, one model. Contenders (bench/contenders.py): ``sluice-fp32``, ``sluice-bf16`` (the own
engine at each dtype), ``sluice-bf16-chunk16`` (the same with 16-token prefill chunks: 16 streams
and arrivals only), ``sluice-vllm-bf16`` (Sluice on the vLLM engine), ``vllm-server-bf16``
(vLLM's OpenAI server, same engine settings), ``transformers-serve-fp32``; every one gets the same
thread count, unpinned. They run one after another, so no two share the cores while measured:
1. in process: the ideal schedule (raw prefill + raw KV-cache decode steps) at fp32 and bf16, and
   sequential greedy ``model.generate`` (fp32, the "× sequential" baseline);
2. each server: ``throughput`` (16 requests x 64 new tokens, prompts 16-256 tokens, at each
   concurrency level, with a /ping prober and the server tree's peak RSS), then ``chat`` (a shared
   1,000-token system prompt, conversations played turn by turn: TTFT of the 2nd..nth vs the 1st) and
   ``arrivals`` (ITL of 8 running streams while 8 1,500-token prompts arrive vs without); on
   Sluice ``chat`` also plays conversations holding the model's own answers in stateful sessions
   and without (a follow-up turn's TTFT in a session over the first turn's: at most 0.2);
3. ``head-to-head``: the own engine (bf16), Sluice on vLLM and vLLM's server all up, alternating
   rounds of 16 streams (medians: the acceptance ratios, robust to a neighbour's load drifting
   between contenders);
4. ``gpu-sim`` (``bench/gpu_sim``): Sluice on vLLM, vLLM's server in three layouts and Sluice
   with a cost-free stand-in engine, each with the model's step replaced by a fixed wait of S ms
   (a simulated GPU), alternating rounds of N streams x 256 tokens over N x S (``--sim-*``).
Every request gets fresh corpus text (vLLM's prefix cache must not replay a prefill the own engine
has to do). Prints markdown tables and writes every figure and ratio as JSON. ``--quick`` is a
smoke run on the tiny model (own engine only). Everything binds to 127.0.0.1, and every process
started is stopped on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import signal
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import transformers  # noqa: E402

from bench import contenders as peers  # noqa: E402
from bench import inprocess, scenarios  # noqa: E402
from bench.clients import get_text, session_request, sluice_chat_turn  # noqa: E402
from bench.gpu_sim import contenders as sim_contenders  # noqa: E402
from bench.gpu_sim import report as sim_report  # noqa: E402
from bench.gpu_sim import scenario as gpu_sim  # noqa: E402
from bench.load import run_load  # noqa: E402
from bench.processes import peak_rss_mib, reset_peak_rss  # noqa: E402
from bench.prompts import Corpus, chat_conversations, chat_prompts, chat_sessions, render_chat  # noqa: E402
from bench.report import compute_ratios, markdown_table  # noqa: E402
from demo.build_model import build  # noqa: E402

ALL_SCENARIOS = ["throughput", "head-to-head", "chat", "arrivals", "gpu-sim"]
# Scenarios of the contenders above; ``gpu-sim`` has its own servers (bench/gpu_sim).
SERVER_SCENARIOS = ALL_SCENARIOS[:4]
FULL = {"size": "small", "requests": 16, "new_tokens": 64, "shortest": 16, "longest": 256,
        "levels": [1, 4, 16, 32], "fp32_levels": [1, 16], "peer_levels": [16, 32], "chunk_levels": [16],
        "head_to_head": {"streams": 16, "rounds": 3},
        "chat": {"system_tokens": 1000, "conversations": 8, "turn_tokens": 80, "new_tokens": 32,
                 "session_conversations": 4, "session_turns": 3},
        "arrivals": {"running": 8, "running_prompt": 64, "running_tokens": 128, "arriving": 8,
                     "arriving_prompt": 1500, "arriving_tokens": 16, "stagger_s": 0.25},
        "contenders": list(peers.CONTENDERS)}
QUICK = {"size": "tiny", "requests": 4, "new_tokens": 16, "shortest": 16, "longest": 64,
         "levels": [1, 4], "fp32_levels": [1, 4], "peer_levels": [4], "chunk_levels": [4],
         "head_to_head": {"streams": 4, "rounds": 1},
         "chat": {"system_tokens": 200, "conversations": 3, "turn_tokens": 40, "new_tokens": 8,
                  "session_conversations": 2, "session_turns": 2},
         "arrivals": {"running": 2, "running_prompt": 16, "running_tokens": 32, "arriving": 2,
                      "arriving_prompt": 300, "arriving_tokens": 4, "stagger_s": 0.05},
         "contenders": ["sluice-fp32"]}
# The vLLM contenders (skipped together without .venv-vllm).
PAIR = ("sluice-vllm-bf16", "vllm-server-bf16")
# Started together, head-to-head alternating between them (the ratios to trust); the others run alone.
TOGETHER = ("sluice-bf16", *PAIR)
REFERENCE = "vllm-server-bf16"  # head-to-head ratios are over this one
# Pause before every measurement: vLLM's server workers busy-poll their shared-memory queue for
# 1 s after their last step (shm_broadcast busy_loop_s), which would eat into whatever is
# measured next on these 2 cores (seen: Sluice's TTFT p50 2.0 s right after a vLLM-server round
# vs 1.1 s after its own).
SETTLE_S = 2.0


def settle() -> None:
    time.sleep(SETTLE_S)


def _log(message: str) -> None:
    print(f"[bench] {message}", file=sys.stderr, flush=True)


def _machine(device: str) -> dict:
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(),
            "torch": torch.__version__, "transformers": transformers.__version__, "device": device,
            "torch_threads": torch.get_num_threads(), "loadavg_at_start": os.getloadavg()}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


class PromptSets:
    """Every prompt of the run, cut once from fresh corpus text, the same for every contender."""

    def __init__(self, tokenizer, spec: dict):
        self.tokenizer = tokenizer
        corpus = Corpus(tokenizer)
        self.base = corpus.prompts(spec["requests"], spec["shortest"], spec["longest"])
        lengths = [p.length for p in self.base]

        def like_base(count: int):
            return [corpus.prompt(lengths[i % len(lengths)]) for i in range(count)]

        self.warmup = like_base(2)
        # A level's i-th request has the length of base prompt i % requests (the ideal's index).
        every_level = sorted(set(spec["levels"] + spec["fp32_levels"] + spec["peer_levels"] + spec["chunk_levels"]))
        self.levels = {c: like_base(max(spec["requests"], c)) for c in every_level}
        h2h = spec["head_to_head"]
        self.head_to_head = [like_base(h2h["streams"]) for _ in range(h2h["rounds"])]
        chat = spec["chat"]
        self.chat_sequential, self.chat_kinds, self.chat_shared = chat_sessions(
            tokenizer, corpus, chat["system_tokens"], chat["conversations"], chat["turn_tokens"])
        self.chat_concurrent, _ = chat_prompts(tokenizer, corpus, chat["system_tokens"], chat["conversations"],
                                               chat["turn_tokens"])
        # Played with the model's own answers, in sessions and without, each with its own system prompt.
        self.chat_turns = {sessions: chat_conversations(corpus, chat["system_tokens"], chat["session_conversations"],
                                                        chat["session_turns"], chat["turn_tokens"])
                           for sessions in (False, True)}
        arr = spec["arrivals"]
        self.running_alone = [corpus.prompt(arr["running_prompt"]) for _ in range(arr["running"])]
        self.running = [corpus.prompt(arr["running_prompt"]) for _ in range(arr["running"])]
        self.arriving = [corpus.prompt(arr["arriving_prompt"]) for _ in range(arr["arriving"])]
        self.corpus_tokens_used = corpus.position


def measure_levels(running: peers.Running, sets: PromptSets, levels: list[int], ideal: dict | None,
                   new_tokens: int) -> dict:
    """Each concurrency level with its own fresh prompts; returns figures per level."""
    send = running.send
    figures = {}
    for concurrency in levels:
        prompts = sets.levels[concurrency]
        indices = [i % len(sets.base) for i in range(len(prompts))]
        rss_reset = reset_peak_rss(running.pid)
        _log(f"  {running.contender.key} concurrency {concurrency}: {len(prompts)} requests")
        settle()
        level = run_load(lambda p: send(p, new_tokens), prompts, concurrency, running.url, running.ping_path)
        level.update(peak_rss_mib(running.pid), rss_reset_per_level=rss_reset)
        if ideal:
            level["ideal_s"] = inprocess.ideal_seconds(ideal, indices, concurrency, new_tokens)
        _log(f"    {level['tokens_per_s']:.1f} tok/s, TTFT p50 {level['ttft_p50_s'] * 1000:.0f} ms, "
             f"errors {level['errors']}, min tokens {level['min_tokens_per_request']}")
        figures[str(concurrency)] = level
    return figures


def run_inprocess(model_dir: Path, prompts, spec: dict, device: torch.device, dtypes: list[str]) -> tuple[dict, dict]:
    """The ideal schedule at each dtype, and sequential ``generate`` at the default dtype."""
    levels = spec["levels"] + spec["fp32_levels"] + spec["peer_levels"]
    batches = sorted({1} | {min(c, max(spec["requests"], c)) for c in levels} | {spec["head_to_head"]["streams"]})
    ideals, sequential = {}, None
    for dtype in dtypes:
        model, tokenizer = inprocess.load(str(model_dir), device, getattr(torch, dtype))
        _log(f"ideal schedule ({dtype}): prefill of {len(prompts)} prompts, decode steps at batch {batches}")
        ideals[dtype] = inprocess.ideal_schedule(model, prompts, batches, spec["new_tokens"], device)
        if sequential is None:
            _log(f"sequential generate ({dtype}): {len(prompts)} x {spec['new_tokens']} tokens")
            sequential = inprocess.sequential_generate(model, tokenizer, prompts, spec["new_tokens"], device)
            sequential["dtype"] = dtype
            _log(f"  {sequential['tokens_per_s']:.1f} tok/s")
        del model
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()
    return ideals, sequential


def _prometheus_counters(text: str) -> dict:
    """The server's own counters after the run (cache hits must be 0, failures 0)."""
    wanted = ("tgi_request_count", "tgi_request_success", "tgi_request_failure", "sluice_cache_hits",
              "sluice_request_cancelled")
    counters: dict = {}
    for line in text.splitlines():
        name = line.split("{")[0].split(" ")[0]
        if name in wanted:
            counters[name] = counters.get(name, 0) + float(line.rsplit(" ", 1)[1])
    return counters


def head_to_head(together: list[peers.Running], sets: PromptSets, spec: dict) -> dict:
    """Alternating rounds (A B C, C B A, ...) at the same streams; medians per contender and
    their ratios over the reference (vLLM's server), robust to the machine drifting."""
    streams = spec["head_to_head"]["streams"]
    rounds: list[dict] = []
    for index, prompts in enumerate(sets.head_to_head):
        order = together if index % 2 == 0 else together[::-1]
        for running in order:
            settle()
            level = run_load(lambda p, r=running: r.send(p, spec["new_tokens"]), prompts, streams,
                             running.url, running.ping_path)
            _log(f"  head-to-head round {index + 1} {running.contender.key}: {level['tokens_per_s']:.1f} tok/s, "
                 f"TTFT p50 {level['ttft_p50_s'] * 1000:.0f} ms")
            rounds.append({"round": index + 1, "contender": running.contender.key,
                           **{k: level[k] for k in ("tokens_per_s", "ttft_p50_s", "ttft_p95_s", "itl_p50_s",
                                                    "itl_p95_s", "tpot_mean_s", "errors", "generated_tokens",
                                                    "min_tokens_per_request")}})
    medians = {}
    for running in together:
        mine = [r for r in rounds if r["contender"] == running.contender.key]
        medians[running.contender.key] = {k: statistics.median(r[k] for r in mine)
                                          for k in ("tokens_per_s", "ttft_p50_s", "itl_p50_s", "tpot_mean_s")}
        medians[running.contender.key]["errors"] = sum(r["errors"] for r in mine)
    keys = [r.contender.key for r in together]
    reference = REFERENCE if REFERENCE in keys else keys[-1]
    ratios = {key: {"throughput": medians[key]["tokens_per_s"] / medians[reference]["tokens_per_s"],
                    "ttft_p50": medians[key]["ttft_p50_s"] / medians[reference]["ttft_p50_s"]}
              for key in keys if key != reference}
    return {"streams": streams, "new_tokens": spec["new_tokens"], "rounds": rounds, "medians": medians,
            "contenders": keys, "reference": reference, "ratios": ratios}


def run_scenarios(running: peers.Running, sets: PromptSets, spec: dict, wanted: list[str], results: dict) -> None:
    key = running.contender.key
    if running.contender.scenarios is not None:
        wanted = [s for s in wanted if s in running.contender.scenarios]
    if "chat" in wanted:
        settle()
        chat = spec["chat"]
        _log(f"  {key} chat: {len(sets.chat_sequential)} turns of {spec['chat']['conversations']} conversations "
             "one at a time, then "
             f"{len(sets.chat_concurrent)} at once ({sets.chat_shared} shared prefix tokens)")
        figures = scenarios.chat(running.send, running.url, running.ping_path, sets.chat_sequential,
                                 sets.chat_kinds, sets.chat_concurrent, sets.chat_shared, chat["new_tokens"])
        _log(f"    TTFT first {figures['first_ttft_s'] * 1000:.0f} ms, 2nd..nth p50 "
             f"{figures['rest_ttft_p50_s'] * 1000:.0f} ms; problems {figures['problems'][:2]}")
        results["scenarios"].setdefault("chat", {})[key] = figures
        if running.contender.kind == "sluice":
            results["scenarios"].setdefault("chat_sessions", {})[key] = chat_in_sessions(running, sets, chat)
    if "arrivals" in wanted:
        settle()
        arr = spec["arrivals"]
        _log(f"  {key} arrivals: {arr['running']} streams, {arr['arriving']} x {arr['arriving_prompt']}-token arrivals")
        figures = scenarios.arrivals(running.send, sets.running_alone, sets.running, sets.arriving,
                                     arr["running_tokens"], arr["arriving_tokens"], stagger_s=arr["stagger_s"])
        _log(f"    ITL p95 {figures['without_arrivals']['itl_p95_s'] * 1000:.0f} ms alone, "
             f"{figures['during_arrivals']['itl_p95_s'] * 1000:.0f} ms during arrivals; "
             f"problems {figures['problems'][:2]}")
        results["scenarios"].setdefault("arrivals", {})[key] = figures


def chat_in_sessions(running: peers.Running, sets: PromptSets, chat: dict) -> dict:
    """Conversations with the model's own answers, in sessions and without, taking turns."""
    url = running.url
    settle()
    figures = scenarios.chat_turns(
        lambda prompt, n, session_id: sluice_chat_turn(url, prompt, n, session_id),
        lambda: session_request(url, "NEW_SESSION"), lambda session_id: session_request(url, "CLOSE", session_id),
        lambda messages: render_chat(sets.tokenizer, messages),
        {"without_sessions": (sets.chat_turns[False], False), "in_sessions": (sets.chat_turns[True], True)},
        chat["new_tokens"])
    inside = figures["in_sessions"]
    _log(f"    in sessions: TTFT first turns p50 {_ms(inside['first_ttft_p50_s'])} ms, follow-ups p50 "
         f"{_ms(inside['follow_up_ttft_p50_s'])} ms; problems {inside['problems'][:2]}")
    return figures


def _ms(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds * 1000:.0f}"


def scenario_contenders(keys: list[str]) -> list[str]:
    """Chat and arrivals: every server but transformers serve, the own engine at bf16 only when
    it runs at bf16 too (same dtype as the vLLM contenders)."""
    chosen = [k for k in keys if peers.CONTENDERS[k].kind != "transformers-serve"]
    if "sluice-bf16" in chosen and "sluice-fp32" in chosen:
        chosen.remove("sluice-fp32")
    return chosen


def groups(keys: list[str]) -> list[list[str]]:
    """Run order as listed; the head-to-head contenders present (two or more) as one group."""
    out, together = [], [k for k in TOGETHER if k in keys]
    if len(together) < 2:
        together = []
    for key in keys:
        if key in together:
            if key == together[0]:
                out.append(together)
        else:
            out.append([key])
    return out


def run_group(keys: list[str], model_dir: Path, sets: PromptSets, spec: dict, args, results: dict,
              threads: int) -> None:
    started_all: list[peers.Running] = []
    try:
        for key in keys:
            contender = peers.CONTENDERS[key]
            limits = None
            if contender.kind == "vllm-server":
                sluice_vllm = next((r for r in started_all if r.contender.key == PAIR[0]), None)
                limits = peers.vllm_limits(model_dir, sluice_vllm.info.get("info") if sluice_vllm else None)
            began = time.perf_counter()
            running = peers.start(contender, model_dir, args.device, threads, spec, limits)
            started_all.append(running)
            peers.wait(running, timeout=600)
            running.startup_s = time.perf_counter() - began
            _log(f"{contender.label} ({contender.dtype}, {running.threads}) ready in {running.startup_s:.1f} s "
                 f"on {running.url}")
            # Warm-up with the real request shape (first-call allocations, lazy imports).
            run_load(lambda p, r=running: r.send(p, spec["new_tokens"]), sets.warmup, 2, running.url,
                     running.ping_path)
        for running in started_all:
            entry = peers.public(running)
            results["contenders"][running.contender.key] = entry
            if "throughput" in args.scenarios:
                levels = spec[running.contender.levels_key]
                ideal = results["ideal"].get(running.contender.dtype)
                entry["levels"] = measure_levels(running, sets, levels, ideal, spec["new_tokens"])
        if len(started_all) >= 2 and "head-to-head" in args.scenarios:
            results["head_to_head"] = head_to_head(started_all, sets, spec)
        for running in started_all:
            if running.contender.key in scenario_contenders(args.contenders):
                run_scenarios(running, sets, spec, args.scenarios, results)
            if running.contender.kind == "sluice":
                results["contenders"][running.contender.key]["metrics"] = _prometheus_counters(
                    get_text(running.url, "/metrics"))
    except Exception as error:  # a contender failing is a result; the others still run
        _log(f"{keys} failed: {type(error).__name__}: {error}")
        for key in keys:
            results["contenders"].setdefault(key, {})["error"] = f"{type(error).__name__}: {error}"[:3000]
    finally:
        for running in started_all:
            code = running.stop()
            results["contenders"].setdefault(running.contender.key, {})["exit_code"] = code


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "latest.json"))
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny model, few requests, own engine")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--contenders", help=f"comma-separated, from {', '.join(peers.CONTENDERS)} "
                        "(default: all; --quick: sluice-fp32)")
    parser.add_argument("--scenarios", default=",".join(ALL_SCENARIOS),
                        help=f"comma-separated, from {', '.join(ALL_SCENARIOS)} (default: all)")
    parser.add_argument("--levels", help="comma-separated concurrency levels for every contender "
                        "(default: 1,4,16,32; own engine fp32 1,16; transformers serve 16,32)")
    parser.add_argument("--skip-inprocess", action="store_true", help="no sequential generate and no ideal "
                        "schedule (their ratio columns stay empty): a quicker server-only comparison")
    parser.add_argument("--skip-transformers-serve", action="store_true")
    parser.add_argument("--skip-vllm", action="store_true", help="leave out both vLLM contenders")
    parser.add_argument("--model-dir", help="use this model directory instead of building the demo model")
    parser.add_argument("--threads", type=int, help="threads for every contender (default: all cores, "
                        "unpinned); 1 is steadier on a machine others are loading")
    parser.add_argument("--sim-contenders", help="gpu-sim: comma-separated, from "
                        f"{', '.join(sim_contenders.CONTENDERS)} (default: all; --quick: sluice-standin)")
    parser.add_argument("--sim-streams", help="gpu-sim: comma-separated stream counts (default: 16,64,256,512)")
    parser.add_argument("--sim-steps", help="gpu-sim: comma-separated step times in ms (default: 10,20)")
    parser.add_argument("--sim-rounds", type=int, help="gpu-sim: alternating rounds per point (default: 2)")
    parser.add_argument("--sim-serial-steps", action="store_true",
                        help="gpu-sim: the host's work between two steps delays the next step (vLLM's CPU "
                        "build, --no-async-scheduling), instead of running beside it as vLLM schedules on CUDA")
    parser.add_argument("--port-base", type=int, help="gpu-sim: listen on consecutive ports from this one "
                        "(default: free ports)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # run the finally blocks on kill too
    spec = dict(QUICK if args.quick else FULL)
    if args.levels:
        spec["levels"] = spec["fp32_levels"] = spec["peer_levels"] = spec["chunk_levels"] = [
            int(c) for c in args.levels.split(",")]
    args.contenders = args.contenders.split(",") if args.contenders else list(spec["contenders"])
    args.scenarios = args.scenarios.split(",")
    unknown = [k for k in args.contenders if k not in peers.CONTENDERS] + \
        [s for s in args.scenarios if s not in ALL_SCENARIOS]
    if unknown:
        parser.error(f"unknown contender or scenario: {', '.join(unknown)}")
    if args.skip_transformers_serve:
        args.contenders = [k for k in args.contenders if peers.CONTENDERS[k].kind != "transformers-serve"]
    if args.skip_vllm:
        args.contenders = [k for k in args.contenders if k not in PAIR]
    missing_vllm = [k for k in args.contenders if k in PAIR and not (peers.VLLM_BIN / "python").exists()]
    if missing_vllm:
        _log(f"{', '.join(missing_vllm)}: skipped, .venv-vllm is missing (make install-vllm)")
        args.contenders = [k for k in args.contenders if k not in missing_vllm]
    threads = args.threads or os.cpu_count() or 1
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)  # inherited by transformers serve
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")

    began = time.perf_counter()
    results: dict = {"machine": _machine(args.device), "contenders": {}, "scenarios": {}}
    servers = any(s in SERVER_SCENARIOS for s in args.scenarios)
    if servers:
        run_servers(args, spec, device, threads, results)
    if "gpu-sim" in args.scenarios:
        results["gpu_sim"] = run_gpu_sim(args)
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["total_s"] = time.perf_counter() - began
    tables = ([markdown_table(results)] if servers else []) + \
        ([sim_report.markdown(results["gpu_sim"])] if "gpu_sim" in results else [])
    table = "\n\n".join(tables)
    results["table_markdown"] = table
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table)
    _log(f"wrote {out} in {results['total_s']:.0f} s")
    return 0


def run_servers(args, spec: dict, device: torch.device, threads: int, results: dict) -> None:
    """The in-process baselines, then each contender group's throughput, head-to-head, chat and arrivals."""
    model_dir = (Path(args.model_dir) if args.model_dir
                 else build(spec["size"], REPO / ".cache" / "models" / spec["size"]))
    from transformers import AutoTokenizer
    sets = PromptSets(AutoTokenizer.from_pretrained(model_dir), spec)
    results["config"] = {**spec, "model_dir": str(model_dir), "quick": args.quick, "contenders": args.contenders,
                         "scenarios": args.scenarios, "prompt_tokens": [p.length for p in sets.base], "greedy": True,
                         "threads": threads, "corpus_tokens_used": sets.corpus_tokens_used}
    _log(f"model {model_dir}, {len(sets.base)} prompts, {sum(p.length for p in sets.base)} prompt tokens; "
         f"contenders {', '.join(args.contenders)}; scenarios {', '.join(args.scenarios)}")
    dtypes = sorted({peers.CONTENDERS[k].dtype for k in args.contenders} | {"float32"},
                    key=lambda d: d != "float32")
    if args.skip_inprocess:
        results["ideal"], results["sequential"] = {}, {"skipped": "--skip-inprocess", "tokens_per_s": None}
    else:
        results["ideal"], results["sequential"] = run_inprocess(model_dir, sets.base, spec, device, dtypes)
    for keys in groups(args.contenders):
        run_group(keys, model_dir, sets, spec, args, results, threads)
    results["ratios"] = compute_ratios(results)


def run_gpu_sim(args) -> dict:
    """The simulated-GPU grid (bench/gpu_sim), on the untrained tiny model (its forward is a wait)."""
    spec = dict(gpu_sim.QUICK if args.quick else gpu_sim.GRID)
    if args.sim_streams:
        spec["streams"] = [int(n) for n in args.sim_streams.split(",")]
    if args.sim_steps:
        spec["step_ms"] = [float(s) for s in args.sim_steps.split(",")]
    if args.sim_rounds:
        spec["rounds"] = args.sim_rounds
    if args.sim_serial_steps:
        spec["overlapped"] = False
    keys = args.sim_contenders.split(",") if args.sim_contenders else spec["contenders"]
    unknown = [k for k in keys if k not in sim_contenders.CONTENDERS]
    if unknown:
        raise SystemExit(f"unknown gpu-sim contender: {', '.join(unknown)}")
    if not (sim_contenders.VLLM_BIN / "python").exists():
        _log("gpu-sim: the vLLM contenders are skipped, .venv-vllm is missing (make install-vllm)")
        keys = [k for k in keys if sim_contenders.CONTENDERS[k].engine == "standin"]
    model_dir = build("tiny-random", REPO / ".cache" / "models" / "tiny-random")
    from transformers import AutoTokenizer
    _log(f"gpu-sim: contenders {', '.join(keys)}; streams {spec['streams']}, steps {spec['step_ms']} ms "
         f"({'overlapped' if spec['overlapped'] else 'serial'}), {spec['rounds']} rounds")
    return gpu_sim.run(model_dir, AutoTokenizer.from_pretrained(model_dir), spec, keys, args.port_base)


if __name__ == "__main__":
    sys.exit(main())
