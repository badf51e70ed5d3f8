"""The OpenAI fields this server does not serve, refused with a 422 instead of ignored.

TGI's serde ignores every field it does not know, so a client that asks for legacy function
calling, audio, reasoning effort, an echoed prompt or log-probabilities on completions gets an
answer that silently lacks them. Here such a field, set to anything but its default (absent,
null, or the value that asks for nothing), is a validation error naming it. Fields that do not
change the answer (``user``, ``store``, ``metadata``, ``service_tier``) stay accepted, and so does
``parallel_tool_calls`` (an answer holds at most one call, which satisfies either value).
"""

from __future__ import annotations

from ...errors import ValidationError
from ..fields import typed, typed_integer


def refuse_unserved_chat_fields(body: dict) -> None:
    for field, hint in (("functions", "use `tools`"), ("function_call", "use `tool_choice`"),
                        ("audio", "this server answers with text only"),
                        ("prediction", "predicted outputs are not used"),
                        ("web_search_options", "this server does not search the web"),
                        ("reasoning_effort", "the served model does not reason in a separate phase")):
        if body.get(field) is not None:
            raise ValidationError(f"`{field}` is not supported: {hint}")
    modalities = body.get("modalities")
    if modalities is not None and modalities != ["text"]:
        raise ValidationError(f"`modalities` other than [\"text\"] are not supported. Given: {modalities}")


def refuse_unserved_completion_fields(body: dict) -> None:
    if typed(body, "echo", bool, "echo"):
        raise ValidationError("`echo` is not supported: the answer holds the completion only")
    if typed(body, "logprobs", bool, "logprobs"):
        raise ValidationError("`logprobs` is not supported on completions; chat completions return them")
    best_of = typed_integer(body, "best_of", "u32", "best_of")
    if best_of is not None and best_of != 1:
        raise ValidationError(f"`best_of` is not supported on completions; `n` gives several choices. Given: {best_of}")
