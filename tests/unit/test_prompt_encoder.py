"""The prompt encoder gives exactly the ids transformers' ``tokenizer(text)["input_ids"]`` gives,
with and without special tokens, for the demo's byte-level BPE and a SentencePiece-like tokenizer
(prompts in English, Japanese, Chinese and emoji, special tokens written in the text, empty and
whitespace-only ones); and it keeps transformers' wrapper wherever the wrapper could change
them: a subclass with its own encoding, truncation set on the backend, special tokens split."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from sluice.text.prompt_encoder import _rust_backend, prompt_encoder
from tokenizer_cases import EMOJI, TEXTS

ODD = ["", " ", "\n\n", "  leading and trailing  ", "<s>a prompt</s> with specials <unk>", "</s>", EMOJI,
       "tab\tand\r\nnewlines", "x" * 3000]


def prompts() -> list[str]:
    return [text[start:start + 400] for text in TEXTS.values() for start in range(0, 2400, 600)] + ODD


@pytest.mark.parametrize("family", ["byte_level", "sentencepiece_like"])
def test_the_ids_are_the_wrappers_with_and_without_special_tokens(request, family):
    tokenizer = request.getfixturevalue(family)
    assert _rust_backend(tokenizer) is not None  # the short path is the one being checked
    encode = prompt_encoder(tokenizer)
    for text in prompts() + [tokenizer.eos_token, f"{tokenizer.bos_token}{tokenizer.eos_token}"]:
        for add_special_tokens in (True, False):
            expected = tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
            assert encode(text, add_special_tokens) == expected, (text[:40], add_special_tokens)


def test_a_subclass_with_its_own_encoding_keeps_the_wrapper(byte_level):
    class Shouting(type(byte_level)):
        def _encode_plus(self, text, *args, **kwargs):
            return super()._encode_plus(text.upper(), *args, **kwargs)

    shouting = Shouting.from_pretrained(byte_level.name_or_path)
    assert _rust_backend(shouting) is None
    assert prompt_encoder(shouting)("quiet words", True) == byte_level("QUIET WORDS")["input_ids"]


def test_truncation_set_on_the_backend_keeps_the_wrapper(byte_level):
    tokenizer = AutoTokenizer.from_pretrained(byte_level.name_or_path)
    encode = prompt_encoder(tokenizer)
    tokenizer._tokenizer.enable_truncation(3)  # as a library call with truncation=True leaves it
    text = "a prompt long enough to be cut by a truncating backend"
    assert encode(text, False) == byte_level(text, add_special_tokens=False)["input_ids"]
    assert len(encode(text, False)) > 3


def test_special_tokens_split_as_the_wrapper_splits_them(byte_level):
    text = f"before {byte_level.eos_token} after"
    split = AutoTokenizer.from_pretrained(byte_level.name_or_path, split_special_tokens=True)
    ids = prompt_encoder(split)(text, False)
    assert ids == split(text, add_special_tokens=False)["input_ids"] and byte_level.eos_token_id not in ids
    changed = AutoTokenizer.from_pretrained(byte_level.name_or_path)
    changed.split_special_tokens = True  # set after loading: the backend does not know yet
    assert _rust_backend(changed) is None
    assert prompt_encoder(changed)(text, False) == ids


def test_anything_but_a_fast_tokenizer_keeps_its_own_call():
    class Counting:
        def __call__(self, text, add_special_tokens=True):
            return {"input_ids": [len(word) for word in text.split()] + ([0] if add_special_tokens else [])}

    assert prompt_encoder(Counting())("three short words", True) == [5, 5, 5, 0]
