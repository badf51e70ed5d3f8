"""The two tokenizer families the unit tests of Sluice's text paths run on (``tokenizer_cases``):
one instance per test module, so a module that changes one cannot reach another's."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

import tokenizer_cases


@pytest.fixture(scope="module")
def byte_level(tiny_model_dir):
    """The demo model's byte-level BPE tokenizer."""
    return AutoTokenizer.from_pretrained(tiny_model_dir)


@pytest.fixture(scope="module")
def sentencepiece_like():
    return tokenizer_cases.sentencepiece_like()
