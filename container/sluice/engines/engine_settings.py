"""The settings only one engine reads, named in one start-up line when the other engine serves.

The house rule: nothing asked of the server is accepted and then silently dropped. A client's
parameter an engine cannot honour is a 422 (``engines/vllm/params``); an operator's variable that
only the other engine reads is said once, when the server starts, so that ``SLUICE_WARMUP=0`` on
the vLLM engine (which always runs its own profiling pass) or ``SLUICE_VLLM_ENFORCE_EAGER`` on the
embedded engine (which compiles nothing) is not taken for honoured. Only a value other than the
default counts: a variable left at its default asks for nothing.
"""

from __future__ import annotations

import dataclasses

from ..config import (
    SLUICE_FUSED_PREFILL,
    SLUICE_PACK_WEIGHTS,
    SLUICE_VLLM_ENFORCE_EAGER,
    SLUICE_WARMUP,
    WATERMARK_DELTA,
    WATERMARK_GAMMA,
    Config,
)

# SLUICE_ENGINE value -> (environment variable, the Config field it sets) read by that engine only.
OWN_SETTINGS = {
    "sluice": ((SLUICE_PACK_WEIGHTS, "pack_weights"), (SLUICE_FUSED_PREFILL, "fused_prefill"),
               (SLUICE_WARMUP, "warmup"),
               # the watermark's strength: the vllm engine refuses `watermark` itself with a 422
               (WATERMARK_GAMMA, "watermark_gamma"), (WATERMARK_DELTA, "watermark_delta")),
    "vllm": ((SLUICE_VLLM_ENFORCE_EAGER, "vllm_enforce_eager"),),
}

_DEFAULTS = {field.name: field.default for field in dataclasses.fields(Config)}


def settings_of_other_engines(config: Config, engine: str) -> dict[str, list[str]]:
    """Each other engine -> the variables it alone reads that are set away from their defaults."""
    unused = {other: [name for name, field in settings if getattr(config, field) != _DEFAULTS[field]]
              for other, settings in OWN_SETTINGS.items() if other != engine}
    return {other: names for other, names in unused.items() if names}


def unused_settings_line(config: Config, engine: str) -> str | None:
    """The start-up line naming them, or None when every variable set is one ``engine`` reads."""
    unused = settings_of_other_engines(config, engine)
    if not unused:
        return None
    named = "; ".join(f"{', '.join(names)} (read by the {other} engine only)" for other, names in unused.items())
    return f"ignored by the {engine} engine serving here (SLUICE_ENGINE={engine}): {named}"
