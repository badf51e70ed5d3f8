"""The array hook Sluice gives vLLM's output decoder (engines/vllm/output_decoding), checked with
numpy alone: the arrays vLLM inlines come back equal to vLLM's own rebuilding of them (its
``np.frombuffer(data, dtype=<string>).reshape(shape)``), as zero-copy views; arrays Sluice's
scheduler sends as lists come back as arrays of the same numbers; everything else goes to vLLM's
hook. Decoding real engine-core messages is in vllm/test_vllm_engine_core_process."""

from __future__ import annotations

import numpy as np
import pytest

from sluice.engines.vllm.output_decoding import array_hook, lighten


def vllms_own(obj):
    dtype, shape, data = obj
    return np.frombuffer(data, dtype=dtype).reshape(shape)


@pytest.mark.parametrize("array", [
    np.array([[-0.25, -1.5, -3.0]], dtype=np.float32),  # a row of log-probabilities
    np.array([[17, 4, 99]], dtype=np.int32),  # their token ids
    np.array([3], dtype=np.int32),  # a rank (one dimension)
    np.arange(6, dtype=np.int64).reshape(3, 2),
    np.zeros((0, 1), dtype=np.float32),  # no rows
])
def test_inline_arrays_come_back_as_vllm_would_rebuild_them(array):
    calls = []
    hook = array_hook(lambda kind, obj: calls.append(kind), np)
    encoded = (array.dtype.str, array.shape, memoryview(array.tobytes()))
    decoded = hook(np.ndarray, encoded)
    expected = vllms_own(encoded)
    assert decoded.dtype == expected.dtype and decoded.shape == expected.shape
    assert np.array_equal(decoded, expected) and not calls
    assert not decoded.flags.owndata  # a view of the message, as vLLM's (share_mem) decoding gives


@pytest.mark.parametrize("rows", [[[-0.25, -1.5]], [[17, 4, 99]], [3], [[1, 2], [3, 4]], []])
def test_arrays_sent_as_lists_come_back_as_arrays_of_the_same_numbers(rows):
    calls = []
    decoded = array_hook(lambda kind, obj: calls.append(kind), np)(np.ndarray, rows)
    assert isinstance(decoded, np.ndarray) and decoded.tolist() == rows and not calls


def test_arrays_in_aux_buffers_and_other_types_go_to_vllms_hook():
    seen = []
    hook = array_hook(lambda kind, obj: seen.append((kind, obj)) or "vllm's", np)
    assert hook(np.ndarray, ("<f4", (4096, 1), 0)) == "vllm's"  # an index into the aux buffers
    assert hook(slice, [1, 2, None]) == "vllm's"
    assert seen == [(np.ndarray, ("<f4", (4096, 1), 0)), (slice, [1, 2, None])]


def test_a_client_without_vllms_decoder_keeps_its_own_decoding():
    class InProcessClient:  # vLLM's in-process client decodes nothing
        pass

    class OtherLayout:  # a vLLM whose decoder is laid out otherwise
        decoder = object()

    assert lighten(InProcessClient()) is False and lighten(OtherLayout()) is False
