"""Wiring for ``SLUICE_ENGINE=vllm``: config -> vLLM engine arguments -> a started ``VllmEngine``.

Imported only when the vLLM engine is selected, so the native engine never pays vLLM's import
(or needs it installed). TGI's settings map onto vLLM's: ``SM_NUM_GPUS`` -> tensor parallel,
``MAX_TOTAL_TOKENS`` -> max model length, ``MAX_BATCH_TOTAL_TOKENS`` -> KV cache size (bytes on
CUDA, ``VLLM_CPU_KVCACHE_SPACE`` GiB on CPU), ``MAX_BATCH_PREFILL_TOKENS`` -> tokens per step,
``MAX_BATCH_SIZE`` -> sequences per step, ``HF_MODEL_QUANTIZE`` -> vLLM's in-flight bitsandbytes.
vLLM's engine core runs in its own process on CUDA, in this worker process on CPU.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys

import torch
from transformers import AutoConfig, GenerationConfig

from ...config import Config, ConfigError, TokenLimits
from ...model.facts import KV_MEMORY_FRACTION, eos_token_ids, free_memory_bytes, kv_bytes_per_token, text_config
from ...model.tokenizer_loading import load_tokenizer as read_tokenizer
from ..base import EngineBuild
from . import output_decoding
from .adapters import VllmAdapters, lora_engine_args, meta_linear_shapes
from .engine import VllmEngine

log = logging.getLogger("sluice.vllm_bootstrap")

GIB = 1 << 30
# vLLM quantizes in flight to 4-bit NF4 only; 8-bit and FP4 need a pre-quantized checkpoint.
VLLM_QUANTIZATION = {"bitsandbytes-nf4": "bitsandbytes"}


# The DTYPE values vLLM's ModelConfig takes; the embedded engine's float64 is not among them.
VLLM_DTYPES = ("auto", "float32", "float16", "bfloat16")


def vllm_dtype(config: Config, cuda: bool) -> tuple[str, str]:
    """The dtype and why (``/info`` ``model_dtype_reason``, as the embedded engine says): bf16 on
    CUDA (fp16 without bf16 support) and on CPU (vLLM's CPU kernels' own choice). A DTYPE vLLM
    has no kernels for is one clear line here, not vLLM's validation dump of its literals."""
    if config.dtype not in VLLM_DTYPES:
        raise ConfigError(f"DTYPE={config.dtype} is not supported by the vllm engine (SLUICE_ENGINE=vllm); "
                          f"it takes {', '.join(VLLM_DTYPES[:-1])} or {VLLM_DTYPES[-1]}")
    if config.dtype != "auto":
        return config.dtype, f"DTYPE={config.dtype}"
    if not cuda:
        return "bfloat16", "auto: vLLM's CPU kernels run bf16"
    if not torch.cuda.is_bf16_supported():
        return "float16", "auto: CUDA device without bf16"
    return "bfloat16", "auto: CUDA device supports bf16"


def vllm_quantization(config: Config, cuda: bool) -> str | None:
    if config.quantize is None:
        return None
    if not cuda:
        raise ConfigError(f"HF_MODEL_QUANTIZE={config.quantize} needs a CUDA device")
    if config.quantize not in VLLM_QUANTIZATION:
        raise ConfigError(f"HF_MODEL_QUANTIZE={config.quantize} has no equivalent in the vllm engine; "
                          f"supported: {', '.join(VLLM_QUANTIZATION)} (or a pre-quantized checkpoint)")
    return VLLM_QUANTIZATION[config.quantize]


def cpu_kv_cache_gib(config: Config, limits: TokenLimits, kv_bytes: int) -> int:
    """The KV cache on CPU, in whole GiB: ``MAX_BATCH_TOTAL_TOKENS`` if set, else what a full
    batch of max-length sequences needs, capped like the embedded engine at 30 % of free memory
    (vLLM's own CPU default reserves 92 % of the machine and refuses to start on a busy one)."""
    if config.max_batch_total_tokens:
        wanted = config.max_batch_total_tokens * kv_bytes
    else:
        full_batch = (config.max_batch_size or 128) * limits.max_total_tokens * kv_bytes
        wanted = min(full_batch, int(free_memory_bytes("cpu") * KV_MEMORY_FRACTION))
    return max(1, math.ceil(wanted / GIB))


def prepare_environment(config: Config, cuda: bool, kv_bytes: int, limits: TokenLimits) -> None:
    """vLLM reads these at import/start; values already in the environment win.

    On CUDA vLLM's engine core runs in its own process (vLLM's multiprocess client), started by
    spawning (this worker has threads, whose locks a fork would copy): the GPU's next step then
    overlaps Sluice's delivery of the last one. On CPU it stays in this process: there the
    forward pass is CPU work itself, and a second process would compete for the same cores."""
    os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "1" if cuda else "0")
    os.environ.setdefault("VLLM_WORKER_MULTIPROC_METHOD", "spawn")
    if cuda:
        return
    threads = config.torch_threads or max(1, (os.cpu_count() or 1) // config.workers)
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    # No core reserved for an API front end this process does not run, and no pinning (which
    # spin-waits badly on a shared machine).
    os.environ.setdefault("VLLM_CPU_OMP_THREADS_BIND", "nobind")
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(cpu_kv_cache_gib(config, limits, kv_bytes)))


def lora_capacity(config: Config) -> int:
    """Adapters vLLM holds at once: ``MAX_LORA_ADAPTERS``, else as many as ``LORA_ADAPTERS`` names,
    else 0: LoRA off, since vLLM's LoRA layers cost every batch something even without adapters."""
    if config.max_lora_adapters is not None:
        return config.max_lora_adapters
    return len(config.lora_adapters)


def engine_args(config: Config, limits: TokenLimits, cuda: bool, dtype: str, kv_bytes: int):
    from vllm.config import StructuredOutputsConfig
    from vllm.engine.arg_utils import EngineArgs

    gpus = (config.num_gpus or torch.cuda.device_count()) if cuda else 1
    kv_memory = config.max_batch_total_tokens * kv_bytes if cuda and config.max_batch_total_tokens else None
    eager = config.vllm_enforce_eager if config.vllm_enforce_eager is not None else not cuda
    return EngineArgs(
        model=config.model_id, tokenizer=config.model_id, revision=config.revision,
        tokenizer_revision=config.revision, trust_remote_code=config.trust_remote_code, dtype=dtype,
        quantization=vllm_quantization(config, cuda), tensor_parallel_size=max(1, gpus),
        max_model_len=limits.max_total_tokens, max_num_batched_tokens=config.max_batch_prefill_tokens,
        max_num_seqs=config.max_batch_size, kv_cache_memory_bytes=kv_memory, enforce_eager=eager,
        max_logprobs=max(1, config.max_top_n_tokens), logprobs_mode="processed_logprobs", seed=0,
        # llguidance, the library Sluice's own engine constrains with: the same grammar text
        # compiles to the same constraint on both engines.
        structured_outputs_config=StructuredOutputsConfig(backend="guidance"),
        **lora_engine_args(lora_capacity(config), config.max_lora_rank))


def load_tokenizer(config: Config):
    tokenizer = read_tokenizer(config.model_id, {"revision": config.revision,
                                                 "trust_remote_code": config.trust_remote_code})
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def generation_config(config: Config) -> GenerationConfig | None:
    """The model's generation config (its EOS ids), None where the model ships none."""
    try:
        return GenerationConfig.from_pretrained(config.model_id, revision=config.revision)
    except (OSError, ValueError):
        return None


@contextlib.contextmanager
def flask_proxies_resolvable():
    """vLLM 0.32 registers its CPU kernels by scanning every loaded module's globals with
    ``hasattr(value, "__dict__")``, which raises on Flask's ``request``/``current_app`` proxies
    outside a request ("Working outside of application context"). A throwaway request context
    in this (loader) thread makes them resolve while vLLM starts."""
    flask = sys.modules.get("flask")
    if flask is None:
        yield
        return
    with flask.Flask("sluice-vllm-start").test_request_context():
        yield


def choose_scheduler(vllm_config) -> bool:
    """vLLM's scheduler, or the same handing log-probabilities on as lists (``core_scheduler``)
    where Sluice reads what the engine core sends: always when it runs in this process, and in its
    own process when Sluice's decoder can replace vLLM's (``output_decoding``). True if chosen."""
    import vllm.envs as envs

    scheduler = vllm_config.scheduler_config
    if scheduler.scheduler_cls is not None:  # a platform's or model's own scheduler stays
        return False
    if envs.VLLM_ENABLE_V1_MULTIPROCESSING and not output_decoding.can_lighten():
        return False
    from .core_scheduler import scheduler_class

    scheduler.scheduler_cls = scheduler_class(bool(scheduler.async_scheduling))
    return True


def build(config: Config) -> EngineBuild:
    """Start vLLM's engine on the model: its engine core in its own process on CUDA, in this
    worker process on CPU (``prepare_environment``)."""
    cuda = config.device != "cpu" and torch.cuda.is_available()
    if config.device == "cuda" and not cuda:
        raise ConfigError("SLUICE_DEVICE=cuda but no CUDA device is visible")
    model_config = AutoConfig.from_pretrained(config.model_id, revision=config.revision,
                                              trust_remote_code=config.trust_remote_code)
    limits = config.token_limits(getattr(text_config(model_config), "max_position_embeddings", None))
    dtype, dtype_reason = vllm_dtype(config, cuda)
    kv_bytes = kv_bytes_per_token(model_config, 4 if dtype == "float32" else 2)
    prepare_environment(config, cuda, kv_bytes, limits)
    with flask_proxies_resolvable():
        from vllm.usage.usage_lib import UsageContext
        from vllm.v1.engine.llm_engine import LLMEngine

        args = engine_args(config, limits, cuda, dtype, kv_bytes)
        vllm_config = args.create_engine_config(UsageContext.ENGINE_CONTEXT)
        list_logprobs = choose_scheduler(vllm_config)
        llm = LLMEngine.from_vllm_config(vllm_config, disable_log_stats=args.disable_log_stats)
    tokenizer = load_tokenizer(config)
    device = "cuda" if cuda else "cpu"
    cache = llm.vllm_config.cache_config
    kv_tokens = cache.num_gpu_blocks * cache.block_size if cache.num_gpu_blocks else config.max_batch_total_tokens
    description = {"model_dtype": dtype, "model_dtype_reason": dtype_reason, "model_device_type": device,
                   "max_batch_total_tokens": kv_tokens,
                   "max_batch_prefill_tokens": llm.vllm_config.scheduler_config.max_num_batched_tokens,
                   "max_batch_size": llm.vllm_config.scheduler_config.max_num_seqs,
                   # SLUICE_FUSED_PREFILL is the own engine's: vLLM's scheduler mixes both itself.
                   "fused_prefill": "vllm (its scheduler puts prefill chunks and decode tokens in one step)"}
    eos_ids = eos_token_ids(generation_config(config), tokenizer)
    from vllm.v1.engine.core_client import InprocClient

    in_process = isinstance(llm.engine_core, InprocClient)
    description["engine_core"] = "worker process" if in_process else "own process"
    if not in_process and not output_decoding.lighten(llm.engine_core):
        if list_logprobs:  # can_lighten said otherwise: the engine core's lists would be unreadable
            llm.engine_core.shutdown()
            raise ConfigError("vLLM's engine-core client could not be given Sluice's output decoder")
        log.info("vLLM's own decoder reads its engine core's outputs: this vLLM's client is laid out "
                 "otherwise than engines/vllm/output_decoding expects")

    adapters = None
    if lora_capacity(config):
        adapters = VllmAdapters(meta_linear_shapes(model_config), lora_capacity(config), config.max_lora_rank,
                                separate_base=not cuda)
        log.info("LoRA adapters: up to %d loaded, rank <= %d; base and adapter requests %s", lora_capacity(config),
                 config.max_lora_rank, "share batches" if cuda else "take turns (vLLM's CPU LoRA kernels)")
    description["max_lora_adapters"] = lora_capacity(config)
    engine = VllmEngine(llm, tokenizer, eos_ids, frozenset(tokenizer.all_special_ids), description,
                        vocab_size=llm.vllm_config.model_config.get_vocab_size(), adapters=adapters,
                        in_process=in_process).start()
    log.info("vllm engine: %s on %s, tensor parallel %d, eager %s, engine core: %s (log-probabilities sent as %s), "
             "limits %s", dtype, device, args.tensor_parallel_size, args.enforce_eager, description["engine_core"],
             "lists" if list_logprobs else "vLLM's arrays", limits)
    return EngineBuild(engine, tokenizer, limits, engine.vocab_size, eos_ids, device)
