"""Reading what a request asks its output to match: TGI's ``grammar`` and OpenAI's
``response_format`` -> the request's ``GrammarSpec``, with TGI's exact 422 texts.

Pure Python (no torch, no llguidance); compiling against the tokenizer happens later, in serving.
"""

from __future__ import annotations

import json

from ..errors import DeserializeError, ValidationError
from ..request.grammar import ANY_OBJECT, REGEX, GrammarSpec
from .fields import describe as _describe

_VARIANTS = "`json`, `json_object`, `regex`, `json_schema`"


def parse_grammar(value, field: str = "parameters.grammar") -> GrammarSpec | None:
    """TGI's ``GrammarType`` (``{"type", "value"}``), with its validation texts.

    ``json``/``json_object`` take a schema (an object, or a string holding one); ``json_schema``
    takes ``{"name", "schema", "strict"}`` (or the schema itself); ``regex`` a string.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise DeserializeError(f"{field}: invalid type: {_describe(value)}, "
                               "expected adjacently tagged enum GrammarType")
    if "type" not in value:
        raise DeserializeError(f"{field}: missing field `type`")
    kind = value["type"]
    if kind not in ("json", "json_object", "regex", "json_schema"):
        shown = kind if isinstance(kind, str) else _describe(kind)
        raise DeserializeError(f"{field}: unknown variant `{shown}`, expected one of {_VARIANTS}")
    if "value" not in value:
        raise DeserializeError(f"{field}: missing field `value`")
    content = value["value"]
    if kind == "regex":
        if not isinstance(content, str):
            raise DeserializeError(f"{field}.value: invalid type: {_describe(content)}, expected a string")
        return GrammarSpec(REGEX, content)
    if kind == "json_schema":
        return schema_grammar(_schema_of_config(content, f"{field}.value"))
    return schema_grammar(_schema_value(content))


def _schema_value(content) -> dict:
    """A ``json`` grammar's value: an object, or a string that parses to one (TGI re-parses it)."""
    if isinstance(content, str):
        try:
            content = json.loads(content)
        except ValueError as error:
            raise ValidationError(f"grammar is not valid: {error}") from None
    if not isinstance(content, dict):
        raise ValidationError("grammar is not supported")
    return content


def _schema_of_config(content, field: str) -> dict:
    """``json_schema``'s ``JsonSchemaConfig``; a bare schema is accepted too (no JSON Schema
    keyword is called ``schema``, so the two cannot be confused)."""
    if not isinstance(content, dict):
        raise DeserializeError(f"{field}: invalid type: {_describe(content)}, expected struct JsonSchemaConfig")
    schema = content.get("schema", content)
    if not isinstance(schema, dict):
        raise DeserializeError(f"{field}.schema: invalid type: {_describe(schema)}, expected a map")
    return schema


def schema_grammar(schema: dict) -> GrammarSpec:
    """A user's JSON Schema; TGI insists on ``properties`` (its grammar compiler needs them).

    A schema with ``properties`` and no ``type`` means an object to TGI (its documented example
    is ``{"properties": {...}}``), though JSON Schema alone would accept any non-object too.
    """
    if "properties" not in schema:
        raise ValidationError("grammar is not valid: Grammar must have a 'properties' field")
    if not _SHAPING_KEYWORDS & schema.keys():
        schema = dict(type="object", **schema)
    return GrammarSpec.json_schema(schema)


# Keywords that already say what a value is: with any of them, no ``type: object`` is implied.
_SHAPING_KEYWORDS = frozenset({"type", "anyOf", "oneOf", "allOf", "$ref", "enum", "const", "not"})


def parse_response_format(value) -> GrammarSpec | None:
    """OpenAI's ``response_format`` (``text``, ``json_object``, ``json_schema`` with
    ``{"json_schema": {"name", "schema", "strict"}}``) and TGI's ``{"type", "value"}`` shapes."""
    if value is None:
        return None
    field = "response_format"
    if isinstance(value, dict) and value.get("type") == "text" and "value" not in value:
        return None
    if isinstance(value, dict) and value.get("type") == "json_object" and "value" not in value:
        return ANY_OBJECT
    if isinstance(value, dict) and value.get("type") == "json_schema" and "value" not in value:
        if "json_schema" not in value:
            raise DeserializeError(f"{field}: missing field `json_schema`")
        return schema_grammar(_schema_of_config(value["json_schema"], f"{field}.json_schema"))
    return parse_grammar(value, field)
