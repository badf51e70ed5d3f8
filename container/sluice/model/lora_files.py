"""A PEFT LoRA directory (``adapter_config.json`` + ``adapter_model.safetensors``), read and checked
against a base model before any engine serves it.

Both engines check an adapter here first, so what one refuses the other refuses with the same
424 text: a file that is not a LoRA adapter, a feature whose math Sluice does not implement (DoRA,
``modules_to_save``, embedding LoRA, LoRA biases, per-module alphas, ...), a rank above
``MAX_LORA_RANK``, or matrices that do not fit the base model's linear layers. Nothing in the
config is ignored that would change the output: ``lora_dropout`` is a training-time setting and
``fan_in_fan_out`` only says how the base weight is stored; both are read and need nothing.

The math it prepares is PEFT's: ``y = W x + s * B (A x)`` with ``s = lora_alpha / r``
(``lora_alpha / sqrt(r)`` with ``use_rslora``), ``r`` the rank of each module's own matrices (so
``rank_pattern`` needs nothing more).
"""

from __future__ import annotations

import json
import math
import os
import re
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import AdapterMisfitError
from .packed_linear import PackedLinear

CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter_model.safetensors"

# PEFT saves ``base_model.model.<module path>.lora_A.weight`` (older tools keep the adapter's own
# name before ``.weight``); the module path is the causal LM's own (``model.layers.0.self_attn.q_proj``).
LORA_KEY = re.compile(r"(?:base_model\.model\.)?(?P<path>.+)\.lora_(?P<which>[AB])(?:\.[A-Za-z0-9_-]+)?\.weight")

# Settings that change the output in a way this implementation does not compute: refused, never ignored.
UNSUPPORTED_SETTINGS = {
    "use_dora": "DoRA (`use_dora`)",
    "modules_to_save": "`modules_to_save` (fully trained copies of base modules)",
    "alpha_pattern": "`alpha_pattern` (per-module alphas)",
    "layer_replication": "`layer_replication`",
    "target_parameters": "`target_parameters` (LoRA on parameters, not modules)",
    "trainable_token_indices": "`trainable_token_indices` (trained embedding rows)",
    "lora_bias": "`lora_bias` (a bias on B)",
    "use_qalora": "QALoRA (`use_qalora`)",
    "megatron_config": "`megatron_config`",
}


@dataclass(frozen=True)
class LoraModule:
    """One adapted linear layer: ``a`` is [r, in], ``b`` [out, r], float32 as read."""

    path: str
    a: torch.Tensor
    b: torch.Tensor
    scale: float

    @property
    def rank(self) -> int:
        return self.a.shape[0]


@dataclass(frozen=True)
class LoraWeights:
    """A checked adapter: its matrices by base-module path."""

    modules: dict[str, LoraModule]
    config: dict

    @property
    def rank(self) -> int:
        return max(module.rank for module in self.modules.values())

    @property
    def nbytes(self) -> int:
        return sum(m.a.nbytes + m.b.nbytes for m in self.modules.values())

    def facts(self) -> dict:
        """What ``GET /adapters`` and the register answer say of it."""
        names = sorted({path.rpartition(".")[2] for path in self.modules})
        return {"rank": self.rank, "lora_alpha": self.config.get("lora_alpha", 8), "target_modules": names,
                "modules": len(self.modules), "use_rslora": bool(self.config.get("use_rslora"))}


def linear_shapes(model: nn.Module) -> dict[str, tuple[int, int]]:
    """``(in_features, out_features)`` of every linear layer an adapter may target, by path: not
    the output layer (its input is only the kept positions of a pass, and adapters seldom touch it)."""
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    return {path: (module.in_features, module.out_features) for path, module in model.named_modules()
            if isinstance(module, (nn.Linear, PackedLinear)) and module is not output}


def read_lora_dir(name: str, path: str, max_rank: int) -> LoraWeights:
    """The adapter in ``path`` (an existing directory), or a 424 saying why it cannot be served."""
    config = _read_config(name, path)
    refused = unsupported_setting(config)
    if refused is not None:
        raise AdapterMisfitError(name, f"{refused} is not supported")
    tensors = _read_tensors(name, path)
    modules = _pair_matrices(name, tensors, config)
    rank = max(module.rank for module in modules.values())
    if rank > max_rank:
        raise AdapterMisfitError(name, f"its rank {rank} is greater than max_lora_rank (MAX_LORA_RANK={max_rank})")
    return LoraWeights(modules, config)


def check_fits(name: str, weights: LoraWeights, shapes: dict[str, tuple[int, int]]) -> None:
    """A 424 unless every adapted module is a linear layer of the base model with matching sizes."""
    for path, module in sorted(weights.modules.items()):
        if path not in shapes:
            raise AdapterMisfitError(name, f"module `{path}` is not a linear layer of the base model "
                                           "(a different architecture, or an unsupported target)")
        features = shapes[path]
        if (module.a.shape[1], module.b.shape[0]) != features:
            raise AdapterMisfitError(name, f"module `{path}` has shapes A {tuple(module.a.shape)}, B "
                                           f"{tuple(module.b.shape)}; the base layer is {features[0]} -> "
                                           f"{features[1]} (an adapter of another base model?)")


def unsupported_setting(config: dict) -> str | None:
    """The first setting of ``adapter_config.json`` this implementation would have to ignore."""
    if str(config.get("peft_type", "LORA")).upper() != "LORA":
        return f"peft_type {config.get('peft_type')!r} (only LORA)"
    if config.get("bias", "none") != "none":
        return f"bias {config.get('bias')!r} (trained biases)"
    for key, what in UNSUPPORTED_SETTINGS.items():
        if config.get(key):
            return what
    return None


def _read_config(name: str, path: str) -> dict:
    file = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(file):
        raise AdapterMisfitError(name, f"{path} holds no {CONFIG_FILE} (a PEFT LoRA directory is expected)")
    try:
        with open(file, encoding="utf-8") as handle:
            config = json.load(handle)
    except (OSError, ValueError) as error:
        raise AdapterMisfitError(name, f"{CONFIG_FILE} is not readable JSON ({error})") from None
    if not isinstance(config, dict):
        raise AdapterMisfitError(name, f"{CONFIG_FILE} is not a JSON object")
    return config


def _read_tensors(name: str, path: str) -> dict[str, torch.Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    file = os.path.join(path, WEIGHTS_FILE)
    if not os.path.isfile(file):
        other = " (adapter_model.bin is not loaded: pickles can run code; save with safetensors)" \
            if os.path.isfile(os.path.join(path, "adapter_model.bin")) else ""
        raise AdapterMisfitError(name, f"{path} holds no {WEIGHTS_FILE}{other}")
    try:
        tensors = load_file(file, device="cpu")
    except (OSError, SafetensorError, ValueError) as error:
        raise AdapterMisfitError(name, f"{WEIGHTS_FILE} is not readable ({error})") from None
    if not tensors:
        raise AdapterMisfitError(name, f"{WEIGHTS_FILE} doesn't contain tensors")
    return tensors


def _pair_matrices(name: str, tensors: dict[str, torch.Tensor], config: dict) -> dict[str, LoraModule]:
    """Each module's A and B; any other tensor (embedding LoRA, DoRA magnitudes, saved modules,
    biases) is refused by name."""
    halves: dict[str, dict[str, torch.Tensor]] = {}
    for key, tensor in tensors.items():
        match = LORA_KEY.fullmatch(key)
        if match is None:
            raise AdapterMisfitError(name, f"tensor `{key}` is not a LoRA A/B matrix of a linear layer "
                                           "(embedding LoRA, DoRA, biases and saved modules are not supported)")
        if tensor.dim() != 2 or not tensor.is_floating_point():
            raise AdapterMisfitError(name, f"tensor `{key}` is not a floating-point matrix")
        halves.setdefault(match["path"], {})[match["which"]] = tensor.float()
    alpha, rslora = float(config.get("lora_alpha", 8)), bool(config.get("use_rslora"))
    modules = {}
    for path, pair in halves.items():
        if set(pair) != {"A", "B"}:
            raise AdapterMisfitError(name, f"module `{path}` has lora_{'A' if 'A' in pair else 'B'} only")
        a, b = pair["A"], pair["B"]
        if a.shape[0] != b.shape[1] or a.shape[0] == 0:
            raise AdapterMisfitError(name, f"module `{path}`: A {tuple(a.shape)} and B {tuple(b.shape)} "
                                           "do not share a rank")
        rank = a.shape[0]
        modules[path] = LoraModule(path, a, b, alpha / (math.sqrt(rank) if rslora else rank))
    return modules
