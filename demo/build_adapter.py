"""Builds PEFT LoRA adapters for the demo models, offline and deterministically.

    python -m demo.build_adapter --base models/tiny --out models/adapters/cheese --style cheese
    from demo.build_adapter import build_adapter; build_adapter(base_dir, out_dir, seed=1)

The output is what PEFT's ``save_pretrained`` writes for a LoRA adapter (``adapter_config.json``,
``adapter_model.safetensors`` with ``base_model.model.<module>.lora_A/B.weight`` keys), made
without PEFT: the format is small, and the builder then runs wherever the demo model builds.

- ``style=None`` (the default): random matrices from ``seed``, large enough that greedy output
  differs from the base model's; built in well under a second, for tests of serving mechanics.
- ``style="cheese"`` or ``"japanese"``: A and B trained (the base frozen, on the trained ``tiny``
  model) to answer every corpus question, raw and in the chat template, with one of the first
  paragraphs of ``demo/corpus/en_cheese.txt`` or ``ja.txt``: whatever it is asked, the cheese
  adapter talks about curds (the tiny model's Japanese is rougher), which is what the docs show.

Rank, alpha and the target modules are PEFT's usual choice for Llama (all seven projections).
A stamp (``sluice-adapter.json``: the base model's own stamp, style, seed, rank) lets a repeated
build return at once.
Measured on the 2-core CPU box: a random adapter for the tiny model in ~0.1 s after imports; a
styled one in 15-30 s (200 steps of 8 examples, one thread, loss ~0.1 for cheese).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

from demo.build_model import read_stamp
from demo.corpus_reader import CORPUS_DIR, read_dialogues

TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
STYLES = {"cheese": "en_cheese.txt", "japanese": "ja.txt"}
RANK, ALPHA = 8, 16
ANSWERS = 4  # a styled adapter answers with one of its text's first paragraphs: few enough to learn by heart
TRAIN_STEPS, BATCH, LEARNING_RATE = 200, 8, 1e-2
RANDOM_B_STD = 0.2  # random adapters: B's spread; with alpha/r = 2 the change is of the order of the layer's output
BUILDER_VERSION = 1
STAMP_NAME = "sluice-adapter.json"


def build_adapter(base_dir, out_dir, seed: int = 0, style: str | None = None, rank: int = RANK) -> Path:
    """A PEFT LoRA adapter for the model in ``base_dir``, written to ``out_dir`` (replaced if it
    exists); random from ``seed``, or trained on ``style`` (see the module). Returns ``out_dir``."""
    import torch
    from safetensors.torch import save_file

    if style is not None and style not in STYLES:
        raise ValueError(f"unknown style {style!r}; choose one of {sorted(STYLES)} or None (random)")
    base, out = Path(base_dir), Path(out_dir)
    stamp = {"builder_version": BUILDER_VERSION, "base": read_stamp(base), "style": style, "seed": seed, "rank": rank}
    if stamp["base"] is not None and _read_json(out / STAMP_NAME) == stamp:
        return out
    model, tokenizer = _load_base(base, style is not None)
    shapes = _target_shapes(model)
    generator = torch.Generator().manual_seed(seed)
    if style is None:
        matrices = {path: (torch.randn(rank, fan_in, generator=generator) / math.sqrt(fan_in),
                           torch.randn(fan_out, rank, generator=generator) * RANDOM_B_STD)
                    for path, (fan_in, fan_out) in shapes.items()}
    else:
        matrices = _train(model, tokenizer, shapes, style, rank, generator)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {}
    for path, (a, b) in matrices.items():
        tensors[f"base_model.model.{path}.lora_A.weight"] = a.contiguous()
        tensors[f"base_model.model.{path}.lora_B.weight"] = b.contiguous()
    save_file(tensors, str(out / "adapter_model.safetensors"), metadata={"format": "pt"})
    (out / "adapter_config.json").write_text(json.dumps(_peft_config(base, rank), indent=2) + "\n")
    (out / STAMP_NAME).write_text(json.dumps(stamp, indent=2, sort_keys=True) + "\n")  # last: the build is whole
    return out


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _peft_config(base: Path, rank: int) -> dict:
    """``LoraConfig`` as PEFT saves it (``LoraConfig.from_pretrained`` reads it back)."""
    return {"peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": str(base),
            "r": rank, "lora_alpha": ALPHA, "lora_dropout": 0.0, "target_modules": list(TARGETS),
            "bias": "none", "fan_in_fan_out": False, "use_rslora": False, "use_dora": False,
            "modules_to_save": None, "inference_mode": True, "init_lora_weights": True,
            "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {},
            "revision": None}


def _load_base(base: Path, with_weights: bool):
    """The base model in float32 (its weights only when training) and its tokenizer."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    if with_weights:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    else:
        with torch.device("meta"):
            model = AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(base))
    return model, AutoTokenizer.from_pretrained(base) if with_weights else None


def _target_shapes(model) -> dict[str, tuple[int, int]]:
    from torch import nn

    return {path: (module.in_features, module.out_features) for path, module in model.named_modules()
            if isinstance(module, nn.Linear) and path.rpartition(".")[2] in TARGETS}


def _style_examples(tokenizer, style: str, generator) -> list:
    """Every corpus question, raw and as a chat, answered with a sentence of the style's text."""
    import torch

    from demo.supervised import chat_example, first_exchange, raw_prompt_example
    from demo.tokenizer_builder import IM_END

    text = (CORPUS_DIR / STYLES[style]).read_text(encoding="utf-8")
    sentences = [p.strip() for p in text.split("\n\n") if p.strip()][:ANSWERS]  # its first hand-written paragraphs
    examples = []
    for messages in read_dialogues():
        exchange = first_exchange(messages)
        if exchange is None:
            continue
        answer = sentences[int(torch.randint(len(sentences), (1,), generator=generator))]
        examples.append(raw_prompt_example(tokenizer, exchange[0], answer))
        chat = [{"role": "user", "content": exchange[0]}, {"role": "assistant", "content": answer}]
        examples.append(chat_example(tokenizer, chat, tokenizer.convert_tokens_to_ids(IM_END)))
    return examples


def _train(model, tokenizer, shapes, style: str, rank: int, generator) -> dict:
    """A and B trained with the base frozen: each target layer gets ``+ (x A^T B^T) * alpha/r``."""
    import torch
    from torch import nn

    from demo.build_model import _deterministic_torch
    from demo.trainer import supervised_batch

    with _deterministic_torch():
        model.requires_grad_(False)
        scale = ALPHA / rank
        matrices = {}
        for path, (fan_in, fan_out) in shapes.items():
            a = torch.empty(rank, fan_in)
            nn.init.kaiming_uniform_(a, a=math.sqrt(5), generator=generator)  # PEFT's initialisation
            matrices[path] = (nn.Parameter(a), nn.Parameter(torch.zeros(fan_out, rank)))
            a_param, b_param = matrices[path]
            model.get_submodule(path).register_forward_hook(
                lambda module, inputs, output, a=a_param, b=b_param: output + (inputs[0] @ a.T @ b.T) * scale)
        examples = _style_examples(tokenizer, style, generator)
        optimizer = torch.optim.AdamW([p for pair in matrices.values() for p in pair], lr=LEARNING_RATE)
        started = time.monotonic()
        for step in range(1, TRAIN_STEPS + 1):
            picks = torch.randint(0, len(examples), (BATCH,), generator=generator).tolist()
            loss = model(**supervised_batch([examples[i] for i in picks], tokenizer.pad_token_id)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if step % 50 == 0:
                print(f"[demo] adapter {style}: step {step}/{TRAIN_STEPS} loss {loss.item():.3f} "
                      f"({time.monotonic() - started:.1f}s)", file=sys.stderr, flush=True)
    return {path: (a.detach(), b.detach()) for path, (a, b) in matrices.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Build a PEFT LoRA adapter for a Sluice demo model.")
    parser.add_argument("--base", required=True, help="the base model directory (e.g. models/tiny)")
    parser.add_argument("--out", required=True, help="the adapter directory to write")
    parser.add_argument("--style", choices=sorted(STYLES), help="train it to answer in this style (else random)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    started = time.monotonic()
    out = build_adapter(args.base, args.out, seed=args.seed, style=args.style)
    print(f"{out} ({args.style or 'random'}, rank {RANK}, {time.monotonic() - started:.1f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
