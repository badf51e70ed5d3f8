"""Decoding vLLM's engine-core outputs without re-parsing a dtype for every array.

With the engine core in its own process, each step's ``EngineCoreOutputs`` arrive as one msgpack
message that vLLM's client decodes in its output thread, in this worker's process and under its
GIL. A request that asks for log-probabilities (every TGI stream does: each event carries one)
brings three small numpy arrays per step, which vLLM's decoder rebuilds with
``np.frombuffer(data, dtype=<its string>)`` after a chain of ``issubclass`` checks: the dtype string
is parsed again for every array, so at 256 streams a step's message costs about 2 ms to decode
instead of 0.05 ms without log-probabilities. ``lighten`` gives vLLM's decoder a hook that rebuilds
those small inline arrays with cached ``np.dtype`` objects (the same zero-copy views, about a
third of the cost) and hands everything else (large arrays, tensors, vLLM's other types) to
vLLM's own hook unchanged. It also reads the arrays Sluice's scheduler (``core_scheduler``) sends as
plain lists of numbers, which vLLM's own hook cannot.

It reaches into vLLM's client (its ``decoder`` and that decoder's msgspec ``decoder``); where a
vLLM version lays them out differently nothing is changed and vLLM's own decoding stays.
"""

from __future__ import annotations


def array_hook(fallback, numpy):
    """A msgspec ``dec_hook``: numpy arrays vLLM inlined in the message (``(dtype, shape, bytes)``)
    as zero-copy views, arrays sent as lists of numbers (``core_scheduler``) as arrays of them;
    anything else (an array in an aux buffer, tensors, ...) to ``fallback``."""
    dtypes: dict[str, object] = {}
    ndarray = numpy.ndarray

    def dec_hook(kind, obj):
        if kind is ndarray:
            if not obj or type(obj[0]) is not str:  # vLLM's own form starts with the dtype's name
                return numpy.array(obj)
            dtype, shape, data = obj
            if not isinstance(data, int):  # an index means the bytes are in an aux buffer: vLLM's way
                known = dtypes.get(dtype)
                if known is None:
                    known = dtypes[dtype] = numpy.dtype(dtype)
                array = numpy.frombuffer(data, known)
                return array if len(shape) == 1 else array.reshape(shape)
        return fallback(kind, obj)

    return dec_hook


def _replaceable(decoder) -> bool:
    """vLLM's ``MsgpackDecoder`` as this module knows it: a msgspec decoder and the two hooks it
    was built with, arrays decoded as views of the message."""
    if decoder is None or not all(hasattr(decoder, name) for name in ("decoder", "ext_hook", "dec_hook")) or \
            getattr(decoder, "share_mem", True) is not True:
        return False
    import msgspec

    return isinstance(decoder.decoder, msgspec.msgpack.Decoder)


def can_lighten() -> bool:
    """Whether this vLLM's output decoder is laid out as ``lighten`` expects (asked before the
    engine starts, to choose its scheduler)."""
    from vllm.v1.engine import EngineCoreOutputs
    from vllm.v1.serial_utils import MsgpackDecoder

    return _replaceable(MsgpackDecoder(EngineCoreOutputs))


def lighten(core_client) -> bool:
    """Give the client's output decoder the array hook; False (vLLM's decoding kept) where this
    vLLM's client has no such decoder (the engine core in this process) or lays it out otherwise."""
    decoder = getattr(core_client, "decoder", None)
    if not _replaceable(decoder):
        return False
    import msgspec
    import numpy
    from vllm.v1.engine import EngineCoreOutputs

    decoder.decoder = msgspec.msgpack.Decoder(EngineCoreOutputs, ext_hook=decoder.ext_hook,
                                              dec_hook=array_hook(decoder.dec_hook, numpy))
    return True
