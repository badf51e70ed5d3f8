"""Log-probabilities as lists (engines/vllm/core_scheduler), through vLLM's own code: its model
runner's three arrays for a step, converted once by Sluice's scheduler, sliced per request by
vLLM's ``update_from_output`` path (``LogprobsLists.slice_request``), encoded by vLLM's engine-core
encoder and decoded by vLLM's client decoder with Sluice's array hook, must give every request
the very ids, log-probabilities and ranks vLLM's own arrays give it, and be encoded without vLLM's
array hook. Runs a script in .venv-vllm (vLLM is not installed in the test environment)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from local_processes import VLLM_BIN

pytestmark = pytest.mark.vllm

CONTAINER = Path(__file__).resolve().parent.parent.parent / "container"

SCRIPT = r"""
import json, sys
import numpy as np
sys.path.insert(0, sys.argv[1])
from vllm.v1.engine import EngineCoreOutput, EngineCoreOutputs
from vllm.v1.outputs import LogprobsLists
from vllm.v1.serial_utils import MsgpackDecoder, MsgpackEncoder
from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler
from sluice.engines.vllm.core_scheduler import ListLogprobs, as_lists, scheduler_class
from sluice.engines.vllm.output_decoding import lighten
from sluice.engines.vllm.outputs import choices_from

rng = np.random.default_rng(7)
rows, k = 6, 3  # six requests, one token each, the chosen token and its top 3
arrays = LogprobsLists(rng.integers(0, 32000, (rows, k + 1)).astype(np.int32),
                       -rng.random((rows, k + 1), dtype=np.float32) * 9, rng.integers(1, 50, rows).astype(np.int64))
spec = LogprobsLists(arrays.logprob_token_ids, arrays.logprobs, arrays.sampled_token_ranks, [0, 2, 3, 6])
lists = as_lists(arrays)

class Output:  # the one field of ModelRunnerOutput the scheduler's mixin touches
    logprobs = arrays

class Base:
    def update_from_output(self, scheduler_output, model_runner_output):
        return model_runner_output.logprobs

class Probe(ListLogprobs, Base):  # the mixin over a stand-in for vLLM's scheduler
    pass

seen = Probe().update_from_output(None, Output())
encoded_arrays = []
real_encode = MsgpackEncoder._encode_ndarray
def counting(self, obj):
    encoded_arrays.append(obj.shape)
    return real_encode(self, obj)
MsgpackEncoder._encode_ndarray = counting

def message(logprobs, positions):
    outputs = [EngineCoreOutput(request_id=f"r{i}", new_token_ids=[1] * n,
                                new_logprobs=logprobs.slice_request(i, n)) for i, n in enumerate(positions)]
    return MsgpackEncoder().encode(EngineCoreOutputs(outputs=outputs))

class Client:
    decoder = MsgpackDecoder(EngineCoreOutputs)

client = Client()
lightened = lighten(client)
chosen = {str(flag): scheduler_class(flag) for flag in (False, True)}
results = {"lightened": lightened, "mixin_converts": isinstance(seen.logprobs, list), "cases": [],
           "classes": {flag: [issubclass(cls, AsyncScheduler), issubclass(cls, Scheduler),
                              cls.update_from_output is ListLogprobs.update_from_output]
                       for flag, cls in chosen.items()}}
for name, source, positions in (("one token each", arrays, [1] * rows), ("several tokens", spec, [2, 1, 3])):
    sent = as_lists(source)
    encoded_arrays.clear()
    decoded = client.decoder.decode(message(sent, positions))
    hooked = len(encoded_arrays)
    for i, (out, n) in enumerate(zip(decoded.outputs, positions)):
        want = source.slice_request(i, n)
        got = out.new_logprobs
        same = (np.array_equal(np.asarray(got.logprob_token_ids), want.logprob_token_ids)
                and np.array_equal(np.asarray(got.logprobs, dtype=np.float32), want.logprobs)
                and np.array_equal(np.asarray(got.sampled_token_ranks), want.sampled_token_ranks))
        choices = [(c.token_id, c.logprob, c.top_tokens) for c in choices_from([5] * n, got, k)]
        expected = [(c.token_id, c.logprob, c.top_tokens) for c in choices_from([5] * n, want, k)]
        results["cases"].append({"case": name, "request": i, "same": bool(same), "choices_same": choices == expected,
                                 "arrays_hooked": hooked})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def round_trip():
    python = VLLM_BIN / "python"
    if not python.exists():
        pytest.skip(f"vLLM needs {VLLM_BIN.parent.name} (make install-vllm)")
    done = subprocess.run([str(python), "-c", SCRIPT, str(CONTAINER)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_scheduler_hands_the_steps_log_probabilities_on_as_lists(round_trip):
    assert round_trip["mixin_converts"] is True


def test_the_async_scheduler_cuda_uses_gets_the_same_conversion(round_trip):
    """vLLM schedules asynchronously on CUDA (not on its CPU build): that class is the mixin over
    vLLM's ``AsyncScheduler``, the synchronous one over its ``Scheduler``."""
    assert round_trip["classes"] == {"True": [True, True, True], "False": [False, True, True]}


def test_each_request_gets_the_rows_vllms_arrays_give_it_after_encoding_and_decoding(round_trip):
    assert round_trip["lightened"] is True
    cases = round_trip["cases"]
    assert len(cases) == 6 + 3
    assert all(case["same"] and case["choices_same"] for case in cases), cases


def test_the_lists_are_encoded_without_vllms_array_hook(round_trip):
    assert all(case["arrays_hooked"] == 0 for case in round_trip["cases"])
