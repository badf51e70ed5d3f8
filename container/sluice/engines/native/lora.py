"""Per-row LoRA inside one batch, in plain torch: no per-adapter model copies.

Each adapted linear layer is wrapped once (``LoraLinear``, on the first use of an adapter that
targets it); the base layer runs as before (packed oneDNN weights included), then every adapter
present in the pass adds ``scale * B (A x)`` to its own tokens only. The tokens of a pass are laid
out differently by each kind of pass (a decode step: one per row; a prefill chunk: rows x width;
the fused pass: the decode rows' tokens, then the chunk's, packed into one row), so the runner
describes each pass as per-row adapters and tokens per row, and ``pass_plan`` turns that into
flat token indices per adapter, once per pass, shared by every layer. Rows of one adapter are
gathered, multiplied by its A and B, and added back in place (the grouped form of gathering
each row's A and B: a batch holds few adapters and many rows).

A pass without adapter rows has no plan, and a wrapped layer then costs one attribute read;
before any adapter is used, no layer is wrapped at all. The math is PEFT's, in the model's dtype,
``result + (B (A x)) * scale`` (``lora_dropout`` is a training-time setting), with the scale folded
into B and both matrices stored transposed, so that a layer adds two small matmuls, the second
accumulating into the base output in place: on a CPU each small op costs more than its flops.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from ...model.lora_files import LoraWeights
from ...request import AdapterRef


@dataclass(eq=False)
class LoadedLora:
    """An adapter's matrices on its layers' devices, in the model's dtype: path -> (A^T [in, r],
    scale * B^T [r, out])."""

    ref: AdapterRef
    modules: dict[str, tuple[torch.Tensor, torch.Tensor]]


@dataclass
class PassPlan:
    """The adapters of one forward pass and their tokens (flat indices; None: every token)."""

    groups: list[tuple[LoadedLora, torch.Tensor | None]]

    def apply(self, path: str, x: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        """``out`` (the base layer's fresh output for ``x``) plus each adapter's term, in place."""
        out = out if out.is_contiguous() else out.contiguous()
        for lora, tokens in self.groups:
            matrices = lora.modules.get(path)
            if matrices is None:
                continue
            a_t, b_t = matrices
            flat_x, flat_out = x.reshape(-1, x.shape[-1]), out.view(-1, out.shape[-1])
            if tokens is None:
                flat_out.addmm_(flat_x @ a_t, b_t)
                continue
            if tokens.device != x.device:  # layers spread over GPUs (device_map="auto")
                tokens = tokens.to(x.device)
            flat_out.index_add_(0, tokens, flat_x.index_select(0, tokens) @ a_t @ b_t)
        return out


class PassState:
    """The plan of the pass under way; the runner sets it around each forward pass."""

    plan: PassPlan | None = None


class LoraLinear(nn.Module):
    """A base linear layer plus the LoRA of the pass's adapters that target it."""

    def __init__(self, base: nn.Module, path: str, state: PassState):
        super().__init__()
        self.base, self.path, self.state = base, path, state
        self.in_features, self.out_features = base.in_features, base.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.base(x)
        plan = self.state.plan
        return out if plan is None else plan.apply(self.path, x, out)


def pass_plan(adapters: list[LoadedLora | None], tokens: list[int], device: torch.device) -> PassPlan | None:
    """The plan of a pass whose rows use ``adapters`` and hold ``tokens`` tokens each, in the
    order they are laid out; None when no row has an adapter."""
    present = {id(a): a for a in adapters if a is not None}
    if not present:
        return None
    if len(present) == 1 and all(a is not None for a in adapters):
        return PassPlan([(next(iter(present.values())), None)])
    starts, start = [], 0
    for count in tokens:
        starts.append(start)
        start += count
    groups = []
    for key, lora in present.items():
        ranges = [torch.arange(starts[row], starts[row] + tokens[row])
                  for row, adapter in enumerate(adapters) if adapter is not None and id(adapter) == key]
        groups.append((lora, torch.cat(ranges).to(device)))
    return PassPlan(groups)


class LoraLayers:
    """The model's adapted layers: wraps them on first use and sets each pass's plan."""

    def __init__(self, model: nn.Module, dtype: torch.dtype):
        self.model, self.dtype = model, dtype
        self.state = PassState()
        self._wrapped: set[str] = set()

    def place(self, ref: AdapterRef, weights: LoraWeights) -> LoadedLora:
        """The checked weights in the model's dtype, each module's beside its base layer."""
        modules = {}
        for path, module in weights.modules.items():
            device = self._device_of(path)
            modules[path] = (module.a.T.contiguous().to(device, self.dtype),
                             (module.b * module.scale).T.contiguous().to(device, self.dtype))
        return LoadedLora(ref, modules)

    @contextlib.contextmanager
    def active(self, plan: PassPlan | None):
        """The adapters of one forward pass (the engine thread only: one pass at a time)."""
        if plan is None:
            yield
            return
        for lora, _ in plan.groups:
            self._wrap(lora.modules.keys())
        self.state.plan = plan
        try:
            yield
        finally:
            self.state.plan = None

    def _wrap(self, paths) -> None:
        for path in paths:
            if path in self._wrapped:
                continue
            parent_path, _, name = path.rpartition(".")
            parent = self.model.get_submodule(parent_path) if parent_path else self.model
            module = getattr(parent, name)
            if isinstance(module, LoraLinear):  # wrapped for an earlier engine on this model
                module.state = self.state
            else:
                setattr(parent, name, LoraLinear(module, path, self.state))
            self._wrapped.add(path)

    def _device_of(self, path: str) -> torch.device:
        module = self.model.get_submodule(path)
        module = getattr(module, "base", module)
        tensor = next(iter(module.buffers()), None) if not list(module.parameters()) else next(module.parameters())
        return tensor.device if tensor is not None else torch.device("cpu")
