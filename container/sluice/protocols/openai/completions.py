"""OpenAI completions as TGI serves them (``/v1/completions``, prompt bodies on ``/invocations``):
one prompt or up to ``max_client_batch_size``, run side by side; streams send one
``text_completion`` event per token and end with ``data: [DONE]``."""

from __future__ import annotations

from dataclasses import replace

from ...errors import BatchSizeError, DeserializeError, SuffixNotSupportedError, ValidationError
from ...request import FieldNames, GenerateRequest, RequestLimits, build_request
from ...serving.exchange import Outcome, ParseContext, Prompt
from ...text.events import TokenEvent
from ..fields import stream_flag
from ..grammar_fields import parse_response_format
from .choices import copies, read_choices
from .common import (
    FINISH_REASONS,
    Envelope,
    OpenAIDialect,
    field_names,
    include_usage,
    model_name,
    read_parameters,
    usage,
)
from .unserved import refuse_unserved_completion_fields


def completion_prompts(body, limits: RequestLimits) -> list[str]:
    if not isinstance(body, dict):
        raise DeserializeError("expected a map with `prompt`")
    if body.get("suffix") is not None:
        raise SuffixNotSupportedError()
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise DeserializeError("prompt: expected a string or a non-empty sequence of strings")
    if len(prompts) > limits.max_client_batch_size:
        raise BatchSizeError(f"Number of prompts exceeds the maximum batch size of {limits.max_client_batch_size}. "
                             f"Given: {len(prompts)}")
    return prompts


class CompletionsExchange:
    """Every prompt's requests, ``n`` in a row for each (choice ``i * n + j`` is prompt i's j-th)."""

    def __init__(self, requests: list[GenerateRequest], names: FieldNames, envelope: Envelope, n: int = 1):
        self.requests, self.names, self.envelope, self.n = requests, names, envelope, n

    @property
    def stream(self) -> bool:
        return self.requests[0].stream

    @property
    def prompts(self) -> list[Prompt]:
        return [Prompt(request) for request in self.requests]

    def encode_event(self, event: TokenEvent) -> list[dict]:
        text = "" if event.token.special else event.token.text
        choice = {"finish_reason": "", "index": 0, "logprobs": None, "text": text}
        if event.finish is None:
            return [self.envelope(choices=[choice])]
        choice["finish_reason"] = FINISH_REASONS[event.finish.finish_reason]
        return [self.envelope(choices=[choice], usage=usage([event.finish]))]

    def encode_tail(self) -> list[dict]:
        return []

    def encode_final(self, outcomes: list[Outcome], seconds: float) -> tuple[object, dict]:
        finishes = [outcome.runs[0][-1].finish for outcome in outcomes]
        choices = [{"index": index, "text": finish.generated_text, "logprobs": None,
                    "finish_reason": FINISH_REASONS[finish.finish_reason]} for index, finish in enumerate(finishes)]
        return self.envelope(choices=choices, usage=usage(finishes, n=self.n)), {}


class CompletionsDialect(OpenAIDialect):
    closes_with_done = True

    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint

    def parse(self, body, context: ParseContext) -> CompletionsExchange:
        prompts = completion_prompts(body, context.limits)
        names = field_names(body, "prompt")
        stream = stream_flag(body)
        request = build_request(prompts[0], read_parameters(body, names), context.limits, stream=stream, names=names)
        include_usage(body)  # only checked: a completions stream always ends with usage, as TGI's
        refuse_unserved_completion_fields(body)
        request = replace(request, token_logprobs=False)  # a completion's choices carry none
        grammar = parse_response_format(body.get("response_format"))
        if grammar is not None:
            request = replace(request, grammar=grammar)
        if stream and len(prompts) > 1:
            raise ValidationError("streaming completions take a single prompt")
        n = read_choices(body, context.limits, stream)
        requests = [choice for prompt in prompts for choice in copies(replace(request, inputs=prompt), n)]
        envelope = Envelope(model_name(body, context.model_name), self.fingerprint, "text_completion", "cmpl-")
        return CompletionsExchange(requests, names, envelope, n)
