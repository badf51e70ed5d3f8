"""Builds the offline demo models: a byte-level BPE tokenizer and a small Llama, trained briefly.

    python -m demo.build_model --size tiny|small --out DIR [--force]
    from demo.build_model import build; build("tiny", "models/tiny")

Everything comes from demo/corpus/ (shipped with the repo), so no hub access is needed. The output
is an ordinary transformers model directory (config.json, model.safetensors, generation_config.json,
tokenizer.json, tokenizer_config.json, chat_template.jinja) plus `sluice-demo.json`, a stamp that
lets a repeated build return at once. Builds are deterministic on one machine (fixed seeds, thread
count and deterministic kernels), and are written to a temporary sibling directory and renamed into
place under a file lock, so concurrent test processes never see half a model.

Measured on the 2-core CPU box (torch 2.13, transformers 5.23), corpus ~375 KB, vocab ~4.0 k, while
other jobs kept the load average at ~5 (a quiet machine should be faster):
  tiny  (1.5 M params): tokenizer 0.1 s; 450 steps of 8 sequences (every 4th 8x64 prose windows, the others
                        supervised prompt -> answer examples, demo.supervised), 55 s CPU (130 s wall at load
                        average ~4); greedy, it answers the corpus's questions (the README's included) with
                        their one-sentence answer and EOS, raw or through its chat template; sampled at 0.8
                        it drifts; untaught prompts get word salad.
                        One thread: with two, each step burned ~4x the CPU for no speed-up under load.
  small (78.6 M params): untrained, initializer_range 0.2 (varied greedy output); build 3.4 s plus
                        imports. Training it is out of budget: ~1,000x the tiny model's FLOPs per token.
  A call whose stamp matches returns at once (the CLI spends its time importing, ~2-8 s).
The corpus is too small for 8192 merges: the trainer stops near 4.0 k tokens, and the model's
vocabulary matches the tokenizer exactly, so a random model can never emit an undecodable id.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from demo.corpus_reader import corpus_sha256, read_dialogues, read_paragraphs

# torch and transformers are imported where a build actually happens: a call whose stamp matches
# (every `make serve` after the first) then returns without paying seconds of import time.

BUILDER_VERSION = 3
STAMP_NAME = "sluice-demo.json"
MAX_POSITIONS = 2048
VOCAB_TARGET = 4096
SEED = 1234
BUILD_THREADS = 1  # fixed: float reductions (so the weights) depend on it; 2 threads was no faster here


@dataclass(frozen=True)
class ModelSize:
    """Architecture and training budget of one demo size."""

    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    initializer_range: float
    train_steps: int
    batch_size: int = 8
    seq_len: int = 64
    lr: float = 4e-3


SIZES: dict[str, ModelSize] = {
    "tiny": ModelSize(128, 512, 4, 4, 2, initializer_range=0.02, train_steps=450, lr=6e-3),
    # The tiny architecture, untrained, for tests of server mechanics that need every request to
    # run to its max_new_tokens (builds in about a second).
    "tiny-random": ModelSize(128, 512, 4, 4, 2, initializer_range=0.2, train_steps=0),
    # Untrained: 0.2 instead of the default 0.02 keeps random greedy output from repeating one token.
    "small": ModelSize(768, 2048, 12, 12, 4, initializer_range=0.2, train_steps=0),
}


def _log(message: str) -> None:
    print(f"[demo] {message}", file=sys.stderr, flush=True)


def _llama_config(spec: ModelSize, tokenizer):
    from transformers import LlamaConfig

    return LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=spec.hidden,
        intermediate_size=spec.intermediate,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        num_key_value_heads=spec.kv_heads,
        max_position_embeddings=MAX_POSITIONS,
        initializer_range=spec.initializer_range,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _expected_stamp(size: str) -> dict:
    return {
        "builder_version": BUILDER_VERSION,
        "size": size,
        "corpus_sha256": corpus_sha256(),
        "architecture": asdict(SIZES[size]),
    }


def read_stamp(model_dir: Path) -> dict | None:
    """The stamp of a finished demo build in `model_dir`, or None if there is none."""
    try:
        return json.loads((Path(model_dir) / STAMP_NAME).read_text())
    except (OSError, ValueError):
        return None


def _is_current(model_dir: Path, expected: dict) -> bool:
    stamp = read_stamp(model_dir)
    if stamp is None:
        return False
    return {key: stamp.get(key) for key in expected} == expected


@contextlib.contextmanager
def _deterministic_torch():
    """Seeds, fixes threads and forces deterministic kernels, restoring the caller's settings."""
    import torch

    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(SEED)
        torch.set_num_threads(BUILD_THREADS)
        torch.use_deterministic_algorithms(True, warn_only=True)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(deterministic)
            torch.set_num_threads(threads)


def _silence_special_tokens(model, tokenizer) -> None:
    """Zero the (tied) embeddings of special tokens in an untrained model.

    Their logits are then exactly 0 while ordinary tokens spread around it, so greedy decoding
    never picks EOS and sampling almost never does: requests run to their max_new_tokens, which
    is what load and framing tests and the benchmark need. Trained sizes keep their real EOS.
    """
    import torch

    with torch.no_grad():
        model.get_input_embeddings().weight[tokenizer.all_special_ids] = 0.0


def _write_model(size: str, target: Path, stamp: dict) -> None:
    from transformers import GenerationConfig, LlamaForCausalLM

    from demo.supervised import supervised_examples
    from demo.tokenizer_builder import IM_END, train_tokenizer
    from demo.trainer import token_stream, train_causal_lm

    spec = SIZES[size]
    started = time.monotonic()
    paragraphs, dialogues = read_paragraphs(), read_dialogues()
    tokenizer = train_tokenizer(paragraphs, VOCAB_TARGET, MAX_POSITIONS)
    _log(f"tokenizer: {len(tokenizer)} tokens from {len(paragraphs)} paragraphs ({time.monotonic() - started:.1f}s)")
    with _deterministic_torch():
        model = LlamaForCausalLM(_llama_config(spec, tokenizer)).float()
        loss = None
        if spec.train_steps:
            documents = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in paragraphs]
            stream = token_stream(documents, tokenizer.bos_token_id, tokenizer.eos_token_id)
            examples = supervised_examples(tokenizer, dialogues, tokenizer.convert_tokens_to_ids(IM_END))
            loss = train_causal_lm(
                model, stream, steps=spec.train_steps, batch_size=spec.batch_size,
                seq_len=spec.seq_len, lr=spec.lr, seed=SEED, label=size,
                examples=examples, pad_id=tokenizer.pad_token_id,
            )
        else:
            _silence_special_tokens(model, tokenizer)
        model.eval()
        # Chat replies end with <|im_end|>, plain text with EOS: either stops generation.
        model.generation_config = GenerationConfig(
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids(IM_END)],
            pad_token_id=tokenizer.pad_token_id,
        )
        model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    params = sum(p.numel() for p in model.parameters())
    final = {**stamp, "param_count": params, "vocab_size": len(tokenizer), "final_loss": loss}
    # Written last: a directory with a stamp is a complete model.
    (target / STAMP_NAME).write_text(json.dumps(final, indent=2, sort_keys=True) + "\n")
    _log(f"built {size}: {params / 1e6:.1f}M params in {time.monotonic() - started:.1f}s")


@contextlib.contextmanager
def _build_lock(out: Path):
    """Serializes builders of the same directory across processes (e.g. parallel test workers)."""
    with open(out.parent / f".{out.name}.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _swap_into_place(built: Path, out: Path) -> None:
    if not out.exists():
        built.rename(out)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
    out.rename(old / "model")
    built.rename(out)
    shutil.rmtree(old, ignore_errors=True)


def build(size: str, out_dir: str | os.PathLike, force: bool = False) -> Path:
    """Builds the `size` demo model into `out_dir` and returns its path.

    Returns at once when `out_dir` already holds a build from the same corpus, size and builder
    version (unless `force`). Refuses to replace a non-empty directory that is not a demo build.
    """
    if size not in SIZES:
        raise ValueError(f"unknown demo model size {size!r}; choose one of {sorted(SIZES)}")
    out = Path(out_dir).resolve()
    expected = _expected_stamp(size)
    if not force and _is_current(out, expected):
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    with _build_lock(out):
        if not force and _is_current(out, expected):  # another process finished it meanwhile
            return out
        if out.exists() and any(out.iterdir()) and read_stamp(out) is None:
            raise FileExistsError(f"{out} is not empty and is not a demo model build; not replacing it")
        building = Path(tempfile.mkdtemp(prefix=f".{out.name}.building-", dir=out.parent))
        try:
            _write_model(size, building, expected)
            _swap_into_place(building, out)
        finally:
            shutil.rmtree(building, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build an offline Llama demo model for Sluice.")
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny")
    parser.add_argument("--out", required=True, help="model directory to create")
    parser.add_argument("--force", action="store_true", help="rebuild even if the stamp matches")
    args = parser.parse_args(argv)
    started = time.monotonic()
    out = build(args.size, args.out, force=args.force)
    stamp = read_stamp(out) or {}
    print(f"{out} ({args.size}, {stamp.get('param_count', 0) / 1e6:.1f}M params, {time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
