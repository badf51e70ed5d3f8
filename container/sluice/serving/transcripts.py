"""A session's conversation as token ids, so its next turn starts with the very tokens whose KV
the engine kept.

A chat client resends its history as text each turn, and the server tokenises it afresh. The
model's own answer, tokenised again, need not give back the ids the model chose (a tokenizer
has several ways to spell most strings; an answer the model spelled its own way comes back
spelled the canonical way), and the prefix cache matches ids, so the answer's KV, and the turns
after it, would be prefilled again. In a session the server remembers the last turn's text and
ids: a prompt that starts with that text is the remembered ids followed by the new text's own
tokens. This is used only when both spellings decode to the same text, so the model reads the
same conversation either way (a tokenizer that would add a space in front of a separately
tokenised remainder simply falls back to the usual tokens).
"""

from __future__ import annotations

from ..request import ValidRequest
from ..text.events import TokenEvent
from .session_store import Transcript


def continue_transcript(tokenizer, text: str, add_special_tokens: bool, tokens: list[int],
                        transcript: Transcript) -> list[int]:
    """The prompt's ids in the session: ``transcript``'s ids then the rest of ``text`` tokenised
    alone, when that spells the same text as ``tokens`` (the usual tokenisation); else ``tokens``."""
    if transcript.add_special_tokens != add_special_tokens or not text.startswith(transcript.text):
        return tokens
    rest = text[len(transcript.text):]
    continued = list(transcript.ids) + (list(tokenizer(rest, add_special_tokens=False)["input_ids"]) if rest else [])
    if continued == tokens or _spelled(tokenizer, continued) != _spelled(tokenizer, tokens):
        return tokens
    return continued


def _spelled(tokenizer, ids: list[int]) -> str:
    return tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)


def transcript_after(valid: ValidRequest, run: list[TokenEvent], add_special_tokens: bool) -> Transcript | None:
    """The conversation after this turn: the prompt and the answer, text and ids. A special token
    (EOS) that ends the answer is left out of the ids, as it is of the text (the chat template
    writes its own end-of-turn marker); an answer with one inside it is not remembered (its text
    would not spell its ids)."""
    if not run or run[-1].finish is None or valid.request.truncate is not None:
        return None
    generated = [event.token for event in run]
    if generated and generated[-1].special:
        generated = generated[:-1]
    if any(token.special for token in generated):
        return None
    return Transcript(valid.request.inputs + run[-1].finish.generated_text,
                      valid.input_ids + tuple(token.id for token in generated), add_special_tokens)
