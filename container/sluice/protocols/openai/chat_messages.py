"""The messages of an OpenAI chat body, checked as serde reads them and with text parts joined.

A wrong type anywhere is a 422 naming the client's field (``messages[0].content[0].text``), never
a TypeError inside the template or the tokenizer.
"""

from __future__ import annotations

import json

from ...errors import DeserializeError
from ..fields import describe as _describe


def chat_messages(body) -> list[dict]:
    """The messages to render with the chat template, checked and with text parts joined.

    A wrong type anywhere is a 422 naming the client's field (``messages[0].content[0].text``),
    as serde would, never a TypeError inside the template or the tokenizer.
    """
    if not isinstance(body, dict):
        raise DeserializeError("expected a map with `messages`")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise DeserializeError("missing field `messages`" if messages is None
                               else "messages: expected a non-empty sequence")
    for index, message in enumerate(messages):
        field = f"messages[{index}]"
        if not isinstance(message, dict):
            raise DeserializeError(f"{field}: invalid type: {_describe(message)}, expected a map")
        _check_string(message, "role", field, required=True)
        _check_string(message, "name", field, required=False)
        if "content" in message:
            message["content"] = _message_content(message["content"], f"{field}.content")
        _check_tool_calls(message.get("tool_calls"), f"{field}.tool_calls")
    return messages


def tool_calls_as_text(message: dict) -> dict:
    """For a chat template that does not read ``tool_calls``: an assistant turn that made calls
    (its content null) carries them as their JSON text, as TGI writes every message for its
    templates, so a tool round trip (call, then the tool's answer) renders instead of failing
    in the template on the missing content."""
    if message.get("tool_calls") and message.get("content") is None:
        return dict(message, content=json.dumps(message["tool_calls"], ensure_ascii=False, separators=(",", ":")))
    return message


def _check_tool_calls(calls, field: str) -> None:
    if calls is None:
        return
    if not isinstance(calls, list):
        raise DeserializeError(f"{field}: invalid type: {_describe(calls)}, expected a sequence")
    for index, call in enumerate(calls):
        if not isinstance(call, dict):
            raise DeserializeError(f"{field}[{index}]: invalid type: {_describe(call)}, expected a map")


def _check_string(mapping: dict, key: str, field: str, required: bool) -> None:
    """``mapping[key]`` must be a string (or absent/null when optional), as serde reads a String."""
    value = mapping.get(key)
    if isinstance(value, str) or (value is None and not required):
        return
    if key not in mapping:
        raise DeserializeError(f"{field}: missing field `{key}`")
    raise DeserializeError(f"{field}.{key}: invalid type: {_describe(value)}, expected a string")


def _check_map(mapping: dict, key: str, field: str) -> None:
    value = mapping.get(key)
    if isinstance(value, dict):
        return
    if key not in mapping:
        raise DeserializeError(f"{field}: missing field `{key}`")
    raise DeserializeError(f"{field}.{key}: invalid type: {_describe(value)}, expected a map")


def _message_content(content, field: str) -> str | None:
    """A message's text: a string, or OpenAI content parts joined. This server reads no images:
    an ``image_url`` part becomes the Markdown ``![](<url>)``, as TGI renders one for a text-only
    model, so the model sees that an image was sent instead of it vanishing from the prompt."""
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
        _check_map(part, "image_url", field)
        _check_string(part["image_url"], "url", f"{field}.image_url", required=True)
        return f"![]({part['image_url']['url']})"
    raise DeserializeError(f"{field}.type: unknown variant `{kind}`, expected `text` or `image_url`")
