"""OpenAI tool calling on chat: ``tools`` + ``tool_choice`` -> prompt tools and a grammar, and the
model's constrained output -> ``tool_calls`` (whole, or as streamed deltas).

A call is written as compact JSON ``{"name": <function>, "arguments": <its parameters>}``:
``required`` is a union over the functions, a named choice that function only. ``auto`` (which
TGI turns into "required plus a no_tool function") is a grammar alternative here: the first
character decides, ``{`` starts a call that must then be complete and valid, anything else is
free text. ``none`` leaves tools out entirely. Pure Python, like ``schema``.
"""

from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass

from ...errors import DeserializeError, ToolError
from ...request.grammar import COMPACT_JSON, LARK, GrammarSpec

AUTO, NONE, REQUIRED = "auto", "none", "required"

DEFAULT_TOOL_PROMPT = (
    "\nGiven the functions available, please respond with a JSON for a function call with its proper "
    "arguments that best answers the given prompt. Respond in the format "
    "{\"name\": function name, \"arguments\": dictionary of argument name and its value}. "
    "Do not use variables.\n")

# The head of a call as the compact grammar writes it: the name, then (once written) the key
# whose value, the rest of the text, is the arguments object. A call cut by max_tokens after its
# name but before that key is still a call (its arguments ""), never raw JSON in `content`.
_CALL_HEAD = re.compile(r'\{"name":("(?:[^"\\]|\\.)*")(,"arguments":)?')


@dataclass(frozen=True)
class ToolPlan:
    """What a chat request's tools change: the template's tools, the grammar, the answer shape."""

    tools: tuple[dict, ...]
    grammar: GrammarSpec
    auto: bool  # the answer may be text instead of a call
    tool_prompt: str


def plan_tools(body: dict) -> ToolPlan | None:
    """The request's tool plan, or None when it has no tools (or ``tool_choice: none``)."""
    tools = body.get("tools")
    if tools is None:
        return None
    if body.get("response_format") is not None:
        raise ToolError("Grammar and tools are mutually exclusive")
    functions = _functions(tools)
    choice = _tool_choice(body.get("tool_choice"))
    if choice == NONE or not functions:
        return None
    prompt = body.get("tool_prompt") or DEFAULT_TOOL_PROMPT
    if choice not in (AUTO, REQUIRED):
        chosen = [f for f in functions if f["name"] == choice]
        if not chosen:
            raise ToolError(f"Tool with name {choice} not found")
        return ToolPlan(tuple(tools), GrammarSpec.json_schema(_call_schema(chosen[0])), False, prompt)
    union = _union(functions)
    if choice == REQUIRED:
        return ToolPlan(tuple(tools), GrammarSpec.json_schema(union), False, prompt)
    return ToolPlan(tuple(tools), _text_or_call(union), True, prompt)


def _functions(tools) -> list[dict]:
    """The ``function`` of each tool, checked as serde would read ``Vec<Tool>``."""
    if not isinstance(tools, list):
        raise DeserializeError("tools: invalid type, expected a sequence")
    functions = []
    for index, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict):
            raise DeserializeError(f"tools[{index}]: missing field `function`")
        if not isinstance(function.get("name"), str):
            raise DeserializeError(f"tools[{index}].function: missing field `name`")
        parameters = function.get("parameters", function.get("arguments"))
        if parameters is not None and not isinstance(parameters, dict):
            raise DeserializeError(f"tools[{index}].function.parameters: invalid type, expected a map")
        functions.append({"name": function["name"], "parameters": parameters or {}})
    return functions


def _tool_choice(value) -> str:
    """``auto`` (the default), ``none``, ``required``, or the name of the forced function."""
    if value is None:
        return AUTO
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("function"), dict) \
            and isinstance(value["function"].get("name"), str):
        return value["function"]["name"]
    raise DeserializeError("tool_choice: expected `auto`, `none`, `required` or "
                           "{\"type\": \"function\", \"function\": {\"name\": ...}}")


def _call_schema(function: dict) -> dict:
    """One call: the function's name, then arguments valid for its parameters (no extra keys
    unless the schema allows them, as TGI does)."""
    arguments = copy.deepcopy(function["parameters"]) or {"type": "object", "properties": {}}
    arguments.setdefault("type", "object")
    arguments.setdefault("additionalProperties", False)
    return {"type": "object", "properties": {"name": {"const": function["name"]}, "arguments": arguments},
            "required": ["name", "arguments"], "additionalProperties": False}


def _union(functions: list[dict]) -> dict:
    schemas = [_call_schema(f) for f in functions]
    return schemas[0] if len(schemas) == 1 else {"anyOf": schemas}


def _text_or_call(call: dict) -> GrammarSpec:
    """``auto``: free text that does not start with ``{``, or one complete call."""
    embedded = dict(call, **{"x-guidance": COMPACT_JSON})
    lark = "start: TEXT | call\nTEXT: /[^{][\\s\\S]*/\ncall: %json " + json.dumps(embedded)
    return GrammarSpec(LARK, lark)


def split_call(text: str) -> tuple[str, str] | None:
    """(name, arguments JSON text) of a call written so far, or None if ``text`` is no call.

    A complete call gives its arguments object exactly; a call cut short (``length``) gives the
    arguments written so far, a valid prefix.
    """
    head = _CALL_HEAD.match(text)
    if head is None:
        return None
    if head.group(2) is None:  # cut between the name and the arguments' key
        return json.loads(head.group(1)), ""
    arguments = text[head.end():]
    if _complete(text):
        arguments = arguments.rstrip()[:-1]  # the call's own closing brace
    return json.loads(head.group(1)), arguments


def _complete(text: str) -> bool:
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def tool_call(name: str, arguments: str, call_id: str) -> dict:
    """One entry of ``message.tool_calls``, as TGI writes it."""
    return {"id": call_id, "type": "function",
            "function": {"description": None, "name": name, "arguments": arguments}}


def next_tool_call_id(messages: list[dict]) -> str:
    """TGI's ids: one past the largest integer id of earlier calls in the conversation."""
    ids = [-1]
    for message in messages:
        for call in message.get("tool_calls") or []:
            if isinstance(call, dict) and str(call.get("id", "")).isdigit():
                ids.append(int(call["id"]))
    return str(max(ids) + 1)


def prompt_tools_into_messages(messages: list[dict], plan: ToolPlan) -> list[dict]:
    """For a template that ignores ``tools``, TGI's fallback: the tools and the tool prompt
    appended to the last message."""
    tools_text = json.dumps(list(plan.tools), ensure_ascii=False)
    last = dict(messages[-1])
    last["content"] = f"{last.get('content') or ''}\n---\n{tools_text}\n{plan.tool_prompt}"
    return messages[:-1] + [last]


class ToolCallStream:
    """Turns a constrained answer's text pieces into OpenAI chat deltas.

    The name is sent once the call's head is complete, then the arguments as they come, always
    holding back the last character (it may be the call's closing brace). The deltas add up to
    the non-streamed answer.
    """

    def __init__(self, auto: bool, call_id: str):
        self.mode = None if auto else "call"
        self.call_id = call_id
        self.text = ""
        self.name: str | None = None
        self.sent = 0  # characters of the arguments (or of the text) already sent

    def feed(self, piece: str) -> list[dict]:
        self.text += piece
        if self.mode is None and self.text:
            self.mode = "call" if self.text.startswith("{") else "text"
        if self.mode == "text":
            return self._content(self.text)
        if self.mode is None:
            return []
        return self._call_deltas(self.text.rstrip()[:-1] if self.text.rstrip() else "")

    def finish(self) -> list[dict]:
        """The last deltas: the rest of the arguments (or of a call cut before its name)."""
        if self.mode != "call":
            return []
        call = split_call(self.text)
        if call is None:  # cut before the call's name was written: the text as it is
            return self._content(self.text)
        return self._call_deltas(None, call[1])

    @property
    def is_call(self) -> bool:
        return self.mode == "call" and self.name is not None

    def _content(self, text: str) -> list[dict]:
        new, self.sent = text[self.sent:], len(text)
        return [{"content": new}] if new else []

    def _call_deltas(self, held_text: str | None, final_arguments: str | None = None) -> list[dict]:
        deltas = []
        head = _CALL_HEAD.match(self.text)
        if head is None:
            return deltas
        if self.name is None:
            self.name = json.loads(head.group(1))
            deltas.append(self._delta(self.name, ""))
        if final_arguments is not None:
            arguments = final_arguments
        else:  # the arguments begin after their key; none while it is still being written
            arguments = held_text[head.end():] if head.group(2) is not None else ""
        if len(arguments) > self.sent:
            deltas.append(self._delta(None, arguments[self.sent:]))
            self.sent = len(arguments)
        return deltas

    def _delta(self, name: str | None, arguments: str) -> dict:
        return {"tool_calls": [{"index": 0, "id": self.call_id, "type": "function",
                                "function": {"name": name, "arguments": arguments}}]}
