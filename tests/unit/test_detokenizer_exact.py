"""The fast detokenizer gives exactly the text the reference (TGI's decode_token over transformers'
``decode``) gives, delta by delta, on English, Japanese, Chinese and emoji, for two tokenizer
families: the demo's byte-level BPE and a SentencePiece-like one (``▁`` for spaces, byte
fallback) trained here in a second. Prompts that end inside a multi-byte character, and random
id runs full of partial characters, are in the mix.

Streamed text equals non-streamed text because both come from the same detokenizer; this checks
that the Rust-backed one did not change what either says.
"""

from __future__ import annotations

import random

import pytest

from sluice.text.detokenizer import IncrementalDetokenizer, RustDetokenizer, detokenizer_for
from tokenizer_cases import TEXTS


def reference(tokenizer, context):
    """Today's algorithm through transformers' own ``decode``: the text the API promises."""
    return IncrementalDetokenizer(lambda ids: tokenizer.decode(ids, skip_special_tokens=True), context)


def runs(tokenizer, text: str, count: int = 12, length: int = 40) -> list[list[int]]:
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    step = max(1, (len(ids) - length) // count)
    return [ids[start:start + length] for start in range(0, max(1, len(ids) - length), step)][:count]


def random_runs(tokenizer, count: int = 60, length: int = 50) -> list[list[int]]:
    special = set(tokenizer.all_special_ids)
    normal = [i for i in range(len(tokenizer)) if i not in special]
    rng = random.Random(7)
    return [[rng.choice(normal) for _ in range(length)] for _ in range(count)]


def assert_same_text(tokenizer, run: list[int], context_length: int = 8) -> None:
    context, generated = run[:context_length], run[context_length:]
    expected, fast = reference(tokenizer, context), detokenizer_for(tokenizer, context)
    for position, token_id in enumerate(generated):
        assert fast.push(token_id) == expected.push(token_id), (position, run)
    assert fast.finish() == expected.finish()
    assert fast.emitted == expected.emitted


@pytest.mark.parametrize("language", sorted(TEXTS))
@pytest.mark.parametrize("family", ["byte_level", "sentencepiece_like"])
def test_fast_detokenizer_matches_the_reference_delta_by_delta(request, family, language):
    tokenizer = request.getfixturevalue(family)
    for run in runs(tokenizer, TEXTS[language]):
        assert_same_text(tokenizer, run)


@pytest.mark.parametrize("family", ["byte_level", "sentencepiece_like"])
def test_fast_detokenizer_matches_the_reference_on_runs_of_partial_characters(request, family):
    tokenizer = request.getfixturevalue(family)
    for run in random_runs(tokenizer):
        assert_same_text(tokenizer, run)


def test_a_prompt_ending_inside_a_character_still_matches(byte_level):
    """The prompt's last token holds the first bytes of 食; the first generated token the rest
    (tokenizers' DecodeStream would emit its whole window there: the reference's rule is kept)."""
    ids = byte_level("朝ごはんに味噌汁を食べました", add_special_tokens=False)["input_ids"]
    cuts = [i for i in range(1, len(ids)) if byte_level.decode(ids[:i]).endswith("\ufffd")]
    assert cuts, "the demo tokenizer splits no character here: pick another text"
    for cut in cuts:
        assert_same_text(byte_level, ids, context_length=cut)


def test_the_rust_backed_detokenizer_is_the_one_used_where_it_is_exact(byte_level):
    context = byte_level("Hello there", add_special_tokens=False)["input_ids"]
    assert isinstance(detokenizer_for(byte_level, context), RustDetokenizer)
