"""The GPU check: the real server on the embedded engine on CUDA, and its host path alone.

For a session that is lent a GPU (one H200, minutes of device time): one run under 8 minutes on
a machine with torch+CUDA, transformers, tokenizers, numpy, safetensors, psutil and
prometheus-client but no vLLM and nothing to download; Flask, gunicorn and the transformers
Sluice pins are carried as wheels. What it does:

1. builds the ``small`` demo model (78.6 M parameters, untrained, offline);
2. starts the real server (``container/serve``: gunicorn, the embedded engine) on CUDA in bf16
   and streams N = 1, 64 and 256 requests at once, 256 new tokens each, through the same
   ``epoll`` client as the ``gpu-sim`` benchmark: tokens/s delivered, TTFT, inter-token gaps,
   the server's CPU, errors;
3. for each N, starts the server again with the cost-free stand-in engine (``bench/gpu_sim``)
   whose simulated step is the step time the GPU run just measured at that N, and streams the
   same load: the host path's own ceiling at that rate. Real ÷ stand-in near 1 says the host
   keeps up with the GPU; well below 1 says the GPU step itself is the limit.

Writes ``gpu-check.json`` and ``gpu-check.md`` to ``--out`` and prints the table last.

Here, once: ``bench/gpu_wheels.sh`` (the wheels, into ``.whl/``). Then one device call, carrying
``.whl``, within its 10 minutes (timeout_s 600):

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site && \
        PYTHONUNBUFFERED=1 python3 bench/gpu_check.py --out $OUT

A dry run of the script on a CPU (the tiny model, a few tokens; no wheels needed here):

    .venv/bin/python bench/gpu_check.py --device cpu --quick --out /tmp/gpu-check

Imports only the standard library, ``demo`` (the model build) and the bench's client and
process helpers, so it runs where boto3, moto or vLLM are missing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.gpu_sim.client import run_streams, tgi_request  # noqa: E402
from bench.load import percentile  # noqa: E402
from bench.processes import PeerServer, tree_cpu_seconds  # noqa: E402

SERVE = REPO / "container" / "serve"
HOOK = REPO / "bench" / "gpu_sim" / "hook"


def _log(message: str) -> None:
    print(f"[gpu-check] {message}", file=sys.stderr, flush=True)


def server(model_dir: Path, port: int, env: dict) -> PeerServer:
    """``container/serve`` on 127.0.0.1, ready when ``/ping`` says 200."""
    started = PeerServer([sys.executable, str(SERVE)], port, health_path="/ping",
                         env=dict(env, HF_MODEL_ID=str(model_dir), SAGEMAKER_BIND_TO_PORT=str(port),
                                  RESPONSE_CACHE_SIZE="0"))
    started.name = "the server"
    return started.start()


def info(url: str) -> dict:
    with urllib.request.urlopen(url + "/info", timeout=5) as response:
        return json.loads(response.read())


def prompts(tokenizer, count: int, length: int) -> list[str]:
    """``count`` different prompt texts of about ``length`` tokens, cut from the demo corpus."""
    from demo.corpus_reader import read_paragraphs

    stream: list[int] = []
    for paragraph in read_paragraphs():
        stream.extend(tokenizer(paragraph + "\n\n", add_special_tokens=False)["input_ids"])
    step = max(1, (len(stream) - length) // max(1, count))
    return [tokenizer.decode(stream[i * step:i * step + length]) for i in range(count)]


def measure(running: PeerServer, texts: list[str], new_tokens: int) -> dict:
    cpu = tree_cpu_seconds(running.proc.pid)
    began = time.perf_counter()
    timings = run_streams("127.0.0.1", int(running.url.rsplit(":", 1)[1]), [tgi_request(t, new_tokens) for t in texts])
    wall = time.perf_counter() - began
    good = [t for t in timings if not t.error and t.event_times]
    generated = sum(t.generated_tokens for t in good)
    gaps = [g for t in good for g in t.gaps]
    tpot = [(t.event_times[-1] - t.event_times[0]) / (t.generated_tokens - 1) for t in good if t.generated_tokens > 1]
    return {"streams": len(texts), "errors": len(timings) - len(good),
            "error_samples": [t.error for t in timings if t.error][:3], "generated_tokens": generated,
            "wall_s": wall, "tokens_per_s": generated / wall if wall else 0.0,
            "ttft_p50_s": percentile([t.ttft for t in good], 50), "ttft_p95_s": percentile([t.ttft for t in good], 95),
            "itl_p50_s": percentile(gaps, 50), "itl_p95_s": percentile(gaps, 95),
            "tpot_median_s": statistics.median(tpot) if tpot else 0.0,
            "server_cpu_cores": (tree_cpu_seconds(running.proc.pid) - cpu) / wall if wall else 0.0}


def engine_env(device: str, most: int) -> dict:
    return {"SLUICE_ENGINE": "sluice", "SLUICE_DEVICE": device, "DTYPE": "bfloat16",
            "MAX_CONCURRENT_REQUESTS": str(most), "MAX_BATCH_SIZE": str(most)}


def standin_env(step_ms: float, most: int) -> dict:
    path = os.pathsep.join(p for p in (str(HOOK), os.environ.get("PYTHONPATH", "")) if p)
    return {**engine_env("cpu", most), "PYTHONPATH": path, "SLUICE_GPU_SIM_STEP_MS": f"{step_ms:.3f}",
            "SLUICE_GPU_SIM_STANDIN": "1"}


def run(args) -> dict:
    from transformers import AutoTokenizer

    from demo.build_model import build

    size = "tiny-random" if args.quick else "small"
    model_dir = Path(args.model_dir) if args.model_dir else build(size, REPO / ".cache" / "models" / size)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    streams = [int(n) for n in args.streams.split(",")]
    most = max(streams)
    texts = {n: prompts(tokenizer, n, args.prompt_tokens) for n in streams}
    results: dict = {"machine": machine(), "model": str(model_dir), "new_tokens": args.tokens,
                     "prompt_tokens": args.prompt_tokens, "engine": {}, "standin": {}}
    began = time.monotonic()
    engine = server(model_dir, args.port, engine_env(args.device, most))
    try:
        engine.wait_ready(args.start_timeout)
        results["info"] = {k: info(engine.url).get(k) for k in ("model_dtype", "model_device_type",
                                                               "max_batch_size", "max_batch_total_tokens",
                                                               "fused_prefill")}
        _log(f"server ready in {time.monotonic() - began:.0f} s: {results['info']}")
        measure(engine, texts[streams[0]][:2], 16)  # warm-up: first-call allocations, kernels
        for n in streams:
            figures = results["engine"][str(n)] = measure(engine, texts[n], args.tokens)
            _log(f"engine N={n}: {figures['tokens_per_s']:.0f} tok/s, step {figures['tpot_median_s'] * 1000:.2f} ms, "
                 f"ITL p95 {figures['itl_p95_s'] * 1000:.1f} ms, server {figures['server_cpu_cores']:.2f} cores, "
                 f"errors {figures['errors']}")
    finally:
        engine.stop()
    for n in streams:
        step_ms = max(0.5, results["engine"][str(n)]["tpot_median_s"] * 1000)
        standin = server(model_dir, args.port + 1, standin_env(step_ms, most))
        try:
            standin.wait_ready(args.start_timeout)
            measure(standin, texts[n][:2], 16)
            figures = results["standin"][str(n)] = dict(measure(standin, texts[n], args.tokens), step_ms=step_ms,
                                                         ideal_tokens_per_s=n * 1000 / step_ms)
            _log(f"stand-in N={n} at {step_ms:.2f} ms: {figures['tokens_per_s']:.0f} tok/s "
                 f"({figures['tokens_per_s'] / figures['ideal_tokens_per_s']:.2f} of ideal)")
        finally:
            standin.stop()
    results["total_s"] = time.monotonic() - began
    return results


def machine() -> dict:
    info = {"python": platform.python_version(), "cores": os.cpu_count(), "loadavg": os.getloadavg()}
    try:
        import torch

        info.update(torch=torch.__version__, cuda=torch.version.cuda,
                    gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
    except Exception as error:  # the table says what was there
        info["torch_error"] = repr(error)
    return info


def markdown(results: dict) -> str:
    where = results["machine"].get("gpu") or "CPU (dry run)"
    lines = [f"GPU check on {where}: the `{Path(results['model']).name}` demo model through the real server, "
             f"{results['new_tokens']} new tokens per stream, prompts of about "
             f"{results['prompt_tokens']} tokens; the stand-in runs the same host path with the step time the GPU "
             "run measured:", "",
             "| streams | engine tok/s | step (ms) | TTFT p50 / p95 (ms) | ITL p50 / p95 (ms) | server CPU (cores) | "
             "stand-in tok/s | stand-in × ideal | engine ÷ stand-in | errors |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for n, e in results["engine"].items():
        s = results["standin"].get(n, {})
        ratio = e["tokens_per_s"] / s["tokens_per_s"] if s.get("tokens_per_s") else None
        lines.append(
            f"| {n} | {e['tokens_per_s']:.0f} | {e['tpot_median_s'] * 1000:.2f} | {e['ttft_p50_s'] * 1000:.0f} / "
            f"{e['ttft_p95_s'] * 1000:.0f} | {e['itl_p50_s'] * 1000:.1f} / {e['itl_p95_s'] * 1000:.1f} | "
            f"{e['server_cpu_cores']:.2f} | {s.get('tokens_per_s', 0):.0f} | "
            f"{s['tokens_per_s'] / s['ideal_tokens_per_s'] if s else 0:.2f} | "
            f"{'–' if ratio is None else f'{ratio:.2f}'} | {e['errors'] + s.get('errors', 0)} |")
    lines.append(f"\nWhole check {results['total_s']:.0f} s; {results['machine']}.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="folder for gpu-check.json and gpu-check.md")
    parser.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    parser.add_argument("--quick", action="store_true", help="the tiny model and few tokens: a dry run of the script")
    parser.add_argument("--streams", default="1,64,256")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--model-dir")
    parser.add_argument("--port", type=int, default=19480)
    parser.add_argument("--start-timeout", type=float, default=300.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.tokens, args.prompt_tokens = "1,4,16", 32, 16
    results = run(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "gpu-check.json").write_text(json.dumps(results, indent=2) + "\n")
    table = markdown(results)
    (out / "gpu-check.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
