"""TGI's generate family as a dialect: ``/generate`` (bare object), ``/generate_stream`` (SSE of
``StreamResponse``), and the compat body of ``/`` and ``/invocations`` (a list back, streaming
decided by the body's ``"stream"``, ``return_full_text`` on by default)."""

from __future__ import annotations

from dataclasses import dataclass

from ...errors import ServerError
from ...request import TGI_NAMES, GenerateRequest
from ...serving.exchange import Outcome, ParseContext, Prompt
from ...text.events import TokenEvent
from .body import parse_generate_body
from .errors import error_event
from .responses import generate_response, stream_event, stream_event_json, timing_headers


@dataclass
class TgiExchange:
    request: GenerateRequest
    compat: bool
    compute_type: str
    names = TGI_NAMES

    @property
    def stream(self) -> bool:
        return self.request.stream

    @property
    def prompts(self) -> list[Prompt]:
        return [Prompt(self.request)]

    def encode_event(self, event: TokenEvent) -> list[dict]:
        req = self.request
        return [stream_event(event, req.inputs, req.return_full_text, req.details)]

    def encode_event_json(self, event: TokenEvent) -> list[str]:
        """``encode_event``'s payloads already written as JSON (the per-token fast path)."""
        req = self.request
        return [stream_event_json(event, req.inputs, req.return_full_text, req.details)]

    def encode_tail(self) -> list[dict]:
        return []

    def encode_final(self, outcomes: list[Outcome], seconds: float) -> tuple[object, dict]:
        req, runs = self.request, outcomes[0].runs
        body = generate_response(runs, req.inputs, req.return_full_text, req.details)
        return ([body] if self.compat else body), timing_headers(runs, self.compute_type, seconds)


class TgiDialect:
    """``stream=None``: the body decides (compat); ``compat`` wraps the answer in a list."""

    closes_with_done = False  # TGI's generate streams have no [DONE]

    def __init__(self, *, stream: bool | None, compat: bool):
        self.stream, self.compat = stream, compat

    def parse(self, body, context: ParseContext) -> TgiExchange:
        request = parse_generate_body(body, context.limits, stream=self.stream, return_full_text_default=self.compat)
        return TgiExchange(request, self.compat, context.compute_type)

    def wants_stream(self, body) -> bool:
        if self.stream is not None:
            return self.stream
        return isinstance(body, dict) and body.get("stream") is True

    @staticmethod
    def encode_error(error: ServerError) -> dict:
        return error_event(error)
