"""OpenAI's routes as TGI serves them: chat completions and completions."""

from __future__ import annotations

from ... import __version__
from ..route import Route
from .chat import ChatDialect
from .completions import CompletionsDialect
from .errors import error_body

SYSTEM_FINGERPRINT = f"{__version__}-native"  # every answer's system_fingerprint

CHAT = ChatDialect(SYSTEM_FINGERPRINT)
COMPLETIONS = CompletionsDialect(SYSTEM_FINGERPRINT)

ROUTES = (
    Route.to("/v1/chat/completions", "chat_completions", CHAT, error_body),
    Route.to("/v1/completions", "completions", COMPLETIONS, error_body),
)
