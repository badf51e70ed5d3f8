"""Loading the model and tokenizer the way production does, GPU first.

``from_pretrained`` on ``HF_MODEL_ID`` (a directory such as /opt/ml/model, or a hub id): bf16 on
CUDA, bf16 on a CPU with native bf16 matmul (AMX or AVX512-BF16) else float32, ``device_map="auto"``
across several GPUs. Called once per worker process,
after gunicorn forks, so the master never initialises CUDA.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch
from transformers import AutoModelForCausalLM

from ..config import Config, ConfigError
from .packed_linear import pack_linear_layers
from .tokenizer_loading import load_tokenizer

log = logging.getLogger("sluice.loading")

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
           "float64": torch.float64}


@dataclass
class LoadedModel:
    model: object
    tokenizer: object
    device: torch.device
    dtype: torch.dtype
    max_position_embeddings: int | None
    dtype_reason: str = ""
    linear_kernels: str = ""  # how the linear layers run (packed for oneDNN on CPU, or why not)


def select_device(config: Config) -> torch.device:
    if config.device == "cuda" or (config.device == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise ConfigError("SLUICE_DEVICE=cuda but no CUDA device is visible")
        return torch.device("cuda")
    return torch.device("cpu")


# CPU flags (Linux /proc/cpuinfo) of native bf16 matrix units; without them bf16 is emulated.
NATIVE_BF16_FLAGS = ("amx_bf16", "avx512_bf16")


def cpu_flags(path: str = "/proc/cpuinfo") -> frozenset[str]:
    """The first processor's feature flags; empty where the file does not exist (not Linux)."""
    try:
        with open(path, encoding="ascii", errors="replace") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return frozenset(line.partition(":")[2].split())
    except OSError:
        pass
    return frozenset()


def select_dtype(config: Config, device: torch.device,
                 flags: frozenset[str] | None = None) -> tuple[torch.dtype, str]:
    """The dtype and why: on a CPU, bf16 only where matmuls run natively in it (1.8x here)."""
    if config.dtype != "auto":
        return _DTYPES[config.dtype], f"DTYPE={config.dtype}"
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return torch.bfloat16, "auto: CUDA device supports bf16"
        return torch.float16, "auto: CUDA device without bf16"
    native = [f for f in NATIVE_BF16_FLAGS if f in (cpu_flags() if flags is None else flags)]
    if native:
        return torch.bfloat16, f"auto: CPU has native bf16 matmul ({native[0]})"
    return torch.float32, "auto: CPU without native bf16 matmul (no amx_bf16/avx512_bf16)"


def configure_threads(config: Config) -> int:
    """One batching process per model: give it the cores, split evenly if several workers."""
    threads = config.torch_threads or max(1, (os.cpu_count() or 1) // config.workers)
    torch.set_num_threads(threads)
    return threads


def load_model(config: Config) -> LoadedModel:
    device = select_device(config)
    dtype, dtype_reason = select_dtype(config, device)
    common = {"revision": config.revision, "trust_remote_code": config.trust_remote_code}
    tokenizer = load_tokenizer(config.model_id, common)
    tokenizer.padding_side = "left"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    kwargs = dict(common, dtype=dtype)
    gpus = config.num_gpus if config.num_gpus is not None else torch.cuda.device_count()
    if device.type == "cuda" and gpus > 1:
        kwargs["device_map"] = "auto"  # accelerate spreads the layers over every visible GPU
    if config.quantize:
        if device.type != "cuda":
            raise ConfigError(f"HF_MODEL_QUANTIZE={config.quantize} needs a CUDA device")
        from transformers import BitsAndBytesConfig
        four_bit = config.quantize in ("bitsandbytes-nf4", "bitsandbytes-fp4")
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=not four_bit, load_in_4bit=four_bit,
            bnb_4bit_quant_type="fp4" if config.quantize.endswith("fp4") else "nf4")
        kwargs.setdefault("device_map", "auto")
    model = AutoModelForCausalLM.from_pretrained(config.model_id, **kwargs)
    if "device_map" not in kwargs:
        model.to(device)
    model.eval()
    max_positions = getattr(model.config, "max_position_embeddings", None)
    parameters = sum(p.numel() for p in model.parameters()) / 1e6
    kernels = pack_linear_layers(model, device) if config.pack_weights else "nn.Linear (SLUICE_PACK_WEIGHTS=0)"
    log.info("loaded %s on %s as %s, %s (%.1f M parameters); linear layers: %s", config.model_id, device,
             dtype, dtype_reason, parameters, kernels)
    return LoadedModel(model, tokenizer, device, dtype, max_positions, dtype_reason, kernels)

