"""vLLM's raw engine-core outputs as Sluice's choices: token ids and log-probabilities per step.

Sluice reads ``EngineCoreOutputs`` straight from vLLM's engine-core client rather than through
``LLMEngine.step()``: its output processor would build a ``RequestOutput`` (and a ``Logprob``
dict per token) for every request at every step, only for Sluice to take the ids back out. Here
each step becomes one ``publish`` of (sequence, choices), built from the arrays vLLM sends. The
log-probabilities keep the shape the output processor gives them: the chosen token's first, then
the top ``k`` by rank; ``top_tokens`` are those of rank <= ``top_n`` in rank order, a chosen token
outside the top ``k`` (a tie at the boundary) included, as the processor's per-token dict would.
"""

from __future__ import annotations

from ..base import Choice


def _listed(row) -> list:
    """A row of log-probabilities or ids: a numpy array as vLLM sends it, or already a list
    (``core_scheduler``)."""
    return row if type(row) is list else row.tolist()


def choices_from(token_ids: list[int], logprobs, top_n: int) -> list[Choice]:
    """One ``EngineCoreOutput``'s new tokens; ``logprobs`` is its ``LogprobsLists`` (or None),
    whose rows are numpy arrays or lists."""
    if logprobs is None:  # not asked for: nothing shows them
        return [Choice(token_id, None) for token_id in token_ids]
    ids_rows, value_rows, ranks = logprobs.logprob_token_ids, logprobs.logprobs, logprobs.sampled_token_ranks
    choices = []
    for index, token_id in enumerate(token_ids):
        if index >= len(value_rows):
            choices.append(Choice(token_id, 0.0))
            continue
        values = _listed(value_rows[index])
        tops: tuple = ()
        if top_n:
            ids = _listed(ids_rows[index])
            entry = {ids[0]: (int(ranks[index]), values[0])}
            for rank, (tid, value) in enumerate(zip(ids[1:], values[1:], strict=True), start=1):
                entry[tid] = (rank, value)  # a chosen token in the top k keeps its top-k rank
            ranked = sorted((rank, tid, value) for tid, (rank, value) in entry.items() if rank <= top_n)
            tops = tuple((tid, value) for _, tid, value in ranked[:top_n])
        choices.append(Choice(token_id, values[0], tops))
    return choices


class PromptLogprobs:
    """A request's prompt log-probabilities, which vLLM sends in one piece per prefill chunk."""

    def __init__(self, prompt_length: int):
        self.values: list[float | None] = [None]  # the first prompt token has none
        self.expected = prompt_length

    def add(self, tensors) -> None:
        rows = tensors.logprobs.tolist()
        self.values += [row[0] for row in rows]

    @property
    def complete(self) -> bool:
        return len(self.values) >= self.expected
