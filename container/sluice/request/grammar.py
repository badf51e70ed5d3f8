"""What a request asks its output to match, in a canonical, hashable form.

The dialects read TGI's ``grammar`` and OpenAI's ``response_format``/``tools`` into a
``GrammarSpec``; serving compiles it against the tokenizer; the engines enforce it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

JSON, REGEX, LARK = "json", "regex", "lark"

# Compact, deterministic JSON: no free whitespace (an untrained or wandering model would fill
# the answer with it) and fixed separators, so tool-call streaming can find the arguments.
COMPACT_JSON = {"whitespace_flexible": False, "item_separator": ",", "key_separator": ":"}


@dataclass(frozen=True)
class GrammarSpec:
    """``kind`` (json, regex or the internal lark) and its source (compact JSON text for a
    schema). Equal specs share one compiled grammar."""

    kind: str
    source: str

    @staticmethod
    def json_schema(schema: dict) -> "GrammarSpec":
        # Key order is kept: it is the order in which the output writes the properties.
        return GrammarSpec(JSON, json.dumps(schema, separators=(",", ":"), ensure_ascii=False))


# OpenAI's json_object: any JSON object, no schema to satisfy.
ANY_OBJECT = GrammarSpec.json_schema({"type": "object"})
