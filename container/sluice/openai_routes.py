"""OpenAI-style routes as TGI emits them: ``/v1/chat/completions`` and ``/v1/completions``.

Chat prompts are built with the model's own chat template (``add_generation_prompt=True``);
streams are ``chat.completion.chunk`` / ``text_completion`` events ending in ``data: [DONE]``
(with the space: huggingface_hub recognises nothing else).
"""

from __future__ import annotations

import time
from dataclasses import replace

from flask import Response, request

from .errors import ServerError, TemplateError, ValidationError
from .framing import choose_stream_format
from .generate_routes import CACHE_HEADER, run_to_completion, stream_generation
from .http_io import json_response
from .openai_schema import OpenAIRequest, chat_messages, completion_prompts, openai_request
from .sequence import Finish, TokenEvent
from .service import GenerationService
from .tools import (ToolCallStream, ToolPlan, next_tool_call_id, plan_tools, prompt_tools_into_messages,
                    split_call, tool_call)

FINISH_REASONS = {"eos_token": "stop", "stop_sequence": "stop", "length": "length"}


def render_chat(tokenizer, messages: list[dict], plan: ToolPlan | None = None) -> str:
    """The prompt; the tools go to a template that reads ``tools``, or else (TGI's fallback)
    after the last message with the tool prompt."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise TemplateError("template not found")
    extra = {}
    if plan is not None and "tools" in str(template):
        extra["tools"] = list(plan.tools)
    elif plan is not None:
        messages = prompt_tools_into_messages(messages, plan)
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
    except Exception as error:  # jinja's message says what is wrong with the messages
        raise TemplateError(str(error)) from error


def usage(finish: Finish) -> dict:
    return {"prompt_tokens": finish.input_length, "completion_tokens": finish.generated_tokens,
            "total_tokens": finish.input_length + finish.generated_tokens}


def openai_error(error: ServerError) -> dict:
    return {"error": {"message": error.message, "http_status_code": error.status}}


def _logprobs(events: list[TokenEvent]) -> dict:
    return {"content": [{"token": e.token.text, "logprob": e.token.logprob,
                         "top_logprobs": [{"token": t.text, "logprob": t.logprob} for t in e.top_tokens]}
                        for e in events]}


class _Envelope:
    """The fields every OpenAI-shaped body of one response repeats."""

    def __init__(self, model: str, fingerprint: str, obj: str):
        self.fields = {"object": obj, "id": "", "created": int(time.time()), "model": model,
                       "system_fingerprint": fingerprint}

    def __call__(self, **body) -> dict:
        return dict(self.fields, **body)


def _model_name(req: OpenAIRequest, served: str) -> str:
    return req.model if req.model and req.model != "tgi" else served


def chat(service: GenerationService, body, served_model: str, fingerprint: str, compute_type: str) -> Response:
    messages = chat_messages(body)
    plan = plan_tools(body)
    prompt = render_chat(service.tokenizer, messages, plan)
    req = openai_request(body, service.schema_limits, prompt, plan.grammar if plan else None)
    # The template already holds the special tokens (BOS); do not add them twice.
    input_ids = service.validator.tokenize(prompt, add_special_tokens=False)
    model = _model_name(req, served_model)
    call_id = next_tool_call_id(messages)
    if req.stream:
        return _chat_stream(service, req, input_ids, _Envelope(model, fingerprint, "chat.completion.chunk"),
                            compute_type, plan, call_id)
    runs, hit = run_to_completion(service, req.generate, input_ids)
    events = runs[0]
    finish = events[-1].finish
    message, reason = _chat_message(finish, plan, call_id)
    answer = _Envelope(model, fingerprint, "chat.completion")(
        choices=[{"index": 0, "message": message, "logprobs": _logprobs(events) if req.logprobs else None,
                  "finish_reason": reason}],
        usage=usage(finish))
    return json_response(answer, headers={CACHE_HEADER: "hit" if hit else "miss"})


def _chat_message(finish: Finish, plan: ToolPlan | None, call_id: str) -> tuple[dict, str]:
    """The assistant message and its finish reason: ``tool_calls`` when the answer is a call."""
    call = split_call(finish.generated_text) if plan is not None else None
    if call is None:
        return {"role": "assistant", "content": finish.generated_text}, FINISH_REASONS[finish.finish_reason]
    message = {"role": "assistant", "content": None, "tool_calls": [tool_call(call[0], call[1], call_id)]}
    return message, _call_finish_reason(finish)


def _call_finish_reason(finish: Finish) -> str:
    """A call that ended by itself is ``tool_calls``; one cut by max_tokens stays ``length``."""
    return "tool_calls" if finish.finish_reason == "eos_token" else FINISH_REASONS[finish.finish_reason]


def _chat_stream(service: GenerationService, req: OpenAIRequest, input_ids, envelope: _Envelope,
                 compute_type: str, plan: ToolPlan | None, call_id: str) -> Response:
    last: list[TokenEvent] = []
    calls = ToolCallStream(plan.auto, call_id) if plan is not None else None

    def chunk(event: TokenEvent):
        last[:] = [event]
        if calls is not None:
            yield from _tool_chunks(envelope, calls, event)
            return
        content = "" if event.token.special else event.token.text
        reason = FINISH_REASONS[event.finish.finish_reason] if event.finish else None
        yield envelope(choices=[{"index": 0, "delta": {"role": "assistant", "content": content},
                                 "logprobs": _logprobs([event]) if req.logprobs else None,
                                 "finish_reason": reason}], usage=None)

    def tail():
        if req.include_usage and last and last[0].finish:
            yield envelope(choices=[], usage=usage(last[0].finish))

    fmt = choose_stream_format(request.headers.get("Accept"))
    return stream_generation(service, req.generate, fmt, compute_type, chunk, input_ids=input_ids,
                             encode_error=openai_error, tail=tail, trailer=fmt.done())


def _tool_chunks(envelope: _Envelope, calls: ToolCallStream, event: TokenEvent):
    """Chunks for one token of a tools request: text or tool-call deltas (none while the call's
    head is still being written), the finish reason on the last."""
    deltas = calls.feed("" if event.token.special else event.token.text)
    reason = None
    if event.finish is not None:
        deltas += calls.finish()
        reason = _call_finish_reason(event.finish) if calls.is_call else FINISH_REASONS[event.finish.finish_reason]
        deltas = deltas or [{"content": ""}]
    for index, delta in enumerate(deltas):
        final = reason if index == len(deltas) - 1 else None
        yield envelope(choices=[{"index": 0, "delta": dict({"role": "assistant"}, **delta), "logprobs": None,
                                 "finish_reason": final}], usage=None)


def completions(service: GenerationService, body, served_model: str, fingerprint: str, compute_type: str) -> Response:
    prompts = completion_prompts(body)
    req = openai_request(body, service.schema_limits, prompts[0])
    model = _model_name(req, served_model)
    envelope = _Envelope(model, fingerprint, "text_completion")
    if req.stream:
        if len(prompts) > 1:
            raise ValidationError("streaming completions take a single prompt")

        def chunk(event: TokenEvent):
            choice = {"finish_reason": "", "index": 0, "logprobs": None, "text": event.token.text if not event.token.special else ""}
            if event.finish is None:
                yield envelope(choices=[choice])
            else:
                choice["finish_reason"] = FINISH_REASONS[event.finish.finish_reason]
                yield envelope(choices=[choice], usage=usage(event.finish))

        fmt = choose_stream_format(request.headers.get("Accept"))
        return stream_generation(service, req.generate, fmt, compute_type, chunk,
                                 encode_error=openai_error, trailer=fmt.done())
    choices, prompt_tokens, completion_tokens = [], 0, 0
    for index, prompt in enumerate(prompts):
        runs, _ = run_to_completion(service, replace(req.generate, inputs=prompt))
        finish = runs[0][-1].finish
        prompt_tokens += finish.input_length
        completion_tokens += finish.generated_tokens
        choices.append({"index": index, "text": finish.generated_text, "logprobs": None,
                        "finish_reason": FINISH_REASONS[finish.finish_reason]})
    return json_response(envelope(choices=choices, usage={
        "prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens}))

