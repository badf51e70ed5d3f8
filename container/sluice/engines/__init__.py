"""The engine rooms: scheduling and model execution behind one contract (``base``), one folder
per engine (``native``: Sluice's own batching engine on transformers; ``vllm``: vLLM's engine),
and ``registry``, which maps ``SLUICE_ENGINE`` to an engine's ``build``. Neither engine folder
imports the other. Kept light: importing a package here imports no torch, so the scheduler and
prefix cache are testable without it."""
