"""The benchmark's prompt set: deterministic texts of known token length, cut from the demo corpus.

Every server under test receives *text* and tokenizes it itself (with the tokenizer's special
tokens, as Sluice and `transformers serve` both do), so a prompt's length is what that call gives,
not the length of the slice it was cut from: decode/re-encode can merge or split tokens at the
edges. Each prompt is therefore trimmed until its own encoding has exactly the target length, and
the in-process baselines use that very encoding, so all contenders do the same work.
"""

from __future__ import annotations

from dataclasses import dataclass

from demo.corpus_reader import read_paragraphs


@dataclass(frozen=True)
class Prompt:
    text: str
    input_ids: tuple[int, ...]  # as the servers will see it (special tokens included)

    @property
    def length(self) -> int:
        return len(self.input_ids)


def target_lengths(count: int, shortest: int, longest: int) -> list[int]:
    """Evenly spread lengths from ``shortest`` to ``longest``, interleaved short/long.

    Interleaving keeps every concurrency level's first wave a mix of lengths instead of
    all-short or all-long, which would flatter or punish whoever runs it.
    """
    if count == 1:
        return [longest]
    ascending = [round(shortest + (longest - shortest) * i / (count - 1)) for i in range(count)]
    mixed = []
    for i in range(count // 2):
        mixed += [ascending[i], ascending[count - 1 - i]]
    if count % 2:
        mixed.append(ascending[count // 2])
    return mixed


def _encode(tokenizer, text: str) -> tuple[int, ...]:
    return tuple(tokenizer(text, add_special_tokens=True)["input_ids"])


def _cut(tokenizer, stream: list[int], start: int, length: int) -> Prompt:
    """The longest text starting at ``stream[start]`` whose encoding has exactly ``length`` ids."""
    special = len(_encode(tokenizer, ""))
    take = length - special
    for _ in range(64):
        text = tokenizer.decode(stream[start:start + take], skip_special_tokens=True)
        ids = _encode(tokenizer, text)
        if len(ids) == length:
            return Prompt(text, ids)
        take += length - len(ids)  # re-encoding merged or split tokens: move the cut
        if take < 1:
            break
    raise ValueError(f"cannot cut a {length}-token prompt at corpus offset {start}")


def build_prompts(tokenizer, count: int, shortest: int, longest: int) -> list[Prompt]:
    """``count`` prompts of ``shortest``..``longest`` tokens from consecutive corpus stretches."""
    stream: list[int] = []
    for paragraph in read_paragraphs():
        stream.extend(tokenizer(paragraph + "\n\n", add_special_tokens=False)["input_ids"])
    prompts, start = [], 0
    for length in target_lengths(count, shortest, longest):
        if start + 2 * length > len(stream):
            start = 0  # a small corpus: wrap around (the texts then repeat, which is harmless)
        prompts.append(_cut(tokenizer, stream, start, length))
        start += 2 * length
    return prompts


class Corpus:
    """The demo corpus as one token stream, handed out in consecutive stretches that never repeat.

    vLLM caches prompt prefixes: a prompt sent twice (at two load levels, or to a warm-up and
    then a measurement) would skip its prefill there but not on Sluice's own engine. Every
    request of a run therefore gets fresh text; running out of corpus is an error, not a wrap.
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.stream: list[int] = []
        for paragraph in read_paragraphs():
            self.stream.extend(tokenizer(paragraph + "\n\n", add_special_tokens=False)["input_ids"])
        self.position = 0

    def _take(self, length: int) -> int:
        if self.position + 2 * length + 8 > len(self.stream):
            raise ValueError(f"the demo corpus ({len(self.stream)} tokens) is used up at {self.position}")
        start = self.position
        return start

    def prompt(self, length: int) -> Prompt:
        """A prompt whose own encoding (special tokens included) has exactly ``length`` ids."""
        prompt = _cut(self.tokenizer, self.stream, self._take(length), length)
        self.position += length + 1
        return prompt

    def prompts(self, count: int, shortest: int, longest: int) -> list[Prompt]:
        """``count`` prompts spread over ``shortest``..``longest`` tokens, as ``target_lengths``."""
        return [self.prompt(length) for length in target_lengths(count, shortest, longest)]

    def text(self, tokens: int) -> str:
        """About ``tokens`` tokens of text (for chat messages, whose exact length is not a target)."""
        start = self._take(tokens)
        self.position += tokens + 1
        return self.tokenizer.decode(self.stream[start:start + tokens], skip_special_tokens=True).strip()


def _chat_prompt(tokenizer, messages: list[dict]) -> Prompt:
    """``messages`` through the model's chat template, its leading BOS dropped (the server adds it)."""
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    if tokenizer.bos_token and text.startswith(tokenizer.bos_token):
        text = text[len(tokenizer.bos_token):]
    return Prompt(text, _encode(tokenizer, text))


def shared_prefix(prompts: list[Prompt]) -> int:
    """How many leading token ids every prompt has in common."""
    shared = 0
    for column in zip(*(p.input_ids for p in prompts), strict=False):
        if len(set(column)) > 1:
            break
        shared += 1
    return shared


def chat_prompts(tokenizer, corpus: Corpus, system_tokens: int, conversations: int,
                 turn_tokens: int) -> tuple[list[Prompt], int]:
    """Chat prompts sharing one ``system_tokens``-long system prompt, with 1-3 earlier turns each.

    The earlier turns were never sent: each prompt brings ``turn_tokens``-sized history nobody
    has seen. Returns the prompts and the length of the prefix they all share.
    """
    system = corpus.text(system_tokens)
    prompts = []
    for index in range(conversations):
        messages = [{"role": "system", "content": system}]
        for _ in range(1 + index % 3):
            messages += [{"role": "user", "content": corpus.text(turn_tokens // 2)},
                         {"role": "assistant", "content": corpus.text(turn_tokens)}]
        messages.append({"role": "user", "content": corpus.text(turn_tokens // 2)})
        prompts.append(_chat_prompt(tokenizer, messages))
    return prompts, shared_prefix(prompts)


def chat_sessions(tokenizer, corpus: Corpus, system_tokens: int, conversations: int,
                  turn_tokens: int) -> tuple[list[Prompt], list[str], int]:
    """Conversations played turn by turn, as a chat client sends them, sharing one system prompt.

    Conversation i has 1 + i % 3 turns; each turn resends the whole history (the earlier user
    messages and assistant answers, ``turn_tokens`` of corpus text standing in for the model's
    answer) plus a new user message. Returns the prompts in sending order, what each one is
    (``first``, ``new conversation``, ``follow-up``) and the prefix every prompt shares.
    """
    system = corpus.text(system_tokens)
    prompts, kinds = [], []
    for index in range(conversations):
        messages = [{"role": "system", "content": system}]
        for turn in range(1 + index % 3):
            if turn:
                messages.append({"role": "assistant", "content": corpus.text(turn_tokens)})
            messages.append({"role": "user", "content": corpus.text(turn_tokens // 2)})
            prompts.append(_chat_prompt(tokenizer, messages))
            kinds.append("first" if len(prompts) == 1 else "follow-up" if turn else "new conversation")
    return prompts, kinds, shared_prefix(prompts)


@dataclass(frozen=True)
class Conversation:
    """A conversation to play turn by turn: its system prompt and its user messages; the
    assistant's turns are the model's own answers, filled in as it is played."""

    system: str
    questions: tuple[str, ...]


def chat_conversations(corpus: Corpus, system_tokens: int, conversations: int, turns: int,
                       turn_tokens: int) -> list[Conversation]:
    """Conversations of ``turns`` user messages (about ``turn_tokens // 2`` tokens each), each with
    its own fresh ``system_tokens``-long system prompt, so every first turn finds nothing cached."""
    return [Conversation(corpus.text(system_tokens), tuple(corpus.text(turn_tokens // 2) for _ in range(turns)))
            for _ in range(conversations)]


def render_chat(tokenizer, messages: list[dict]) -> str:
    """The prompt text a chat client's messages become (the server adds BOS)."""
    return _chat_prompt(tokenizer, messages).text
