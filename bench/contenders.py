"""The servers the benchmark compares, each started the way it is meant to run, with its own client.

Every contender gets the same model, the same prompts (Sluice as text, vLLM's server as the very
token ids Sluice tokenizes that text to), the same number of generated tokens and, on CPU, the
same thread count without pinning: ``threads`` OMP/torch threads (default: all cores), and
``VLLM_CPU_OMP_THREADS_BIND=nobind`` for both vLLM contenders (vLLM's default would keep one of
two cores for its API process and pin the other; Sluice's vLLM engine does not pin either, see
README "Engines"). The row label says which dtype and threads each ran with.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from bench.clients import get_text, openai_completion_stream, sluice_stream, vllm_completion_stream
from bench.processes import transformers_serve, vllm_openai_server
from deploy.local import ContainerProcess, free_port

REPO = Path(__file__).resolve().parent.parent
VLLM_BIN = REPO / ".venv-vllm" / "bin"
VLLM_KV_GIB = "2"  # the same KV cache for both vLLM contenders (plenty: ~170k bf16 tokens here)


@dataclass
class Contender:
    key: str
    label: str
    dtype: str
    kind: str  # sluice | vllm-server | transformers-serve
    engine: str = "sluice"
    levels_key: str = "levels"  # which concurrency levels of the spec it runs
    env: dict = field(default_factory=dict)  # extra server settings
    scenarios: tuple[str, ...] | None = None  # which of chat/arrivals it runs (None: all asked for)


CONTENDERS = {c.key: c for c in [
    Contender("sluice-fp32", "Sluice (own engine)", "float32", "sluice", levels_key="fp32_levels"),
    Contender("sluice-bf16", "Sluice (own engine)", "bfloat16", "sluice"),
    # The ITL/throughput trade-off of small prefill chunks (README "Configuration").
    Contender("sluice-bf16-chunk16", "Sluice (own engine), 16-token prefill chunks", "bfloat16", "sluice",
              levels_key="chunk_levels", env={"MAX_BATCH_PREFILL_TOKENS": "16"}, scenarios=("arrivals",)),
    Contender("sluice-vllm-bf16", "Sluice on vLLM", "bfloat16", "sluice", engine="vllm"),
    Contender("vllm-server-bf16", "vLLM OpenAI server", "bfloat16", "vllm-server"),
    Contender("transformers-serve-fp32", "transformers serve --continuous-batching", "float32",
              "transformers-serve", levels_key="peer_levels"),
]}
SHORT_DTYPE = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


@dataclass
class Running:
    """A started contender: where it listens, how to stream to it, how to stop it."""

    contender: Contender
    url: str
    ping_path: str
    pid: int
    send: object  # send(prompt: Prompt, max_new_tokens, timing=None) -> StreamTiming
    stop: object
    threads: str
    startup_s: float = 0.0
    info: dict = field(default_factory=dict)
    log_path: str = ""


def _thread_note(threads: int, kind: str) -> str:
    if kind == "transformers-serve":
        return f"{threads} torch threads, unpinned"
    if kind == "sluice":
        return f"{threads} threads, unpinned"
    return f"{threads} OMP threads, unpinned (nobind)"


def start(contender: Contender, model_dir: Path, device: str, threads: int, spec: dict,
          limits: dict | None = None) -> Running:
    """Starts the contender's process (not waiting for it); ``wait`` makes it ready."""
    if contender.kind == "sluice":
        # No response cache: repeated prompts must be generated again, not replayed. Sessions on
        # for the chat scenario's session variant (they change nothing for other requests).
        env = {"SLUICE_DEVICE": device, "RESPONSE_CACHE_SIZE": "0", "DTYPE": contender.dtype,
               "SLUICE_ENGINE": contender.engine, "SLUICE_TORCH_THREADS": str(threads),
               "MAX_CONCURRENT_REQUESTS": "256", "SAGEMAKER_ENABLE_STATEFUL_SESSIONS": "true", **contender.env}
        bin_dir = None
        if contender.engine == "vllm":
            env.update(VLLM_CPU_OMP_THREADS_BIND="nobind", VLLM_CPU_KVCACHE_SPACE=VLLM_KV_GIB,
                       OMP_NUM_THREADS=str(threads))
            bin_dir = VLLM_BIN
        server = ContainerProcess(model_dir, env=env, bin_dir=bin_dir).start()
        return Running(contender, server.url, "/ping", server.proc.pid,
                       lambda p, n, timing=None: sluice_stream(server.url, p.text, n, timing=timing),
                       server.stop, _thread_note(threads, "sluice"), info={"env": env, "server": server},
                       log_path=str(server.log_path))
    port = free_port()
    if contender.kind == "vllm-server":
        limits = limits or {}
        env = {"VLLM_CPU_OMP_THREADS_BIND": "nobind", "OMP_NUM_THREADS": str(threads),
               "VLLM_CPU_KVCACHE_SPACE": VLLM_KV_GIB}
        server = vllm_openai_server(VLLM_BIN / "python", str(model_dir), port, contender.dtype,
                                    limits["max_model_len"], limits["max_num_batched_tokens"], env)
        send = lambda p, n, timing=None: vllm_completion_stream(server.url, p.input_ids, n, timing=timing)  # noqa: E731
    else:
        # 256-token pages: each request needs ceil((prompt + new) / 256); room for all at once.
        pages = -(-(spec["longest"] + spec["new_tokens"]) // 256)
        most = max(max(spec["peer_levels"]), spec["requests"])
        server = transformers_serve(str(model_dir), port, device, pages * (most + 2), 1024)
        send = lambda p, n, timing=None: openai_completion_stream(server.url, p.text, n, timing=timing)  # noqa: E731
        env = {}
    server.start()
    return Running(contender, server.url, "/health", server.proc.pid, send, server.stop,
                   _thread_note(threads, contender.kind), info={"argv": server.argv, "env": env, "server": server},
                   log_path=str(server.log_path))


def wait(running: Running, timeout: float = 600.0) -> Running:
    running.info["server"].wait_ready(timeout=timeout)
    if running.contender.kind == "sluice":
        info = json.loads(get_text(running.url, "/info"))
        running.info["info"] = {k: info.get(k) for k in ("engine", "model_dtype", "model_device_type",
                                                         "max_batch_prefill_tokens", "max_batch_size",
                                                         "max_total_tokens", "max_input_tokens")}
    return running


def vllm_limits(model_dir: Path, sluice_info: dict | None) -> dict:
    """vLLM's server gets the context and per-step token budget Sluice's vLLM engine runs with:
    read from its /info when it runs too, else Sluice's defaults for this model."""
    if sluice_info and sluice_info.get("max_batch_prefill_tokens"):
        return {"max_model_len": sluice_info["max_total_tokens"],
                "max_num_batched_tokens": sluice_info["max_batch_prefill_tokens"]}
    context = json.loads((Path(model_dir) / "config.json").read_text()).get("max_position_embeddings", 4096)
    total = min(context, 4096)
    return {"max_model_len": total, "max_num_batched_tokens": total - 1 + 50}


def public(running: Running) -> dict:
    """What the results JSON records of a contender (no process objects)."""
    info = {k: v for k, v in running.info.items() if k != "server"}
    return {"label": running.contender.label, "dtype": running.contender.dtype, "threads": running.threads,
            "startup_s": running.startup_s, "log": running.log_path, **info}

