"""Memory soak: does the server's memory level off under steady mixed traffic?

    .venv/bin/python bench/soak.py [--minutes 10] [--clients 4] [--model-dir DIR] [--every 30]
                                   [--env NAME=VALUE ...] [--out bench/results/soak.json]

Starts the real ``container/serve`` (the tiny demo model by default, built if missing) and keeps
``--clients`` closed-loop clients busy for ``--minutes``: streaming and non-streaming requests in
turn, on TGI's and OpenAI's routes, with fresh prompts (so the prefix cache fills), prompts
sharing a system preamble (prefix-cache hits) and exact repeats (response-cache hits). Every
``--every`` seconds it records the resident memory (VmRSS) of the whole process tree, the caches'
sizes from ``/metrics`` and the load average, then prints a table and the slope of the tree's RSS
over the second half (MiB per minute, least squares): a server whose caches honour their bounds
levels off, and the table shows the caches' bytes beside the growth. ``--env`` passes settings
to the server (``MAX_BATCH_TOTAL_TOKENS``, ``RESPONSE_CACHE_SIZE``, ``MALLOC_ARENA_MAX`` ...).
Everything binds to 127.0.0.1; the server is stopped on exit, error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import sys
import threading
import time
from pathlib import Path

import requests

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.processes import process_tree  # noqa: E402
from demo.build_model import build  # noqa: E402
from demo.corpus_reader import read_paragraphs  # noqa: E402
from deploy.local import ContainerProcess  # noqa: E402

MiB = 1024 * 1024
CACHE_METRICS = ("sluice_prefix_cache_entries", "sluice_prefix_cache_tokens", "sluice_prefix_cache_bytes",
                 "sluice_prefix_cache_capacity_tokens", "sluice_response_cache_entries",
                 "sluice_response_cache_bytes", "sluice_response_cache_capacity_entries")
PREAMBLE = ("You are a careful assistant for a cheese shop. Answer in two sentences, name the cheese, "
            "and never invent prices. ")


def rss_mib(root: int) -> dict:
    """Resident memory of every process in the tree (MiB), and their sum."""
    sizes = {}
    for pid in process_tree(root):
        try:
            with open(f"/proc/{pid}/status") as handle:
                sizes[pid] = next(int(line.split()[1]) for line in handle if line.startswith("VmRSS:")) / 1024
        except (OSError, StopIteration):
            pass
    return {"tree": sum(sizes.values()), "largest": max(sizes.values(), default=0.0), "processes": len(sizes)}


def scrape(url: str) -> dict:
    values = {}
    for line in requests.get(url + "/metrics", timeout=10).text.splitlines():
        name, _, value = line.partition(" ")
        if name in CACHE_METRICS or name == "tgi_request_count":
            values[name] = float(value)
    return values


class Traffic:
    """Closed-loop clients: each sends its next request as soon as the previous one ends."""

    def __init__(self, url: str, paragraphs: list[str], seed: int = 0):
        self.url, self.paragraphs = url, paragraphs
        self.sent = itertools.count()
        self.done = self.errors = 0
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.random = random.Random(seed)
        self.repeats: list[str] = []

    def prompt(self, n: int) -> str:
        """Fresh text most of the time; every 4th shares the preamble, every 5th repeats an earlier one."""
        if n % 5 == 4 and self.repeats:
            return self.random.choice(self.repeats)
        start = self.random.randrange(len(self.paragraphs))
        text = f"[{n}] " + " ".join(self.paragraphs[start:start + 2])[: self.random.randint(100, 900)]
        if n % 4 == 3:
            text = PREAMBLE + text
        if len(self.repeats) < 64:
            self.repeats.append(text)
        return text

    def one(self, n: int) -> None:
        text, tokens, stream = self.prompt(n), 16 + n % 33, n % 2 == 0
        if n % 3 == 2:
            path, body = "/v1/chat/completions", {"messages": [{"role": "user", "content": text}],
                                                  "max_tokens": tokens, "stream": stream}
        else:
            path, body = "/generate_stream" if stream else "/generate", {
                "inputs": text, "parameters": {"max_new_tokens": tokens}}
        response = requests.post(self.url + path, json=body, stream=stream, timeout=120)
        payload = b"".join(response.iter_content(chunk_size=None)) if stream else response.content
        failed = response.status_code != 200 or b'"error"' in payload
        with self.lock:
            self.done += 1
            self.errors += failed

    def client(self) -> None:
        while not self.stopping.is_set():
            try:
                self.one(next(self.sent))
            except requests.RequestException:
                with self.lock:
                    self.done += 1
                    self.errors += 1


def slope_mib_per_minute(samples: list[dict]) -> float:
    """Least-squares slope of the tree's RSS over ``samples`` (MiB per minute)."""
    if len(samples) < 2:
        return 0.0
    xs = [s["t_s"] / 60 for s in samples]
    ys = [s["rss_tree_mib"] for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def table(samples: list[dict]) -> str:
    lines = ["| t (s) | tree RSS (MiB) | largest (MiB) | requests | req/s | prefix entries | prefix MiB "
             "| prefix tokens / bound | response entries / bound | response MiB | load 1m |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for s in samples:
        lines.append(
            f"| {s['t_s']:.0f} | {s['rss_tree_mib']:.0f} | {s['rss_largest_mib']:.0f} | {s['requests']} "
            f"| {s['req_per_s']:.1f} | {s['prefix_entries']:.0f} | {s['prefix_mib']:.1f} "
            f"| {s['prefix_tokens']:.0f} / {s['prefix_capacity_tokens']:.0f} "
            f"| {s['response_entries']:.0f} / {s['response_capacity_entries']:.0f} | {s['response_mib']:.1f} "
            f"| {s['load_1m']:.2f} |")
    return "\n".join(lines)


def sample(server: ContainerProcess, traffic: Traffic, started: float, last: dict | None) -> dict:
    now = time.monotonic()
    metrics, rss = scrape(server.url), rss_mib(server.proc.pid)
    done = traffic.done
    rate = (done - last["requests"]) / (now - started - last["t_s"]) if last else 0.0
    return {"t_s": now - started, "rss_tree_mib": rss["tree"], "rss_largest_mib": rss["largest"],
            "processes": rss["processes"], "requests": done, "errors": traffic.errors, "req_per_s": rate,
            "prefix_entries": metrics.get("sluice_prefix_cache_entries", 0),
            "prefix_tokens": metrics.get("sluice_prefix_cache_tokens", 0),
            "prefix_mib": metrics.get("sluice_prefix_cache_bytes", 0) / MiB,
            "prefix_capacity_tokens": metrics.get("sluice_prefix_cache_capacity_tokens", 0),
            "response_entries": metrics.get("sluice_response_cache_entries", 0),
            "response_mib": metrics.get("sluice_response_cache_bytes", 0) / MiB,
            "response_capacity_entries": metrics.get("sluice_response_cache_capacity_entries", 0),
            "load_1m": os.getloadavg()[0]}


def soak(args) -> dict:
    model_dir = Path(args.model_dir) if args.model_dir else build("tiny", REPO / ".cache" / "models" / "tiny")
    env = dict(item.split("=", 1) for item in args.env)
    server = ContainerProcess(model_dir, env=env).start()
    samples: list[dict] = []
    traffic = None
    try:
        server.wait_ready(timeout=300)
        traffic = Traffic(server.url, read_paragraphs())
        clients = [threading.Thread(target=traffic.client, daemon=True) for _ in range(args.clients)]
        started = time.monotonic()
        for client in clients:
            client.start()
        samples.append(sample(server, traffic, started, None))
        while time.monotonic() - started < args.minutes * 60:
            time.sleep(min(args.every, max(0.0, args.minutes * 60 - (time.monotonic() - started))))
            samples.append(sample(server, traffic, started, samples[-1]))
            print(f"t={samples[-1]['t_s']:.0f}s tree RSS {samples[-1]['rss_tree_mib']:.0f} MiB, "
                  f"{samples[-1]['requests']} requests", flush=True)
        traffic.stopping.set()
        for client in clients:
            client.join(timeout=150)
    finally:
        if traffic is not None:
            traffic.stopping.set()
        exit_code = server.stop()
    half = [s for s in samples if s["t_s"] >= samples[-1]["t_s"] / 2]
    return {"config": {"minutes": args.minutes, "clients": args.clients, "model_dir": str(model_dir), "env": env,
                       "every_s": args.every, "cpus": os.cpu_count()},
            "samples": samples, "server_exit_code": exit_code,
            "rss_start_mib": samples[0]["rss_tree_mib"], "rss_end_mib": samples[-1]["rss_tree_mib"],
            "slope_mib_per_min": slope_mib_per_minute(samples),
            "slope_second_half_mib_per_min": slope_mib_per_minute(half),
            "requests": samples[-1]["requests"], "errors": samples[-1]["errors"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--every", type=float, default=30.0, help="seconds between samples")
    parser.add_argument("--model-dir", help="default: the tiny demo model (built if missing)")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE", help="server setting")
    parser.add_argument("--out", help="write every sample and the slopes as JSON")
    args = parser.parse_args()
    result = soak(args)
    print(table(result["samples"]))
    print(f"\ntree RSS {result['rss_start_mib']:.0f} -> {result['rss_end_mib']:.0f} MiB; slope "
          f"{result['slope_mib_per_min']:+.2f} MiB/min overall, {result['slope_second_half_mib_per_min']:+.2f} "
          f"MiB/min in the second half; {result['requests']} requests, {result['errors']} errors; "
          f"server exit code {result['server_exit_code']}")
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2))
    return 0 if result["errors"] == 0 and result["server_exit_code"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
