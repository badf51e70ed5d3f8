"""Side-by-side benchmark: Sluice vs sequential `generate` vs `transformers serve`, vs the ideal.

    python bench/run.py [--out bench/results/latest.json] [--quick] [--device cpu|cuda]
                        [--skip-transformers-serve] [--threads N] [--model-dir DIR]

One run, one model, one prompt set (16 requests x 64 new tokens, prompts 16-256 tokens, cut
deterministically from the demo corpus). In order, so no two contenders share the cores:
1. in process: the ideal schedule (raw prefill + raw KV-cache decode steps) and sequential greedy
   ``model.generate``;
2. the real ``container/serve`` (gunicorn + the batching engine) at each concurrency level, with
   streaming clients, a /ping prober and the server tree's peak RSS;
3. ``transformers serve --continuous-batching`` under the same load.
Prints a markdown table and writes every figure and ratio as JSON. ``--quick`` is a smoke run on
the tiny model. Everything binds to 127.0.0.1, and every process started is stopped on exit,
error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import functools
import gc
import json
import os
import platform
import signal
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
import transformers  # noqa: E402

from bench import inprocess  # noqa: E402
from bench.clients import get_text, openai_completion_stream, sluice_stream  # noqa: E402
from bench.load import run_load  # noqa: E402
from bench.processes import PeerServer, peak_rss_mib, reset_peak_rss  # noqa: E402
from bench.prompts import build_prompts  # noqa: E402
from bench.report import compute_ratios, markdown_table  # noqa: E402
from demo.build_model import build  # noqa: E402
from deploy.local import ContainerProcess, free_port  # noqa: E402

FULL = {"size": "small", "requests": 16, "new_tokens": 64, "shortest": 16, "longest": 256,
        "levels": [1, 4, 16, 32], "peer_levels": [4, 16, 32]}
QUICK = {"size": "tiny", "requests": 4, "new_tokens": 16, "shortest": 16, "longest": 64,
         "levels": [1, 4], "peer_levels": [4]}


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


def _levels_for(concurrency_levels: list[int], requests: int) -> dict[int, list[int]]:
    """Prompt index of each request per level: at least ``requests``, at least one per client."""
    return {c: [i % requests for i in range(max(requests, c))] for c in concurrency_levels}


def measure_server(send, url: str, ping_path: str, pid: int, prompts, levels: dict[int, list[int]],
                   ideal: dict, new_tokens: int) -> dict:
    """Warm up with the real request shape, then run each level; returns figures per level."""
    run_load(send, [prompts[0].text, prompts[1].text], 2, url, ping_path)
    figures = {}
    for concurrency, indices in levels.items():
        rss_reset = reset_peak_rss(pid)
        _log(f"  concurrency {concurrency}: {len(indices)} requests")
        level = run_load(send, [prompts[i].text for i in indices], concurrency, url, ping_path)
        level.update(peak_rss_mib(pid), rss_reset_per_level=rss_reset,
                     ideal_s=inprocess.ideal_seconds(ideal, indices, concurrency, new_tokens))
        _log(f"    {level['tokens_per_s']:.1f} tok/s, TTFT p50 {level['ttft_p50_s'] * 1000:.0f} ms, "
             f"errors {level['errors']}")
        figures[str(concurrency)] = level
    return figures


def run_inprocess(model_dir: Path, prompts, spec: dict, device: torch.device) -> tuple[dict, dict]:
    model, tokenizer = inprocess.load(str(model_dir), device)
    batches = sorted({1} | {min(c, max(spec["requests"], c)) for c in spec["levels"] + spec["peer_levels"]})
    _log(f"ideal schedule: prefill of {len(prompts)} prompts, decode steps at batch {batches}")
    ideal = inprocess.ideal_schedule(model, prompts, batches, spec["new_tokens"], device)
    _log(f"sequential generate: {len(prompts)} x {spec['new_tokens']} tokens")
    sequential = inprocess.sequential_generate(model, tokenizer, prompts, spec["new_tokens"], device)
    _log(f"  {sequential['tokens_per_s']:.1f} tok/s")
    del model
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return ideal, sequential


def run_sluice(model_dir: Path, prompts, spec: dict, ideal: dict, device: str) -> dict:
    # No response cache: repeated prompts must be generated again, not replayed.
    env = {"SLUICE_DEVICE": device, "SLUICE_HOST": "127.0.0.1", "RESPONSE_CACHE_SIZE": "0"}
    server = ContainerProcess(model_dir, env=env)
    started = time.perf_counter()
    try:
        server.start().wait_ready(timeout=300)
        startup = time.perf_counter() - started
        _log(f"Sluice ready in {startup:.1f} s on {server.url}")
        send = functools.partial(sluice_stream, server.url, max_new_tokens=spec["new_tokens"])
        levels = measure_server(send, server.url, "/ping", server.proc.pid, prompts,
                                _levels_for(spec["levels"], spec["requests"]), ideal, spec["new_tokens"])
        counters = _prometheus_counters(get_text(server.url, "/metrics"))
    finally:
        code = server.stop()
    return {"startup_s": startup, "exit_code": code, "env": env, "levels": levels, "metrics": counters}


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


def run_peer(model_dir: Path, prompts, spec: dict, ideal: dict, device: str) -> dict:
    levels = _levels_for(spec["peer_levels"], spec["requests"])
    most = max(len(indices) for indices in levels.values())
    # 256-token pages: each request needs ceil((prompt + new) / 256) of them; leave room for two more.
    pages = -(-(spec["longest"] + spec["new_tokens"]) // 256)
    options = {"num_blocks": pages * (most + 2), "max_batch_tokens": 1024}
    peer = PeerServer(str(model_dir), free_port(), device, **options)
    started = time.perf_counter()
    try:
        peer.start()
        startup = time.perf_counter() - started
        _log(f"transformers serve ready in {startup:.1f} s on {peer.url}")
        send = functools.partial(openai_completion_stream, peer.url, max_new_tokens=spec["new_tokens"])
        figures = measure_server(send, peer.url, "/health", peer.proc.pid, prompts, levels, ideal,
                                 spec["new_tokens"])
    finally:
        peer.stop()
    return {"startup_s": startup, "options": options, "argv": peer.argv, "levels": figures}


def _terminate_as_interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "latest.json"))
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny model, few requests")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--skip-transformers-serve", action="store_true")
    parser.add_argument("--model-dir", help="use this model directory instead of building the demo model")
    parser.add_argument("--threads", type=int, help="torch threads for every contender (default: each "
                        "library's own, i.e. all cores); 1 is steadier on a machine others are loading")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate_as_interrupt)  # run the finally blocks on kill too
    if args.threads:
        torch.set_num_threads(args.threads)
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by transformers serve
        os.environ["SLUICE_TORCH_THREADS"] = str(args.threads)  # inherited by container/serve
    spec = dict(QUICK if args.quick else FULL)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is visible")

    began = time.perf_counter()
    model_dir = Path(args.model_dir) if args.model_dir else build(spec["size"], REPO / ".cache" / "models" / spec["size"])
    from transformers import AutoTokenizer
    prompts = build_prompts(AutoTokenizer.from_pretrained(model_dir), spec["requests"], spec["shortest"], spec["longest"])
    results: dict = {
        "machine": _machine(args.device),
        "config": {**spec, "model_dir": str(model_dir), "quick": args.quick,
                   "prompt_tokens": [p.length for p in prompts], "greedy": True,
                   "threads": args.threads or "library default"},
    }
    _log(f"model {model_dir}, {len(prompts)} prompts, {sum(p.length for p in prompts)} prompt tokens")
    results["ideal"], results["sequential"] = run_inprocess(model_dir, prompts, spec, device)
    results["sluice"] = run_sluice(model_dir, prompts, spec, results["ideal"], args.device)
    if args.skip_transformers_serve:
        results["transformers_serve"] = {"skipped": "--skip-transformers-serve"}
    else:
        try:
            results["transformers_serve"] = run_peer(model_dir, prompts, spec, results["ideal"], args.device)
        except Exception as error:  # the peer failing (e.g. on a GPU it does not support) is a result
            _log(f"transformers serve failed: {error}")
            results["transformers_serve"] = {"error": f"{type(error).__name__}: {error}"[:2000]}
    results["ratios"] = compute_ratios(results)
    results["machine"]["loadavg_at_end"] = os.getloadavg()
    results["total_s"] = time.perf_counter() - began
    table = markdown_table(results)
    results["table_markdown"] = table
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(table)
    _log(f"wrote {out} in {results['total_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
