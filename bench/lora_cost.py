"""What per-row LoRA costs the embedded engine: decode steps and prefill passes side by side.

    python bench/lora_cost.py [--size small|tiny-random] [--rows 8] [--steps 32] [--rounds 5] [--dtype auto]
                              [--threads 1]

Four variants of the same batch on the same model, in interleaved rounds so that a noisy shared
machine hurts all alike: ``plain`` (the model's own layers: a server that never saw an adapter), ``base``
(adapter layers installed, every row on the base model: the cost of serving adapters to requests
that use none), ``one`` (every row with one adapter) and ``mixed`` (rows of the base model and
two adapters, rank 8 on all seven projections). Prints the median milliseconds per decode step
and per prefill pass of each, and each one's ratio to ``plain``.

One torch thread by default: on a shared, oversubscribed machine OpenMP's barriers make every
small op wait for a core, which drowns the comparison (a rank-8 matmul took 2 ms with two threads
and a load average of 5, 35 us with one).
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "container")]

from demo.build_adapter import build_adapter  # noqa: E402
from demo.build_model import build  # noqa: E402

VARIANTS = ("plain", "base", "one", "mixed")


def loaded_model(model_dir: Path, dtype: str, threads: int):
    from sluice.config import Config
    from sluice.model.loading import configure_threads, load_model

    config = Config.from_environ({"HF_MODEL_ID": str(model_dir), "SLUICE_DEVICE": "cpu", "DTYPE": dtype,
                                  "SLUICE_TORCH_THREADS": str(threads)})
    configure_threads(config)
    return load_model(config)


@contextlib.contextmanager
def unwrapped(model):
    """The model's own layers back in place of the adapter wrappers, for ``plain``'s rounds."""
    from sluice.engines.native.lora import LoraLinear

    wrapped = [(model.get_submodule(path.rpartition(".")[0]), path.rpartition(".")[2], module)
               for path, module in model.named_modules() if isinstance(module, LoraLinear)]
    for parent, name, module in wrapped:
        setattr(parent, name, module.base)
    try:
        yield
    finally:
        for parent, name, module in wrapped:
            setattr(parent, name, module)


def runners(model_dir: Path, dtype: str, threads: int, adapters: dict[str, Path]):
    """A runner without adapters and one with, over the same model, and the adapters placed."""
    from sluice.engines.native.lora import LoraLayers
    from sluice.engines.native.model_runner import ModelRunner
    from sluice.model.lora_files import check_fits, linear_shapes, read_lora_dir
    from sluice.request import AdapterRef

    lora_model = loaded_model(model_dir, dtype, threads)
    plain = ModelRunner(lora_model.model, lora_model.device, lora_model.tokenizer.pad_token_id)
    layers = LoraLayers(lora_model.model, lora_model.dtype)
    shapes = linear_shapes(lora_model.model)
    placed = []
    for uid, (name, path) in enumerate(sorted(adapters.items()), start=1):
        weights = read_lora_dir(name, str(path), max_rank=64)
        check_fits(name, weights, shapes)
        placed.append(layers.place(AdapterRef(name, uid), weights))
    adapted = ModelRunner(lora_model.model, lora_model.device, lora_model.tokenizer.pad_token_id, lora=layers)
    return plain, adapted, placed, lora_model.tokenizer


def rows_for(variant: str, rows: int, placed: list):
    if variant in ("plain", "base"):
        return None
    if variant == "one":
        return [placed[0]] * rows
    return [(None, placed[0], placed[1])[row % 3] for row in range(rows)]


def time_variant(runner, adapters, prompts, steps: int, plain: bool) -> tuple[float, float]:
    """(ms per prefill pass, ms per decode step) for one batch."""
    with unwrapped(runner.model) if plain else contextlib.nullcontext():
        return time_passes(runner, adapters, prompts, steps)


def time_passes(runner, adapters, prompts, steps: int) -> tuple[float, float]:
    started = time.perf_counter()
    job = runner.begin_prefill(prompts, adapters=adapters)
    runner.prefill_chunk(job, job.width)
    result = runner.finish_prefill(job)
    prefill = time.perf_counter() - started
    batch = result.batch
    batch.last_tokens = result.last_logits.argmax(-1)
    started = time.perf_counter()
    for _ in range(steps):
        batch.last_tokens = runner.decode(batch, adapters).argmax(-1)
    return prefill * 1e3, (time.perf_counter() - started) * 1e3 / steps


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="small", choices=["tiny-random", "small"])
    parser.add_argument("--rows", type=int, default=8)
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--steps", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    import torch

    model_dir = build(args.size, REPO / ".cache" / "models" / args.size)
    with tempfile.TemporaryDirectory() as scratch:
        adapters = {name: build_adapter(model_dir, Path(scratch) / name, seed=seed)
                    for name, seed in (("a", 1), ("b", 2))}
        plain, adapted, placed, tokenizer = runners(model_dir, args.dtype, args.threads, adapters)
    generator = torch.Generator().manual_seed(0)
    prompts = [tuple(torch.randint(3, len(tokenizer), (args.prompt_tokens,), generator=generator).tolist())
               for _ in range(args.rows)]
    samples = {variant: ([], []) for variant in VARIANTS}
    for variant in reversed(VARIANTS):  # warm-up: wraps the layers, first oneDNN calls
        time_variant(plain if variant == "plain" else adapted, rows_for(variant, args.rows, placed), prompts, 2,
                     variant == "plain")
    for round_index in range(args.rounds):
        order = VARIANTS if round_index % 2 == 0 else tuple(reversed(VARIANTS))
        for variant in order:
            runner = plain if variant == "plain" else adapted
            prefill, decode = time_variant(runner, rows_for(variant, args.rows, placed), prompts, args.steps,
                                           variant == "plain")
            samples[variant][0].append(prefill)
            samples[variant][1].append(decode)
    medians = {v: (statistics.median(p), statistics.median(d)) for v, (p, d) in samples.items()}
    print(f"{args.size}, {args.dtype} ({adapted.model.dtype}), {args.rows} rows x {args.prompt_tokens} prompt "
          f"tokens, {args.steps} decode steps, {args.rounds} interleaved rounds, {torch.get_num_threads()} threads")
    print(f"{'variant':8} {'prefill ms':>11} {'ratio':>6} {'decode ms':>10} {'ratio':>6}")
    for variant, (prefill, decode) in medians.items():
        print(f"{variant:8} {prefill:11.2f} {prefill / medians['plain'][0]:6.3f} "
              f"{decode:10.2f} {decode / medians['plain'][1]:6.3f}")


if __name__ == "__main__":
    main()
