"""LoRA adapters as a request names them and as the server knows them, without torch.

A client names an adapter three ways: SageMaker's ``X-Amzn-SageMaker-Adapter-Identifier`` header
(``SageMakerHeaders.adapter``), TGI's ``parameters.adapter_id`` and OpenAI's ``model``. The
dialects only record what the body said (``AdapterSelection``); serving's adapter registry
resolves it, with the header, to one registered adapter (``AdapterRef``) that the validated
request carries to the cache and the engine. An ``AdapterRef`` is one registration: its ``uid``
is never reused, so a name deleted and registered again with other weights is another adapter
to the response cache, the prefix cache and the engines.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AdapterSelection:
    """The adapter a request body named: ``field`` is the client's name for it (for the 4xx
    texts). ``strict``: a name that is no registered adapter is an error (TGI's ``adapter_id``);
    OpenAI's ``model`` is not strict, because clients must send some model name (see
    ``serving.adapters``)."""

    name: str
    field: str
    strict: bool = True


@dataclass(frozen=True)
class AdapterRef:
    """One registered adapter: its name and the id of this registration (never reused)."""

    name: str
    uid: int

    def cache_scope(self) -> tuple:
        """What keys the response cache and the prefix cache apart from the base model's entries."""
        return ("adapter", self.name, self.uid)


@dataclass(frozen=True)
class AdapterSpec:
    """What an engine is asked to serve: a registered adapter, its PEFT directory, and whether it
    stays loaded (``pinned``) or is loaded now (``preload``) rather than on first use."""

    ref: AdapterRef
    path: str
    pinned: bool = False
    preload: bool = True
