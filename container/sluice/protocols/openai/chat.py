"""OpenAI chat completions as TGI serves them (``/v1/chat/completions``, chat bodies on
``/invocations``): the prompt is the model's chat template (``add_generation_prompt=True``);
answers are ``chat.completion`` / ``chat.completion.chunk`` events ending in ``data: [DONE]``;
``tools`` constrain the answer to a call (see ``tools``)."""

from __future__ import annotations

from dataclasses import replace

from ...errors import TemplateError
from ...request import FieldNames, GenerateRequest, build_request
from ...serving.exchange import Outcome, ParseContext, Prompt
from ...text.events import Finish, TokenEvent
from ..fields import stream_flag
from ..grammar_fields import parse_response_format
from .chat_messages import chat_messages, tool_calls_as_text
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
from .tools import (
    ToolCallStream,
    ToolPlan,
    next_tool_call_id,
    plan_tools,
    prompt_tools_into_messages,
    split_call,
    tool_call,
)
from .unserved import refuse_unserved_chat_fields


def render_chat(tokenizer, messages: list[dict], plan: ToolPlan | None = None) -> str:
    """The prompt; the tools go to a template that reads ``tools``, or else (TGI's fallback)
    after the last message with the tool prompt."""
    template = getattr(tokenizer, "chat_template", None)
    if not template:
        raise TemplateError("template not found")
    if "tool_calls" not in str(template):
        messages = [tool_calls_as_text(message) for message in messages]
    extra = {}
    if plan is not None and "tools" in str(template):
        extra["tools"] = list(plan.tools)
    elif plan is not None:
        messages = prompt_tools_into_messages(messages, plan)
    try:
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True, **extra)
    except Exception as error:  # jinja's message says what is wrong with the messages
        raise TemplateError(str(error)) from error


def logprobs_json(events: list[TokenEvent]) -> dict:
    return {"content": [{"token": e.token.text, "logprob": e.token.logprob,
                         "top_logprobs": [{"token": t.text, "logprob": t.logprob} for t in e.top_tokens]}
                        for e in events]}


def call_finish_reason(finish: Finish) -> str:
    """A call that ended by itself is ``tool_calls``; one cut by max_tokens stays ``length``."""
    return "tool_calls" if finish.finish_reason == "eos_token" else FINISH_REASONS[finish.finish_reason]


class ChatExchange:
    """One chat request: its typed request (one per choice, ``n``) and the state its answer is
    written with."""

    def __init__(self, requests: list[GenerateRequest], names: FieldNames, envelope: Envelope, *,
                 plan: ToolPlan | None, call_id: str, logprobs: bool, include_usage: bool):
        self.requests, self.names, self.envelope = requests, names, envelope
        self.plan, self.call_id, self.logprobs, self.include_usage = plan, call_id, logprobs, include_usage
        self.calls = ToolCallStream(plan.auto, call_id) if plan is not None else None
        self.last_finish: Finish | None = None

    @property
    def request(self) -> GenerateRequest:
        """The first choice's request (the others differ only in their seeds)."""
        return self.requests[0]

    @property
    def stream(self) -> bool:
        return self.request.stream

    @property
    def prompts(self) -> list[Prompt]:
        return [Prompt(request, add_special_tokens=False) for request in self.requests]  # the template holds BOS

    def encode_event(self, event: TokenEvent) -> list[dict]:
        self.last_finish = event.finish
        if self.calls is not None:
            return self._tool_chunks(event)
        content = "" if event.token.special else event.token.text
        reason = FINISH_REASONS[event.finish.finish_reason] if event.finish else None
        return [self.chunk({"role": "assistant", "content": content}, reason,
                           logprobs_json([event]) if self.logprobs else None)]

    def encode_tail(self) -> list[dict]:
        if self.include_usage and self.last_finish is not None:
            return [self.envelope(choices=[], usage=usage([self.last_finish]))]
        return []

    def encode_final(self, outcomes: list[Outcome], seconds: float) -> tuple[object, dict]:
        choices, finishes = [], []
        for index, outcome in enumerate(outcomes):
            events = outcome.runs[0]
            finishes.append(events[-1].finish)
            message, reason = self._message(finishes[-1])
            choices.append({"index": index, "message": message,
                            "logprobs": logprobs_json(events) if self.logprobs else None, "finish_reason": reason})
        return self.envelope(choices=choices, usage=usage(finishes, n=len(outcomes))), {}

    def chunk(self, delta: dict, reason: str | None, logprobs: dict | None = None) -> dict:
        return self.envelope(choices=[{"index": 0, "delta": delta, "logprobs": logprobs, "finish_reason": reason}],
                             usage=None)

    def _message(self, finish: Finish) -> tuple[dict, str]:
        """The assistant message and its finish reason: ``tool_calls`` when the answer is a call."""
        call = split_call(finish.generated_text) if self.plan is not None else None
        if call is None:
            return {"role": "assistant", "content": finish.generated_text}, FINISH_REASONS[finish.finish_reason]
        return {"role": "assistant", "content": None, "tool_calls": [tool_call(call[0], call[1], self.call_id)]}, \
            call_finish_reason(finish)

    def _tool_chunks(self, event: TokenEvent) -> list[dict]:
        """Chunks for one token of a tools request: text or tool-call deltas (none while the
        call's head is still being written), the finish reason on the last."""
        deltas = self.calls.feed("" if event.token.special else event.token.text)
        reason = None
        if event.finish is not None:
            deltas += self.calls.finish()
            reason = (call_finish_reason(event.finish) if self.calls.is_call
                      else FINISH_REASONS[event.finish.finish_reason])
            deltas = deltas or [{"content": ""}]
        return [self.chunk(dict({"role": "assistant"}, **delta), reason if i == len(deltas) - 1 else None)
                for i, delta in enumerate(deltas)]


class ChatDialect(OpenAIDialect):
    closes_with_done = True

    def __init__(self, fingerprint: str):
        self.fingerprint = fingerprint

    def parse(self, body, context: ParseContext) -> ChatExchange:
        """Messages, tools and template first (their errors are HTTP 4xx, as TGI's), then the
        parameters under OpenAI's names."""
        messages = chat_messages(body)
        refuse_unserved_chat_fields(body)
        plan = plan_tools(body)
        prompt = render_chat(context.tokenizer, messages, plan)
        names = field_names(body, "messages")
        stream, usage_wanted = stream_flag(body), include_usage(body)
        request = build_request(prompt, read_parameters(body, names), context.limits, stream=stream, names=names)
        request = replace(request, token_logprobs=body.get("logprobs") is True)
        n = read_choices(body, context.limits, stream)
        grammar = plan.grammar if plan is not None else parse_response_format(body.get("response_format"))
        if grammar is not None:
            request = replace(request, grammar=grammar)
        envelope = Envelope(model_name(body, context.model_name), self.fingerprint,
                            "chat.completion.chunk" if stream else "chat.completion", "chatcmpl-")
        return ChatExchange(copies(request, n), names, envelope, plan=plan, call_id=next_tool_call_id(messages),
                            logprobs=body.get("logprobs") is True, include_usage=usage_wanted)
