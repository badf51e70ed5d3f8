"""The engine room: scheduling and model execution behind ``api.GenerationEngine`` (the embedded
batching engine in ``batching``, vLLM in ``vllm_engine``). Kept light: importing the package
imports no torch, so the scheduler and prefix cache are testable without it."""
