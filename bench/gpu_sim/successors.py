"""The simulated model's choice: each token's successor, a fixed seeded table over ordinary tokens.

The same table drives vLLM's simulated sampler and Sluice's stand-in engine, so both produce the
same ids for the same prompt (the chain starts at the prompt's last token). Special tokens (EOS
among them) are never chosen: every stream runs to its ``max_new_tokens``, as ``ignore_eos``
would make it. The ids are spread over the whole vocabulary, byte-level tokens included, so the
detokenizer meets incomplete UTF-8 characters as it does with a real model's output.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

SEED = 20260521


def special_ids(model_dir: str | Path) -> set[int]:
    """Ids of the tokenizer's special tokens, from ``tokenizer.json`` (no transformers needed)."""
    tokenizer = json.loads((Path(model_dir) / "tokenizer.json").read_text(encoding="utf-8"))
    return {entry["id"] for entry in tokenizer.get("added_tokens", []) if entry.get("special")}


def successor_table(vocab_size: int, banned: set[int]) -> list[int]:
    """``table[token]`` is the token chosen after ``token``; no entry is in ``banned``."""
    allowed = [token for token in range(vocab_size) if token not in banned]
    rng = random.Random(SEED)
    return [allowed[rng.randrange(len(allowed))] for _ in range(vocab_size)]


def table_for(model_dir: str | Path, vocab_size: int) -> list[int]:
    return successor_table(vocab_size, special_ids(model_dir))
