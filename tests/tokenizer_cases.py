"""Texts and a second tokenizer family for the tests that hold Sluice's text paths to transformers'.

The demo model's tokenizer is byte-level BPE; ``sentencepiece_like`` is the other family (``▁`` for
spaces, byte fallback), trained here on the demo corpus in about a second.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, decoders, models, normalizers, trainers
from transformers import PreTrainedTokenizerFast

CORPUS = Path(__file__).resolve().parent.parent / "demo" / "corpus"
EMOJI = "Emoji 🧀🍷👩‍👩‍👧‍👦 café naïve 日本語 🇯🇵 中文字符 😀😃😄 ＡＢＣ e\u0301 ok. "
TEXTS = {"en": (CORPUS / "en_cheese.txt").read_text()[:3000], "ja": (CORPUS / "ja.txt").read_text()[:3000],
         "zh": (CORPUS / "zh.txt").read_text()[:3000], "emoji": EMOJI * 6}


def sentencepiece_like() -> PreTrainedTokenizerFast:
    tokenizer = Tokenizer(models.BPE(byte_fallback=True, unk_token="<unk>"))
    tokenizer.normalizer = normalizers.Replace(" ", "▁")
    tokenizer.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                           decoders.Strip(" ", 1, 0)])
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<unk>", "<s>", "</s>"], limit_alphabet=300,
                                  initial_alphabet=[f"<0x{b:02X}>" for b in range(256)])
    texts = [(CORPUS / name).read_text()[:20000] for name in ("en_cheese.txt", "ja.txt", "zh.txt")]
    tokenizer.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
