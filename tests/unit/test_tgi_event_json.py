"""TGI's per-token stream event has a fast path (a template instead of dicts through the JSON
encoder); it must write exactly the bytes the general path writes, for any text and log-prob."""

from __future__ import annotations

import math
import random

from sluice.protocols.tgi.responses import stream_event, stream_event_json
from sluice.text.events import Finish, Token, TokenEvent
from sluice.wire.framing import dump_json

TEXTS = ["", " hello", 'say "hi"', "back\\slash", "tab\there", "line\nbreak", "\x00\x01\x1f\x7f", "é café",
         "日本語", "中文", "🧀👩‍👩‍👧‍👦", "\ufffd", "\u2028\u2029", "</script>", "{\"json\": [1, 2]}"]
LOGPROBS = [None, 0.0, -0.0, -0.5, -1e-300, -123.456789, -1e16, 1.5e-7, float("nan"), float("-inf"), float("inf")]


def events():
    rng = random.Random(5)
    for text in TEXTS:
        for logprob in LOGPROBS:
            for special in (False, True):
                yield TokenEvent(rng.randrange(1, 5000), Token(rng.randrange(0, 100000), text, logprob, special), ())
    finish = Finish("all of it", "length", 3, None, 7, (), 0.1, 0.2)
    yield TokenEvent(3, Token(9, " end", -0.25, False), (), finish)
    yield TokenEvent(2, Token(9, " top", -0.25, False), (Token(9, " top", -0.25, False), Token(10, "x", -2.0, True)))


def test_the_fast_path_writes_what_the_general_path_writes():
    for event in events():
        for prompt, full, details in (("Hi", False, True), ("Hi", True, False)):
            expected = dump_json(stream_event(event, prompt, full, details))
            assert stream_event_json(event, prompt, full, details) == expected, event


def test_non_finite_log_probabilities_are_null_on_both_paths():
    for value in (float("nan"), float("inf"), float("-inf")):
        written = stream_event_json(TokenEvent(1, Token(1, "a", value, False), ()), "", False, False)
        assert '"logprob":null' in written
        assert not math.isfinite(value)
