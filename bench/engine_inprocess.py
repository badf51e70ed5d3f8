"""The Sluice engine in-process, without HTTP: throughput, TTFT and inter-token latency.

For measuring engine changes step by step on a shared machine (no server, no sockets):

    python -m bench.engine_inprocess models/small --dtype bfloat16 --scenario streams --streams 16
    python -m bench.engine_inprocess models/small --scenario arrivals   # 8 x 1,500-token prompts join
    python -m bench.engine_inprocess models/small --scenario prefix     # requests sharing 1,000 tokens
    python -m bench.engine_inprocess models/small --plain-linear        # without oneDNN-packed weights

Every figure is a median or a percentile over one run; compare runs side by side.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "container"))

from sluice.config import Config, TokenLimits  # noqa: E402
from sluice.engines.native.engine import NativeEngine  # noqa: E402
from sluice.engines.native.model_runner import ModelRunner  # noqa: E402
from sluice.engines.native.prefix_cache import PrefixCache  # noqa: E402
from sluice.engines.native.scheduler import SchedulerBudget  # noqa: E402
from sluice.model.facts import eos_token_ids  # noqa: E402
from sluice.model.loading import configure_threads, load_model  # noqa: E402
from sluice.protocols.tgi.body import parse_generate_body  # noqa: E402
from sluice.request import RequestLimits  # noqa: E402
from sluice.serving.validation import Validator  # noqa: E402
from sluice.text.events import ErrorEvent  # noqa: E402


def build(model_dir: str, dtype: str, chunk: int, prefix_tokens: int, pack: bool = True, fuse: bool = True):
    config = Config.from_environ({"HF_MODEL_ID": model_dir, "DTYPE": dtype, "SLUICE_DEVICE": "cpu",
                                  "SLUICE_PACK_WEIGHTS": "1" if pack else "0"})
    configure_threads(config)
    loaded = load_model(config)
    runner = ModelRunner(loaded.model, loaded.device, loaded.tokenizer.pad_token_id, loaded.dtype_reason,
                         loaded.linear_kernels, fuse=fuse)
    budget = SchedulerBudget(max_batch_total_tokens=200_000, max_batch_prefill_tokens=chunk)
    eos_ids = eos_token_ids(loaded.model.generation_config, loaded.tokenizer)
    engine = NativeEngine(runner, loaded.tokenizer, budget, eos_ids, frozenset(loaded.tokenizer.all_special_ids),
                          PrefixCache(prefix_tokens) if prefix_tokens else None).start()
    validator = Validator(loaded.tokenizer, TokenLimits(max_input_tokens=2000, max_total_tokens=2048), 20)
    return engine, validator, loaded.tokenizer


def prompt_of(tokenizer, tokens: int, salt: int) -> str:
    """A prompt of about ``tokens`` tokens; ``salt`` makes prompts differ from the first word."""
    words = f"request {salt} " + " ".join(f"word{(salt * 7 + i) % 97}" for i in range(tokens))
    ids = tokenizer(words, add_special_tokens=False)["input_ids"][:tokens - 1]
    return tokenizer.decode(ids)


def run_one(engine, validator, prompt: str, new_tokens: int, record: dict) -> None:
    body = {"inputs": prompt, "parameters": {"max_new_tokens": new_tokens}}  # the random model rarely stops
    sequence = engine.submit(validator.validate(parse_generate_body(body, RequestLimits())))
    started, stamps = time.perf_counter(), []
    while True:
        event = sequence.events.get(timeout=600)
        if isinstance(event, ErrorEvent):
            raise event.error
        stamps.append(time.perf_counter())
        if event.finish is not None:
            break
    record.update(ttft=stamps[0] - started, itl=[b - a for a, b in zip(stamps, stamps[1:], strict=False)],
                  tokens=len(stamps), start=started, end=stamps[-1])


def run_many(engine, validator, prompts: list[str], new_tokens: int, delays=None) -> list[dict]:
    records = [{} for _ in prompts]
    threads = []
    for i, prompt in enumerate(prompts):
        if delays:
            time.sleep(delays[i])
        thread = threading.Thread(target=run_one, args=(engine, validator, prompt, new_tokens, records[i]))
        thread.start()
        threads.append(thread)
    for thread in threads:
        thread.join()
    return records


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else float("nan")


def streams(engine, validator, tokenizer, args) -> dict:
    prompts = [prompt_of(tokenizer, 16 + (i * 53) % 240, i) for i in range(args.streams)]
    run_many(engine, validator, prompts[:2], 4)  # warm-up
    started = time.perf_counter()
    records = run_many(engine, validator, prompts, args.new_tokens)
    wall = time.perf_counter() - started
    return {"tokens_per_s": sum(r["tokens"] for r in records) / wall,
            "ttft_p50_s": statistics.median(r["ttft"] for r in records),
            "itl_p50_s": statistics.median(x for r in records for x in r["itl"]),
            "itl_p95_s": percentile([x for r in records for x in r["itl"]], 0.95)}


def arrivals(engine, validator, tokenizer, args) -> dict:
    """ITL p95 of running streams alone, then while 8 long prompts arrive."""
    short = [prompt_of(tokenizer, 64, i) for i in range(args.streams)]
    run_many(engine, validator, short[:2], 4)
    quiet = run_many(engine, validator, short, args.new_tokens)
    records = [{} for _ in short]
    runners = [threading.Thread(target=run_one, args=(engine, validator, p, args.new_tokens, records[i]))
               for i, p in enumerate(short)]
    for thread in runners:
        thread.start()
    time.sleep(1.0)
    longs = run_many(engine, validator, [prompt_of(tokenizer, 1500, 100 + i) for i in range(8)], 8,
                     delays=[0.2] * 8)
    for thread in runners:
        thread.join()
    window = (min(r["start"] for r in longs), max(r["end"] for r in longs))
    busy = [x for r in records for x in r["itl"]]
    return {"itl_p95_quiet_s": percentile([x for r in quiet for x in r["itl"]], 0.95),
            "itl_p95_arrivals_s": percentile(busy, 0.95), "window_s": window[1] - window[0],
            "long_ttft_p50_s": statistics.median(r["ttft"] for r in longs)}


def prefix(engine, validator, tokenizer, args) -> dict:
    """TTFT of requests sharing a 1,000-token prefix, one after another."""
    shared = prompt_of(tokenizer, 1000, 999)
    ttfts = []
    for i in range(args.requests):
        record = {}
        run_one(engine, validator, shared + f" question {i}: why?", 4, record)
        ttfts.append(record["ttft"])
    return {"first_ttft_s": ttfts[0], "later_ttft_p50_s": statistics.median(ttfts[1:]),
            "ratio": statistics.median(ttfts[1:]) / ttfts[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("model_dir")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--scenario", choices=("streams", "arrivals", "prefix"), default="streams")
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--requests", type=int, default=5)
    parser.add_argument("--chunk", type=int, default=4096, help="MAX_BATCH_PREFILL_TOKENS")
    parser.add_argument("--prefix-cache-tokens", type=int, default=25_000, help="0: no prefix cache")
    parser.add_argument("--plain-linear", action="store_true", help="SLUICE_PACK_WEIGHTS=0")
    parser.add_argument("--no-fuse", action="store_true", help="SLUICE_FUSED_PREFILL=0")
    args = parser.parse_args()
    engine, validator, tokenizer = build(args.model_dir, args.dtype, args.chunk, args.prefix_cache_tokens,
                                         pack=not args.plain_linear, fuse=not args.no_fuse)
    result = {"streams": streams, "arrivals": arrivals, "prefix": prefix}[args.scenario](
        engine, validator, tokenizer, args)
    print(json.dumps({"scenario": args.scenario, "dtype": args.dtype, "streams": args.streams,
                      "linear": "plain" if args.plain_linear else "packed", "chunk": args.chunk,
                      "fused": engine.runner.fused_pass,
                      **{k: round(v, 4) for k, v in result.items()}}))


if __name__ == "__main__":
    main()
