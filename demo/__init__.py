"""Offline builder for the small Llama demo models that Sluice's tests and examples serve."""
