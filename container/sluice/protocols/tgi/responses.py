"""TGI's response bodies, built from engine events: the shapes existing clients parse.

``details`` is omitted (not null) when not asked for; ``top_tokens`` is omitted when empty;
NaN log-probabilities serialise as null.
"""

from __future__ import annotations

import math

from ...text.events import Finish, Token, TokenEvent
from ...wire.framing import dump_json, json_string


def _logprob(value: float | None) -> float | None:
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def token_json(token: Token) -> dict:
    return {"id": token.id, "text": token.text, "logprob": _logprob(token.logprob), "special": token.special}


def prefill_json(token: Token) -> dict:
    return {"id": token.id, "text": token.text, "logprob": _logprob(token.logprob)}


def full_text(prompt: str, finish: Finish, return_full_text: bool) -> str:
    return prompt + finish.generated_text if return_full_text else finish.generated_text


def stream_event(event: TokenEvent, prompt: str, return_full_text: bool, details: bool) -> dict:
    """One ``StreamResponse``: the token, and on the last event the text and details."""
    body = {"index": event.index, "token": token_json(event.token)}
    if event.top_tokens:
        body["top_tokens"] = [token_json(t) for t in event.top_tokens]
    finish = event.finish
    body["generated_text"] = full_text(prompt, finish, return_full_text) if finish else None
    body["details"] = None
    if finish and details:
        body["details"] = {"finish_reason": finish.finish_reason, "generated_tokens": finish.generated_tokens,
                           "seed": finish.seed, "input_length": finish.input_length}
    return body


# A token event that is not the last and has no top tokens: a stream's common case, per token.
_PLAIN_EVENT = ('{"index":%d,"token":{"id":%d,"text":%s,"logprob":%s,"special":%s},'
                '"generated_text":null,"details":null}')


def stream_event_json(event: TokenEvent, prompt: str, return_full_text: bool, details: bool) -> str:
    """``dump_json(stream_event(...))``; the common case written from a template: the same text
    at a third of the cost of building and encoding the dicts (tested equal)."""
    token = event.token
    logprob = token.logprob
    if (event.finish is None and not event.top_tokens and type(token.id) is int and type(event.index) is int
            and (logprob is None or (type(logprob) is float and math.isfinite(logprob)))):
        return _PLAIN_EVENT % (event.index, token.id, json_string(token.text),
                               "null" if logprob is None else float.__repr__(logprob),
                               "true" if token.special else "false")
    return dump_json(stream_event(event, prompt, return_full_text, details))


def sequence_details(events: list[TokenEvent]) -> dict:
    finish = events[-1].finish
    details = {
        "finish_reason": finish.finish_reason,
        "generated_tokens": finish.generated_tokens,
        "seed": finish.seed,
        "prefill": [prefill_json(t) for t in finish.prefill],
        "tokens": [token_json(e.token) for e in events],
    }
    if any(e.top_tokens for e in events):
        details["top_tokens"] = [[token_json(t) for t in e.top_tokens] for e in events]
    return details


def generate_response(runs: list[list[TokenEvent]], prompt: str, return_full_text: bool, details: bool) -> dict:
    """A ``GenerateResponse``; with best_of, ``runs[0]`` is the chosen sequence."""
    best = runs[0]
    body = {"generated_text": full_text(prompt, best[-1].finish, return_full_text)}
    if details:
        body["details"] = sequence_details(best)
        if len(runs) > 1:
            body["details"]["best_of_sequences"] = [
                dict(sequence_details(run), generated_text=full_text(prompt, run[-1].finish, return_full_text))
                for run in runs[1:]]
    return body


def timing_headers(runs: list[list[TokenEvent]], compute_type: str, total_seconds: float) -> dict:
    """TGI's ``x-*`` headers of a generate response."""
    finish = runs[0][-1].finish
    generated = finish.generated_tokens
    inference = finish.inference_seconds
    return {
        "x-compute-type": compute_type,
        "x-compute-time": f"{total_seconds:.6f}",
        "x-compute-characters": str(len(finish.generated_text)),
        "x-total-time": str(int(total_seconds * 1000)),
        "x-queue-time": str(int(finish.queued_seconds * 1000)),
        "x-inference-time": str(int(inference * 1000)),
        "x-time-per-token": str(int(inference * 1000 / max(1, generated))),
        "x-prompt-tokens": str(finish.input_length),
        "x-generated-tokens": str(generated),
    }
