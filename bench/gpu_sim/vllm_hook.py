"""vLLM with a simulated GPU: its model runner's forward, logits and sampling become a fixed wait.

Patched into vLLM's ``GPUModelRunner`` (which vLLM's ``CPUModelRunner`` inherits) when the
module is imported, inside whichever process runs the model (Sluice's worker, or vLLM's engine
core or worker process):

- ``_model_forward`` sleeps until its step of ``SLUICE_GPU_SIM_STEP_MS`` ends on the GPU's clock
  (``gpu_clock``: overlapped with the host's work as with vLLM's asynchronous scheduling on CUDA,
  or serial; the GIL is released, as while a GPU computes) and returns, as "hidden states", each
  position's input id (``execute_model`` notes whether the batch carries requests over);
- the model's ``compute_logits`` turns those into a one-column "logits" tensor holding each
  row's successor (``successors``);
- ``_sample`` reads the chosen ids from it and returns vLLM's ``SamplerOutput``, with the
  log-probability tensors vLLM's output processing expects when a request asks for them (0.0 for
  the chosen token, rank 1).

Everything else of vLLM runs for real: scheduling, KV-block bookkeeping, input preparation,
output processing, its API server. Only execute-model calls are patched: vLLM's start-up
profiling and warm-up (``_dummy_run``) still run the real model once. With
``SLUICE_GPU_SIM_EXECUTOR=uni``, vLLM's CPU platform keeps the model in the engine-core process
(the layout of one GPU; vLLM's CPU build otherwise forces a separate worker process for OpenMP's
sake, which a sleeping forward does not need).
"""

from __future__ import annotations

import os

from bench.gpu_sim.gpu_clock import GpuClock, overlapped_from_environ
from bench.gpu_sim.steps import StepLog
from bench.gpu_sim.successors import table_for

STEP_MS = "SLUICE_GPU_SIM_STEP_MS"
EXECUTOR = "SLUICE_GPU_SIM_EXECUTOR"


def step_seconds() -> float:
    return float(os.environ[STEP_MS]) / 1000.0


def patch_model_runner(module) -> None:
    """``vllm.v1.worker.gpu_model_runner`` loaded: replace the GPU's part of a step."""
    import torch
    from vllm.v1.outputs import LogprobsTensors, SamplerOutput

    runner_class = module.GPUModelRunner
    real_sample = runner_class._sample
    real_execute = runner_class.execute_model
    clock = GpuClock(step_seconds(), overlapped_from_environ())
    log = StepLog()

    def execute_model(self, scheduler_output, *args, **kwargs):
        # A batch with requests carried over from the last step: the GPU was busy stepping.
        self._sluice_gpu_sim_continuing = bool(scheduler_output.scheduled_cached_reqs.req_ids)
        return real_execute(self, scheduler_output, *args, **kwargs)

    def simulated_forward(self, input_ids=None, positions=None, intermediate_tensors=None,
                          inputs_embeds=None, **model_kwargs):
        _simulate_logits(self, torch)
        started, ended = clock.run_step(continuing=getattr(self, "_sluice_gpu_sim_continuing", False))
        log.record(started, ended, int(input_ids.shape[0]))
        return input_ids.to(torch.float32).unsqueeze(-1)

    def simulated_sample(self, logits, spec_decode_metadata):
        if logits is None or logits.shape[-1] != 1 or spec_decode_metadata is not None:
            return real_sample(self, logits, spec_decode_metadata)
        sampled = logits[:, 0].to(torch.int64)
        wanted = self.input_batch.sampling_metadata.max_num_logprobs
        logprobs = None
        if wanted is not None:
            vocab = self.model_config.get_vocab_size()
            ids = torch.stack([(sampled + k) % vocab for k in range(wanted + 1)], dim=1)
            values = -torch.arange(wanted + 1, dtype=torch.float32).expand(len(sampled), -1).contiguous()
            logprobs = LogprobsTensors(ids, values, torch.ones(len(sampled), dtype=torch.int64))
        return SamplerOutput(sampled_token_ids=sampled.to(torch.int32).unsqueeze(-1), logprobs_tensors=logprobs)

    runner_class.execute_model = execute_model
    runner_class._model_forward = simulated_forward
    runner_class._sample = simulated_sample


def _simulate_logits(runner, torch) -> None:
    """Once per runner: the model's ``compute_logits`` maps simulated hidden states (one column,
    the input id) to a one-column tensor of successors; real hidden states go to the real one."""
    model = runner.model
    if getattr(model, "_sluice_gpu_sim", False):
        return
    real = model.compute_logits
    table = torch.tensor(table_for(runner.model_config.model, runner.model_config.get_vocab_size()),
                         dtype=torch.float32)

    def compute_logits(hidden_states, *args, **kwargs):
        if hidden_states.shape[-1] != 1:
            return real(hidden_states, *args, **kwargs)
        return table[hidden_states[:, 0].to(torch.int64)].unsqueeze(-1)

    model.compute_logits = compute_logits
    model._sluice_gpu_sim = True


def patch_cpu_platform(module) -> None:
    """``vllm.platforms.cpu`` loaded: with ``SLUICE_GPU_SIM_EXECUTOR=uni``, the model stays in
    the engine-core process."""
    if os.environ.get(EXECUTOR) != "uni":
        return
    platform = module.CpuPlatform
    real = platform.check_and_update_config.__func__

    def check_and_update_config(cls, vllm_config):
        real(cls, vllm_config)
        vllm_config.parallel_config.distributed_executor_backend = "uni"

    platform.check_and_update_config = classmethod(check_and_update_config)


