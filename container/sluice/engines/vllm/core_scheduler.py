"""vLLM's scheduler, handing each request's log-probabilities on as Python lists.

Every TGI stream asks vLLM for the chosen token's log-probability (each event carries one). vLLM's
model runner returns a step's log-probabilities as three numpy arrays, and its scheduler slices
them into three small arrays per request. With the engine core in its own process (Sluice's layout
on a GPU), its output thread then encodes each of those arrays through a Python hook: at 512
streams about 2.4 ms of the engine core's CPU per step, on the thread that shares the GIL with the
loop that schedules the GPU's next step (measured in the simulated-GPU benchmark: a step took
3.8 ms longer for TGI streams than for the same streams without log-probabilities).

This scheduler turns the step's three arrays into Python lists once, before vLLM's own
``update_from_output`` slices them: slicing a list costs less than a numpy view, and msgspec
encodes lists of numbers natively, without the hook. The values are the same (a float32 becomes
the Python float ``tolist`` would make of it on Sluice's side anyway). vLLM's decoder expects its
own array encoding, so the engine core gets this scheduler only where Sluice decodes the outputs
itself (``output_decoding.array_hook`` reads both forms) or where they never leave the process.

vLLM takes a scheduler class in its config (``scheduler_cls``) and imports it by name in the
engine-core process, so this module imports only vLLM's scheduler.
"""

from __future__ import annotations

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler
from vllm.v1.outputs import LogprobsLists


def as_lists(logprobs: LogprobsLists) -> LogprobsLists:
    """The same rows as lists; already-converted (or absent) ones unchanged."""
    if logprobs is None or isinstance(logprobs.logprobs, list):
        return logprobs
    return LogprobsLists(logprobs.logprob_token_ids.tolist(), logprobs.logprobs.tolist(),
                         logprobs.sampled_token_ranks.tolist(), logprobs.cu_num_generated_tokens)


class ListLogprobs:
    """Mixed in before vLLM's scheduler: converts the step's log-probabilities, then vLLM's own
    ``update_from_output`` runs unchanged."""

    def update_from_output(self, scheduler_output, model_runner_output):
        model_runner_output.logprobs = as_lists(model_runner_output.logprobs)
        return super().update_from_output(scheduler_output, model_runner_output)


class ListLogprobsScheduler(ListLogprobs, Scheduler):
    """vLLM's scheduler (synchronous: the engine core schedules after each step)."""


class ListLogprobsAsyncScheduler(ListLogprobs, AsyncScheduler):
    """vLLM's asynchronous scheduler (on CUDA: the next step is scheduled while the GPU runs)."""


def scheduler_class(async_scheduling: bool) -> type:
    """The class for a vLLM config whose ``async_scheduling`` has been settled."""
    return ListLogprobsAsyncScheduler if async_scheduling else ListLogprobsScheduler
