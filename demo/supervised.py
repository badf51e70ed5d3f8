"""Prompt -> answer training examples, tokenized exactly as the server will see the prompts.

A model trained only on prose learns to end paragraphs, not to answer: after a question its most
likely next token is often EOS, so the README's examples printed nothing. Each corpus dialogue is
therefore also taught in the two shapes users send:

- chat: the conversation rendered with the model's own chat template (what `{"messages": ...}`
  requests render), loss on each assistant turn up to and including its `<|im_end|>`;
- raw `inputs`: BOS + the user's question (as the server tokenizes `"inputs"`), then the answer
  and EOS, loss on the answer and EOS only.

Loss is never put on the prompt, so the model is not taught to invent further user turns.
"""

from __future__ import annotations

from dataclasses import dataclass

IGNORE = -100  # label value the transformers loss skips


@dataclass(frozen=True)
class SupervisedExample:
    """One training sequence and its labels (IGNORE where no loss is taken)."""

    input_ids: tuple[int, ...]
    labels: tuple[int, ...]


def _render_ids(tokenizer, messages: list[dict], generation_prompt: bool) -> list[int]:
    # The template adds BOS itself, as the server's chat route assumes (add_special_tokens=False).
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def chat_example(tokenizer, messages: list[dict], end_of_turn_id: int) -> SupervisedExample:
    """The rendered conversation, with loss on every assistant turn through its end-of-turn token."""
    ids = _render_ids(tokenizer, messages, generation_prompt=False)
    labels = [IGNORE] * len(ids)
    for index, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        prefix = _render_ids(tokenizer, messages[:index], generation_prompt=True)
        start = len(prefix)
        # The served prompt must tokenize to the same ids as this prefix, or the lesson is moot.
        assert ids[:start] == prefix, f"chat template prefix does not tokenize stably: {messages[:index]}"
        end = ids.index(end_of_turn_id, start) + 1
        labels[start:end] = ids[start:end]
    return SupervisedExample(tuple(ids), tuple(labels))


def answer_text(prompt: str, answer: str) -> str:
    """The continuation after a raw prompt: a space before English, none before CJK."""
    return (" " + answer) if answer[:1].isascii() else answer


def raw_prompt_example(tokenizer, prompt: str, answer: str) -> SupervisedExample:
    """BOS + prompt (the server's tokenization of `inputs`), then the answer and EOS."""
    prompt_ids = tokenizer(prompt)["input_ids"]
    answer_ids = tokenizer(answer_text(prompt, answer), add_special_tokens=False)["input_ids"]
    answer_ids.append(tokenizer.eos_token_id)
    return SupervisedExample(tuple(prompt_ids + answer_ids), tuple([IGNORE] * len(prompt_ids) + answer_ids))


def first_exchange(messages: list[dict]) -> tuple[str, str] | None:
    """The first user question and the assistant answer that follows it, if there is one."""
    for question, answer in zip(messages, messages[1:], strict=False):
        if question["role"] == "user" and answer["role"] == "assistant":
            return question["content"], answer["content"]
    return None


def supervised_examples(tokenizer, dialogues: list[list[dict]], end_of_turn_id: int) -> list[SupervisedExample]:
    """Each dialogue twice: as a chat example and, from its first exchange, as a raw-prompt example.

    The corpus repeats a question under several system prompts, so both shapes get equal weight.
    """
    examples = []
    for messages in dialogues:
        examples.append(chat_example(tokenizer, messages, end_of_turn_id))
        exchange = first_exchange(messages)
        if exchange:
            examples.append(raw_prompt_example(tokenizer, *exchange))
    return examples
