"""Model execution: the only room that calls the model's forward pass.

A group of new prompts (left-padded) is prefilled as a ``PrefillJob``, one chunk of columns per
``prefill_chunk`` call, so the engine can run decode steps in between; the finished job gives the
group's KV batch and the logits of each prompt's last position. ``decode`` runs one step for the
whole running batch; ``fused_step`` does both in one pass (``fused_pass``). None of it knows
about requests, sampling or text.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch

from .fused_pass import FusedCache, FusedPlan, chunk_mask, fused_attention_modules, ragged_segments
from .kv_batch import BatchCache, KVBatch, truncate
from .lora import LoadedLora, LoraLayers, pass_plan

Adapters = list[LoadedLora | None] | None  # each row's adapter (None: the base model), or all base


@dataclass
class PrefillResult:
    batch: KVBatch
    last_logits: torch.Tensor  # [rows, vocab]
    prompt_logprobs: list[list[float | None]] | None  # per row, when asked (decoder_input_details)


@dataclass
class PrefillJob:
    """A group's prefill in progress: its padded prompts, its cache and the columns done."""

    prompts: list[tuple[int, ...]]
    ids: torch.Tensor  # [rows, width], left-padded
    mask: torch.Tensor  # [rows, width], 0 on padding
    cache: BatchCache
    done: int = 0  # columns already in the cache
    wants_prompt_logprobs: bool = False
    logits: list[torch.Tensor] = field(default_factory=list)  # per chunk: all positions, or the last
    adapters: Adapters = None  # each row's LoRA adapter

    @property
    def width(self) -> int:
        return self.ids.shape[1]

    @property
    def rows(self) -> int:
        return self.ids.shape[0]

    @property
    def complete(self) -> bool:
        return self.done >= self.width


class ModelRunner:
    def __init__(self, model, device: torch.device, pad_token_id: int, dtype_reason: str = "",
                 linear_kernels: str = "", fuse: bool = True, lora: LoraLayers | None = None):
        self.model = model
        self.lora = lora  # the adapted layers (None: this runner serves no adapters)
        self.device = device
        self.pad_token_id = pad_token_id
        self.dtype_reason = dtype_reason  # what /info says of the dtype choice
        self.linear_kernels = linear_kernels  # and of the linear layers (packed for oneDNN or not)
        self._fuses: bool | None = None if fuse else False  # None: not checked yet
        self._fused_reason = "" if fuse else "off (SLUICE_FUSED_PREFILL=0)"

    @property
    def fused_pass(self) -> str:
        """Whether decode steps and prefill chunks share a forward pass, and why (checked once)."""
        if self._fuses is None:
            self._fuses, self._fused_reason = self._check_fused_pass()
        return self._fused_reason

    def can_fuse(self, job: PrefillJob) -> bool:
        """Whether ``job``'s next chunk may ride along with a decode step (``fused_step``)."""
        # Prompt log-probabilities need every position's logits; the fused pass keeps the last.
        return not job.wants_prompt_logprobs and self._fusing()

    def _fusing(self) -> bool:
        self.fused_pass  # noqa: B018 - checks the model once
        return bool(self._fuses)

    def begin_prefill(self, prompts: list[tuple[int, ...]], with_prompt_logprobs: bool = False,
                      cache: BatchCache | None = None, done: int = 0, adapters: Adapters = None) -> PrefillJob:
        """A job for ``prompts`` (each with its row's adapter); ``cache`` may already hold their
        first ``done`` columns."""
        width = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for row, prompt in enumerate(prompts):
            ids[row, width - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[row, width - len(prompt):] = 1
        return PrefillJob(list(prompts), ids.to(self.device), mask.to(self.device),
                          cache if cache is not None else BatchCache(), done, with_prompt_logprobs, adapters=adapters)

    @torch.inference_mode()
    def prefill_chunk(self, job: PrefillJob, stop: int) -> None:
        """Run columns ``job.done:stop`` ("extend": the cache holds every column before them)."""
        mask = job.mask[:, :stop]
        positions = _chunk_positions(job, stop)
        keep = 0 if job.wants_prompt_logprobs else 1
        with self._adapters(job.adapters, [stop - job.done] * job.rows):
            out = self.model(input_ids=job.ids[:, job.done:stop], attention_mask=mask, position_ids=positions,
                             past_key_values=job.cache, use_cache=True, logits_to_keep=keep)
        job.logits = job.logits + [out.logits] if job.wants_prompt_logprobs else [out.logits]
        job.done = stop

    def finish_prefill(self, job: PrefillJob) -> PrefillResult:
        """The completed job's KV batch, last logits and (when asked) prompt log-probabilities."""
        prompt_logprobs = None
        if job.wants_prompt_logprobs:
            prompt_logprobs = _prompt_logprobs(torch.cat(job.logits, dim=1), job.ids, job.prompts)
        batch = KVBatch(cache=job.cache, attention_mask=job.mask, positions=job.mask.sum(-1),
                        last_tokens=job.ids[:, -1].clone())
        return PrefillResult(batch, job.logits[-1][:, -1, :], prompt_logprobs)

    def prefill(self, prompts: list[tuple[int, ...]], with_prompt_logprobs: bool = False) -> PrefillResult:
        """A whole group in one forward pass."""
        job = self.begin_prefill(prompts, with_prompt_logprobs)
        self.prefill_chunk(job, job.width)
        return self.finish_prefill(job)

    def decode(self, batch: KVBatch, adapters: Adapters = None) -> torch.Tensor:
        """One step for every row (each with its adapter); extends the batch's mask and positions in place.

        Rows of very unlike lengths (a long prompt joined short ones) go through the fused pass,
        whose decode attention skips each run of rows' padding (``ragged_segments``).
        """
        if self._fusing():
            segments = _segments(batch)
            if len(segments) > 1:
                return self._fused_forward(batch, None, 0, segments, adapters)
        return self._plain_decode(batch, adapters)

    @torch.inference_mode()
    def _plain_decode(self, batch: KVBatch, adapters: Adapters = None) -> torch.Tensor:
        batch.attention_mask = _with_next_column(batch.attention_mask)
        with self._adapters(adapters, [1] * batch.size):
            out = self.model(input_ids=batch.last_tokens[:, None], attention_mask=batch.attention_mask,
                             position_ids=batch.positions[:, None], past_key_values=batch.cache,
                             use_cache=True, logits_to_keep=1)
        batch.positions = batch.positions + 1
        return out.logits[:, -1, :]

    def fused_step(self, batch: KVBatch, job: PrefillJob, stop: int, adapters: Adapters = None) -> torch.Tensor:
        """``decode`` of ``batch`` and ``prefill_chunk(job, stop)`` in one forward pass.

        Returns the decode logits; the chunk's last-position logits go to the job as a chunk's do.
        If the pass fails the batch's cache forgets what it wrote, so the running rows are intact
        and only the job's group need fail. Not for jobs that want prompt log-probabilities.
        """
        return self._fused_forward(batch, job, stop, _segments(batch), adapters)

    @torch.inference_mode()
    def _fused_forward(self, batch: KVBatch, job: PrefillJob | None, stop: int,
                       segments: list[tuple[int, int, int]], adapters: Adapters = None) -> torch.Tensor:
        decode_mask = _with_next_column(batch.attention_mask)
        plan = FusedPlan(batch.cache, decode_mask.bool(), segments)
        ids, positions, keep = [batch.last_tokens], [batch.positions], [torch.arange(batch.size, device=self.device)]
        rows, tokens = list(adapters or [None] * batch.size), [1] * batch.size  # per-token: packed rows
        if job is not None:
            width = stop - job.done
            plan.chunk_cache, plan.chunk_mask = job.cache, chunk_mask(job.mask[:, :stop], job.done)
            ids.append(job.ids[:, job.done:stop].reshape(-1))
            positions.append(_chunk_positions(job, stop).reshape(-1))
            keep.append(batch.size + torch.arange(job.rows, device=self.device) * width + width - 1)
            rows, tokens = rows + list(job.adapters or [None] * job.rows), tokens + [width] * job.rows
        lengths = [layer.length for layer in batch.cache.layers]
        try:
            with fused_attention_modules(self.model), self._adapters(rows, tokens):
                out = self.model(input_ids=torch.cat(ids)[None], attention_mask=_PREPARED_MASK.to(self.device),
                                 position_ids=torch.cat(positions)[None], past_key_values=FusedCache(plan),
                                 use_cache=True, logits_to_keep=torch.cat(keep), sluice_plan=plan)
        except Exception:
            truncate(batch.cache, lengths)
            raise
        batch.attention_mask, batch.positions = decode_mask, batch.positions + 1
        if job is not None:
            job.logits, job.done = [out.logits[0, batch.size:, None, :]], stop
        return out.logits[0, :batch.size, :]

    def _adapters(self, adapters: Adapters, tokens: list[int]):
        """The LoRA of a pass whose rows hold ``tokens`` tokens each (nothing without adapter rows)."""
        if self.lora is None or not adapters:
            return contextlib.nullcontext()
        return self.lora.active(pass_plan(adapters, tokens, self.device))

    def _check_fused_pass(self) -> tuple[bool, str]:
        """Run a small decode + chunk both ways; fuse only if the model gives the same logits.

        The fused pass relies on the model following transformers' attention interface; a model
        that does not (or a device layout it cannot handle) keeps chunks and decode steps in turns.
        """
        generator = torch.Generator().manual_seed(0)
        vocab = self.model.get_input_embeddings().num_embeddings

        def prompts(*lengths):
            return [tuple(torch.randint(3, vocab, (n,), generator=generator).tolist()) for n in lengths]

        try:
            running, arriving = prompts(2, 9), prompts(7, 4)  # rows of unlike lengths: two segments
            plain_batch, fused_batch = self.prefill(running).batch, self.prefill(running).batch
            plain_job, fused_job = self.begin_prefill(arriving), self.begin_prefill(arriving)
            plain = self._plain_decode(plain_batch)
            self.prefill_chunk(plain_job, 4)
            fused = self.fused_step(fused_batch, fused_job, 4)
            pairs = [(plain, fused), (plain_job.logits[-1][:, -1], fused_job.logits[-1][:, -1])]
            for expected, got in pairs:
                scale = float(expected.abs().max()) or 1.0
                if not torch.allclose(expected.float(), got.float(), rtol=1e-2, atol=1e-2 * scale):
                    return False, "off: the fused pass gave other logits than separate passes on this model"
        except Exception as error:  # a model whose attention does not follow the interface
            return False, f"off: this model cannot run the fused pass ({type(error).__name__}: {error})"
        return True, "on (decode steps and prefill chunks share one forward pass)"


# A 4D mask is taken by transformers as already prepared: the fused attention builds its own.
_PREPARED_MASK = torch.ones((1, 1, 1, 1), dtype=torch.bool)


def _with_next_column(mask: torch.Tensor) -> torch.Tensor:
    """A decode step's attention mask: the batch's, and the column its new tokens write."""
    return torch.cat([mask, mask.new_ones((mask.shape[0], 1))], dim=1)


def _chunk_positions(job: PrefillJob, stop: int) -> torch.Tensor:
    """Position ids of columns ``job.done:stop`` of every row (left padding is not counted)."""
    return (job.mask[:, :stop].cumsum(-1) - 1).clamp(min=0)[:, job.done:stop]


def _segments(batch: KVBatch) -> list[tuple[int, int, int]]:
    """Runs of rows for the next decode step's attention; each row's left padding is its start."""
    left_padding = (batch.attention_mask.cumsum(-1) == 0).sum(-1).tolist()
    return ragged_segments(left_padding, batch.columns + 1)


def _prompt_logprobs(logits: torch.Tensor, ids: torch.Tensor, prompts) -> list[list[float | None]]:
    """Log-probability of each prompt token given the ones before it; the first has none."""
    log_probs = torch.log_softmax(logits[:, :-1, :].float(), dim=-1)
    picked = log_probs.gather(2, ids[:, 1:, None])[:, :, 0].tolist()
    width = ids.shape[1]
    return [[None] + picked[row][width - len(p):] for row, p in enumerate(prompts)]
