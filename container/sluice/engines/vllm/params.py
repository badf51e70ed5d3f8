"""A TGI request in vLLM's terms: what vLLM cannot do (a 422 before anything runs) and the
``SamplingParams`` for what it can. Apart from the engine, which only submits and delivers, so the
mapping is read (and unit-tested) in one place without vLLM's engine running.

vLLM itself is imported inside ``sampling_params`` only: nothing imports it unless the engine is
selected.
"""

from __future__ import annotations

import copy
import functools
import json

from ...errors import ValidationError
from ...request import COMPACT_JSON, JSON, LARK, REGEX, GenerateRequest, GrammarSpec, ValidRequest

ENGINE_NAME = "vllm"


def unsupported_parameter(request: GenerateRequest) -> tuple[str, object] | None:
    """The first TGI parameter vLLM has no equivalent for, with its value; None if all map."""
    sampling = request.sampling
    if sampling.do_sample and sampling.typical_p < 1.0:
        return "typical_p", sampling.typical_p
    if sampling.watermark:
        return "watermark", "true"
    return None


def check_request(request: GenerateRequest) -> None:
    """Refuse (422) what this engine would otherwise silently drop."""
    refused = unsupported_parameter(request)
    if refused is not None:
        name, value = refused
        raise ValidationError(f"`{name}` is not supported by the {ENGINE_NAME} engine "
                              f"(SLUICE_ENGINE={ENGINE_NAME}). Given: {value}")


def structured_output(spec: GrammarSpec) -> dict:
    """A Sluice grammar as vLLM's ``StructuredOutputsParams`` fields. vLLM's llguidance backend
    compiles them to the same grammar Sluice's compiler builds (a schema carries Sluice's compact
    JSON options in ``x-guidance``, which wins over vLLM's whitespace default)."""
    if spec.kind == JSON:
        return {"json": dict(json.loads(spec.source), **{"x-guidance": COMPACT_JSON})}
    if spec.kind == REGEX:
        return {"regex": spec.source}
    if spec.kind == LARK:
        return {"grammar": spec.source}
    raise ValueError(f"unknown grammar kind {spec.kind!r}")


def needs_logprobs(request: GenerateRequest) -> bool:
    """Whether the answer needs vLLM's per-token log-probabilities: shown (TGI's events; OpenAI's
    when asked), top tokens, or ranking ``best_of`` runs. vLLM's engine core gathers and sends
    them per request per step, a cost its step pays (gpu-sim: about 40 % at 512 streams)."""
    return request.token_logprobs or request.top_n_tokens > 0 or request.best_of > 1


def sampling_params(valid: ValidRequest, seed: int | None, stop_token_ids: frozenset[int]):
    """TGI parameters -> vLLM ``SamplingParams`` (greedy is temperature 0; stop strings stay
    with Sluice's stopping criteria, which see the text as the client will)."""
    from vllm.sampling_params import RequestOutputKind, StructuredOutputsParams

    request, s = valid.request, valid.request.sampling
    chosen = (dict(temperature=s.temperature, top_k=s.top_k, top_p=s.top_p, seed=seed)
              if s.do_sample else dict(temperature=0.0))
    return _request_owned_params()(
        **chosen, repetition_penalty=s.repetition_penalty, frequency_penalty=s.frequency_penalty,
        logit_bias=dict(s.logit_bias) or None,
        max_tokens=valid.max_new_tokens, stop_token_ids=sorted(stop_token_ids),
        logprobs=request.top_n_tokens if needs_logprobs(request) else None,  # 0: the chosen token's only
        prompt_logprobs=0 if request.decoder_input_details else None,
        detokenize=False, skip_special_tokens=False, output_kind=RequestOutputKind.DELTA,
        structured_outputs=(StructuredOutputsParams(**structured_output(valid.grammar.spec))
                            if valid.grammar is not None else None))


@functools.cache
def _request_owned_params():
    """vLLM's ``SamplingParams`` made for one request and never shared: its ``clone`` is a
    shallow copy. vLLM's ``process_inputs`` clones the parameters it is given, deeply, for
    callers that share one object among requests; Sluice builds a fresh one per request and drops
    it once submitted, so the deep copy (and the ``__post_init__`` it reruns) was pure cost in the
    request thread. The copy is what vLLM then completes (stop ids, max tokens) and sends to its
    engine core, as a ``SamplingParams``."""
    from vllm import SamplingParams

    class RequestOwnedSamplingParams(SamplingParams):
        def clone(self):
            return copy.copy(self)

    return RequestOwnedSamplingParams
