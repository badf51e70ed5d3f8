"""Reading a model's tokenizer, for both engines, with one clear line when a directory has none."""

from __future__ import annotations

import os

from transformers import AutoTokenizer

from ..config import ConfigError

# The files one of transformers' tokenizers is read from (fast, sentencepiece, BPE, WordPiece,
# tiktoken); a model directory with none of them has no tokenizer at all.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
                   "vocab.json", "vocab.txt", "tokenizer.tiktoken")


def load_tokenizer(model_id: str, options: dict):
    """``AutoTokenizer``, except that a model directory without a tokenizer says so: transformers
    then advises installing sentencepiece or tiktoken, in five lines naming neither the
    directory nor the missing files."""
    try:
        return AutoTokenizer.from_pretrained(model_id, **options)
    except (OSError, ValueError):
        if os.path.isdir(model_id) and not any(
                os.path.exists(os.path.join(model_id, name)) for name in TOKENIZER_FILES):
            raise ConfigError(f"{model_id} has no tokenizer (none of {', '.join(TOKENIZER_FILES)}): "
                              "save the model's tokenizer beside its weights (tokenizer.save_pretrained)") from None
        raise
