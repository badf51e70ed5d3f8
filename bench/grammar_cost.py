"""What constrained decoding costs: the same load with and without a grammar, side by side.

    python bench/grammar_cost.py [--size tiny|small] [--streams 16] [--new-tokens 64] [--rounds 3]

One server, one prompt set; rounds alternate unconstrained / constrained so that a noisy shared
machine hurts both alike. The grammar is a JSON object with one long string (``minLength`` keeps
it open), so constrained streams also run to ``--new-tokens`` and both sides generate the same
number of tokens (checked; hence the untrained model by default, which never stops early); each
constrained step computes a real JSON-string mask for every row. Prints generated tokens per
second of each round, the medians and the cost in percent (target <= 15 %).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.clients import sluice_stream  # noqa: E402
from bench.prompts import build_prompts  # noqa: E402
from demo.build_model import build  # noqa: E402
from deploy.local import ContainerProcess  # noqa: E402

GRAMMAR = {"type": "json", "value": {"type": "object", "required": ["text"], "additionalProperties": False,
                                     "properties": {"text": {"type": "string", "minLength": 4000}}}}


def one_round(url: str, prompts: list[str], new_tokens: int, grammar: dict | None) -> float:
    """Generated tokens per second with ``len(prompts)`` streams open together."""
    started = time.perf_counter()
    with ThreadPoolExecutor(len(prompts)) as pool:
        timings = list(pool.map(lambda p: sluice_stream(url, p, new_tokens, grammar=grammar), prompts))
    elapsed = time.perf_counter() - started
    errors = [t.error for t in timings if t.error]
    if errors:
        raise RuntimeError(f"stream failed: {errors[0]}")
    tokens = sum(t.generated_tokens for t in timings)
    if tokens != len(prompts) * new_tokens:  # an early EOS would make the sides incomparable
        raise RuntimeError(f"{tokens} tokens generated, expected {len(prompts) * new_tokens}")
    return tokens / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="tiny-random", choices=["tiny", "tiny-random", "small"])
    parser.add_argument("--streams", type=int, default=16)
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    model_dir = build(args.size, REPO / ".cache" / "models" / args.size)
    from transformers import AutoTokenizer
    prompts = [p.text for p in build_prompts(AutoTokenizer.from_pretrained(model_dir), args.streams, 16, 128)]
    env = {"RESPONSE_CACHE_SIZE": "0", "MAX_CONCURRENT_REQUESTS": str(4 * args.streams)}
    with ContainerProcess(model_dir, env=env) as server:
        one_round(server.url, prompts[:2], 8, GRAMMAR)  # warm-up; compiles and caches the grammar
        rates = {"unconstrained": [], "constrained": []}
        for _ in range(args.rounds):
            rates["unconstrained"].append(one_round(server.url, prompts, args.new_tokens, None))
            rates["constrained"].append(one_round(server.url, prompts, args.new_tokens, GRAMMAR))
    free, bound = (statistics.median(rates[k]) for k in ("unconstrained", "constrained"))
    result = {"size": args.size, "streams": args.streams, "new_tokens": args.new_tokens,
              "tokens_per_second": rates, "median_unconstrained": round(free, 1),
              "median_constrained": round(bound, 1), "cost_percent": round(100 * (1 - bound / free), 1)}
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
