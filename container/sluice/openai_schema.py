"""OpenAI-style bodies (chat completions, completions) as TGI reads them -> a GenerateRequest.

Temperature 0 means greedy; ``max_tokens`` (or ``max_completion_tokens``) bounds the answer;
``model`` is accepted and ignored (huggingface_hub sends ``"dummy"``), as are ``n`` and
``logit_bias``. Pure Python, like ``schema``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from .errors import BatchSizeError, DeserializeError, SuffixNotSupportedError
from .grammar_spec import GrammarSpec, parse_response_format
from .schema import GenerateRequest, SchemaLimits, _describe, parse_generate_request


@dataclass(frozen=True)
class OpenAIRequest:
    """A parsed chat or completion request: generation settings plus OpenAI-only options."""

    generate: GenerateRequest
    stream: bool
    include_usage: bool
    logprobs: bool
    model: str | None


def _parameters(body: dict) -> dict:
    """TGI's mapping from OpenAI names to generate parameters."""
    temperature = body.get("temperature")
    stop = body.get("stop")
    parameters = {
        "max_new_tokens": body.get("max_completion_tokens", body.get("max_tokens")),
        "top_p": body.get("top_p"),
        "seed": body.get("seed"),
        "stop": [stop] if isinstance(stop, str) else stop,
        "frequency_penalty": body.get("frequency_penalty"),
        "repetition_penalty": body.get("repetition_penalty"),
        "top_n_tokens": body.get("top_logprobs") if body.get("logprobs") else None,
        "details": True,
    }
    if temperature is not None:
        if temperature == 0:
            parameters["do_sample"] = False
        else:
            parameters["temperature"] = temperature
            parameters["do_sample"] = True
    return parameters


def openai_request(body, limits: SchemaLimits, prompt: str, grammar: GrammarSpec | None = None) -> OpenAIRequest:
    """Generation settings of a chat/completion body, for an already rendered ``prompt``; the
    output follows ``grammar`` (a tool plan's) or else the body's ``response_format``."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise DeserializeError("stream: invalid type, expected a boolean")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise DeserializeError("stream_options: invalid type, expected a map")
    request = parse_generate_request({"inputs": prompt, "parameters": _parameters(body)}, limits,
                                     stream=bool(stream), return_full_text_default=False)
    grammar = grammar or parse_response_format(body.get("response_format"))
    if grammar is not None:
        request = replace(request, grammar=grammar)
    model = body.get("model") if isinstance(body.get("model"), str) else None
    return OpenAIRequest(request, bool(stream), bool(options.get("include_usage")), bool(body.get("logprobs")), model)


def chat_messages(body) -> list[dict]:
    """The messages to render with the chat template, checked and with text parts joined.

    A wrong type anywhere is a 422 naming the client's field (``messages[0].content[0].text``),
    as serde would, never a TypeError inside the template or the tokenizer.
    """
    if not isinstance(body, dict):
        raise DeserializeError("expected a map with `messages`")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DeserializeError("missing field `messages`" if messages is None else "messages: expected a non-empty sequence")
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if not isinstance(message, dict):
            raise DeserializeError(f"{field}: invalid type: {_describe(message)}, expected a map")
        _check_string(message, "role", field, required=True)
        _check_string(message, "name", field, required=False)
        if "content" in message:
            message["content"] = _message_content(message["content"], f"{field}.content")
    return messages


def _check_string(mapping: dict, key: str, field: str, required: bool) -> None:
    """``mapping[key]`` must be a string (or absent/null when optional), as serde reads a String."""
    value = mapping.get(key)
    if isinstance(value, str) or (value is None and not required):
        return
    if key not in mapping:
        raise DeserializeError(f"{field}: missing field `{key}`")
    raise DeserializeError(f"{field}.{key}: invalid type: {_describe(value)}, expected a string")


def _message_content(content, field: str) -> str | None:
    """A message's text: a string, or OpenAI content parts whose text parts are joined (this
    server reads no images, so ``image_url`` parts are accepted and left out)."""
    if content is None or isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise DeserializeError(f"{field}: invalid type: {_describe(content)}, "
                               "expected a string or a sequence of content parts")
    return "".join(_part_text(part, f"{field}[{index}]") for index, part in enumerate(content))


def _part_text(part, field: str) -> str:
    if not isinstance(part, dict):
        raise DeserializeError(f"{field}: invalid type: {_describe(part)}, expected a map")
    _check_string(part, "type", field, required=True)
    kind = part["type"]
    if kind == "text":
        _check_string(part, "text", field, required=True)
        return part["text"]
    if kind == "image_url":
        return ""
    raise DeserializeError(f"{field}.type: unknown variant `{kind}`, expected `text` or `image_url`")


def completion_prompts(body, max_client_batch_size: int = 4) -> list[str]:
    if not isinstance(body, dict):
        raise DeserializeError("expected a map with `prompt`")
    if body.get("suffix") is not None:
        raise SuffixNotSupportedError()
    prompt = body.get("prompt")
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, list) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise DeserializeError("prompt: expected a string or a non-empty sequence of strings")
    if len(prompts) > max_client_batch_size:
        raise BatchSizeError(f"Number of prompts exceeds the maximum batch size of {max_client_batch_size}. "
                             f"Given: {len(prompts)}")
    return prompts
