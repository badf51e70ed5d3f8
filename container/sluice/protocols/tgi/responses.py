"""TGI's response bodies, built from engine events: the shapes existing clients parse.

``details`` is omitted (not null) when not asked for; ``top_tokens`` is omitted when empty;
NaN log-probabilities serialise as null.
"""

from __future__ import annotations

import math

from ...text.events import Finish, Token, TokenEvent


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
