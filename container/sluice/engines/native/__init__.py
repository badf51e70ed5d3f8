"""Sluice's own engine (``SLUICE_ENGINE=sluice``): continuous batching over a transformers model,
with its scheduler, KV batch, fused prefill pass, sampler, grammar masks and prefix cache."""
