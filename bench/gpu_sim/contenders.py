"""The servers of the ``gpu-sim`` scenario, each started with the simulated GPU switched on.

Every contender runs the same tiny model in bf16 with one OpenMP/torch thread (the simulated
forward computes nothing; the 2 cores are left to the host work being measured), the same KV
cache (1 GiB), the same context and per-step token budget, and room for 512 sequences in a step:

- ``sluice-vllm``: Sluice (``container/serve``) on the vLLM engine, from ``.venv-vllm``, in the
  layout Sluice uses on a GPU: vLLM's engine core in its own process, the model in it; TGI's
  ``/generate_stream``, whose every event carries the token's log-probability (vLLM's engine
  core computes and sends them for it);
- ``sluice-vllm-openai``: the same server asked what vLLM's server is asked: ``/v1/completions``
  streaming, no log-probabilities;
- ``vllm-server``: vLLM's OpenAI server as its CPU build starts by default (API server, engine
  core, and a worker process that holds the model);
- ``vllm-server-uni``: the same with the model in the engine-core process, as on one GPU;
- ``vllm-server-uni-2api``: that layout with two API-server processes in front of the engine
  core (vLLM's ``--api-server-count``), HTTP spread over both cores;
- ``vllm-server-uni-logprobs``: the one-GPU layout asked for each token's log-probability
  (``logprobs: 0``), the work TGI's stream asks of vLLM's engine core; not one of the layouts
  "best vLLM server" is chosen from (its request differs), Sluice's TGI stream is also set
  against it;
- ``sluice-standin``: Sluice with the cost-free stand-in engine (``standin``): its own ceiling.

vLLM's server is given the very token ids Sluice tokenizes each prompt text to, and
``ignore_eos``; the successor table never picks EOS anyway, so every stream makes its tokens.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from bench.gpu_sim.client import openai_request, sluice_openai_request, tgi_request
from bench.gpu_sim.gpu_clock import OVERLAP
from bench.processes import PeerServer
from deploy.local import ContainerProcess, free_port

REPO = Path(__file__).resolve().parent.parent.parent
HOOK = REPO / "bench" / "gpu_sim" / "hook"
VLLM_BIN = REPO / ".venv-vllm" / "bin"
KV_GIB = "1"
MAX_SEQS = 512


@dataclass(frozen=True)
class SimContender:
    key: str
    label: str
    kind: str  # sluice | vllm-server
    engine: str = ""  # sluice: vllm | standin
    executor: str = ""  # vllm-server: "" (its CPU default, mp) | uni
    api_servers: int = 1
    protocol: str = "tgi"  # sluice: tgi (/generate_stream) | openai (/v1/completions, vLLM's request)
    logprobs: bool = False  # vllm-server: each token's log-probability asked for (TGI's stream's work)

    @property
    def is_vllm_server(self) -> bool:
        return self.kind == "vllm-server"


CONTENDERS = {c.key: c for c in [
    SimContender("sluice-vllm", "Sluice on vLLM, TGI stream", "sluice", engine="vllm"),
    SimContender("sluice-vllm-openai", "Sluice on vLLM, OpenAI completions", "sluice", engine="vllm",
                 protocol="openai"),
    SimContender("vllm-server", "vLLM server (API + engine core + worker)", "vllm-server"),
    SimContender("vllm-server-uni", "vLLM server, model in its engine core", "vllm-server", executor="uni"),
    SimContender("vllm-server-uni-2api", "vLLM server, model in its engine core, 2 API servers", "vllm-server",
                 executor="uni", api_servers=2),
    SimContender("vllm-server-uni-logprobs", "vLLM server, model in its engine core, log-probabilities asked",
                 "vllm-server", executor="uni", logprobs=True),
    SimContender("sluice-standin", "Sluice, cost-free stand-in engine", "sluice", engine="standin"),
]}


@dataclass
class SimRunning:
    contender: SimContender
    host: str
    port: int
    pid: int
    step_log: str
    server: object
    env: dict = field(default_factory=dict)

    def request(self, prompt, new_tokens: int):
        if self.contender.is_vllm_server:
            return openai_request(prompt.input_ids, new_tokens, logprobs=self.contender.logprobs)
        if self.contender.protocol == "openai":
            return sluice_openai_request(prompt.text, new_tokens)
        return tgi_request(prompt.text, new_tokens)

    def stop(self):
        return self.server.stop()


def _sim_env(step_ms: float, step_log: str, overlapped: bool) -> dict:
    return {"PYTHONPATH": str(HOOK), "SLUICE_GPU_SIM_STEP_MS": f"{step_ms:g}", "SLUICE_GPU_SIM_STEP_LOG": step_log,
            OVERLAP: "1" if overlapped else "0",
            "OMP_NUM_THREADS": "1", "VLLM_CPU_OMP_THREADS_BIND": "nobind", "VLLM_CPU_KVCACHE_SPACE": KV_GIB}


def start(contender: SimContender, model_dir: Path, step_ms: float, limits: dict, port: int | None = None,
          extra_env: dict | None = None, overlapped: bool = True) -> SimRunning:
    """Starts the contender (not waiting for it to be ready). ``overlapped``: the host's work
    between two steps runs beside the GPU's step, as with vLLM's asynchronous scheduling on CUDA
    (``gpu_clock``); otherwise after it."""
    step_log = tempfile.mkstemp(prefix=f"gpu-sim-{contender.key}-", suffix=".steps")[1]
    env = {**_sim_env(step_ms, step_log, overlapped), **(extra_env or {})}
    port = port or free_port()
    if contender.kind == "sluice":
        env.update({"SLUICE_DEVICE": "cpu", "RESPONSE_CACHE_SIZE": "0", "DTYPE": "bfloat16",
                    "SLUICE_TORCH_THREADS": "1", "MAX_CONCURRENT_REQUESTS": str(MAX_SEQS),
                    "MAX_BATCH_SIZE": str(MAX_SEQS), "MAX_TOTAL_TOKENS": str(limits["max_model_len"]),
                    "MAX_BATCH_PREFILL_TOKENS": str(limits["max_num_batched_tokens"])})
        if contender.engine == "standin":
            env.update(SLUICE_GPU_SIM_STANDIN="1", SLUICE_ENGINE="sluice")
            server = ContainerProcess(model_dir, port=port, env=env).start()
        else:
            # As on one GPU: vLLM's engine core in its own process (Sluice's default on CUDA),
            # the model in that process (vLLM's layout on one GPU).
            env.update(SLUICE_ENGINE="vllm", VLLM_ENABLE_V1_MULTIPROCESSING="1", SLUICE_GPU_SIM_EXECUTOR="uni")
            server = ContainerProcess(model_dir, port=port, env=env, bin_dir=VLLM_BIN).start()
        return SimRunning(contender, "127.0.0.1", port, server.proc.pid, step_log, server, env)
    argv = [str(VLLM_BIN / "python"), "-m", "vllm.entrypoints.openai.api_server", "--model", str(model_dir),
            "--host", "127.0.0.1", "--port", str(port), "--dtype", "bfloat16",
            "--max-model-len", str(limits["max_model_len"]),
            "--max-num-batched-tokens", str(limits["max_num_batched_tokens"]), "--max-num-seqs", str(MAX_SEQS),
            "--enforce-eager", "--seed", "0", "--disable-uvicorn-access-log"]
    if contender.api_servers > 1:
        argv += ["--api-server-count", str(contender.api_servers)]
    if contender.executor:
        env["SLUICE_GPU_SIM_EXECUTOR"] = contender.executor
    server = PeerServer(argv, port, env=env)
    server.name = contender.label
    server.start()
    return SimRunning(contender, "127.0.0.1", port, server.proc.pid, step_log, server, env)


def wait_ready(running: SimRunning, timeout: float = 600.0) -> None:
    if running.contender.kind == "sluice":
        running.server.wait_ready(timeout=timeout)
    else:
        running.server.wait_ready(timeout=timeout)


def limits_for(model_dir: Path) -> dict:
    """Sluice's defaults for this model, given to every contender (vLLM's server included)."""
    import json

    context = json.loads((Path(model_dir) / "config.json").read_text()).get("max_position_embeddings", 4096)
    total = min(context, 4096)
    return {"max_model_len": total, "max_num_batched_tokens": total - 1 + 50}


def clean(running: SimRunning) -> None:
    try:
        os.unlink(running.step_log)
    except OSError:
        pass
