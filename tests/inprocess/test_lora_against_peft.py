"""Sluice's per-row LoRA computes what PEFT computes, row by row, in batches that mix adapters.

PEFT itself is the reference: the base model with one adapter loaded by ``PeftModel`` gives each
row's logits alone; Sluice's runner gives them for rows of the base model and of two adapters in
one batch, in every kind of pass (a prefill chunk, a decode step, the fused pass that packs a
decode step and another group's chunk into one row), over the production loader's linear layers
(oneDNN-packed on this CPU). float32 throughout; the tolerance is float32 rounding of a
different summation order, far below what changes a token.
"""

from __future__ import annotations

import pytest
import torch
from native_engine import adapter_engine, drain, request, with_adapter

from sluice.engines.native.lora import LoraLayers
from sluice.engines.native.model_runner import ModelRunner
from sluice.model.lora_files import check_fits, read_lora_dir
from sluice.request import AdapterRef

peft = pytest.importorskip("peft", reason="PEFT is the reference (requirements/dev.txt)")

TOLERANCE = 1e-4
PROMPTS = ["The cheese shop opens at nine", "Rice needs water", "How do websites load so fast?"]


@pytest.fixture(scope="module")
def loaded(lora_model):
    return lora_model[0]


@pytest.fixture(scope="module")
def shapes(lora_model):
    return lora_model[1]


@pytest.fixture(scope="module")
def adapted(loaded, shapes, tiny_adapters):
    """A runner whose layers serve both adapters (placed once)."""
    layers = LoraLayers(loaded.model, torch.float32)
    placed = {}
    for uid, (name, path) in enumerate(sorted(tiny_adapters.items()), start=1):
        weights = read_lora_dir(name, str(path), max_rank=16)
        check_fits(name, weights, shapes)
        placed[name] = layers.place(AdapterRef(name, uid), weights)
    return ModelRunner(loaded.model, loaded.device, loaded.tokenizer.pad_token_id, lora=layers), placed


@pytest.fixture(scope="module")
def peft_logits(tiny_model_dir, tiny_adapters):
    """Each row alone through PEFT: the logits of every position of ``ids`` with ``adapter``."""
    from transformers import AutoModelForCausalLM

    models = {None: AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()}
    for name, path in tiny_adapters.items():
        base = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32)
        models[name] = peft.PeftModel.from_pretrained(base, str(path)).eval()

    def logits(adapter: str | None, ids: list[int]) -> torch.Tensor:
        with torch.no_grad():
            return models[adapter](torch.tensor([ids])).logits[0]
    return logits


def ids_of(loaded, text: str) -> list[int]:
    return loaded.tokenizer(text)["input_ids"]


def assert_close(got: torch.Tensor, expected: torch.Tensor) -> None:
    assert (got - expected).abs().max().item() < TOLERANCE * max(1.0, expected.abs().max().item())


def test_a_batch_of_base_and_two_adapters_gives_each_row_peft_logits_in_prefill_and_decode(
        loaded, adapted, peft_logits):
    runner, placed = adapted
    names = ["a", None, "b"]
    prompts = [ids_of(loaded, p) for p in PROMPTS]
    job = runner.begin_prefill([tuple(p) for p in prompts], adapters=[placed.get(n) for n in names])
    while not job.complete:  # in chunks of 3 columns: each chunk a pass of mixed adapters
        runner.prefill_chunk(job, min(job.width, job.done + 3))
    result = runner.finish_prefill(job)
    for row, (name, prompt) in enumerate(zip(names, prompts, strict=True)):
        assert_close(result.last_logits[row], peft_logits(name, prompt)[-1])

    batch, chosen = result.batch, result.last_logits.argmax(-1)
    batch.last_tokens = chosen
    decoded = runner.decode(batch, [placed.get(n) for n in names])
    for row, (name, prompt) in enumerate(zip(names, prompts, strict=True)):
        assert_close(decoded[row], peft_logits(name, prompt + [int(chosen[row])])[-1])
    assert (decoded[0] - decoded[1]).abs().max() > 1  # the adapters do change the logits


def test_the_fused_pass_applies_each_tokens_own_adapter(loaded, adapted, peft_logits):
    """Decode rows (base, a) and a chunk of another group (b, base) packed into one row."""
    runner, placed = adapted
    assert runner.fused_pass.startswith("on")
    running_names, running = [None, "a"], [ids_of(loaded, PROMPTS[0]), ids_of(loaded, PROMPTS[1])]
    arriving_names, arriving = ["b", None], [ids_of(loaded, PROMPTS[2]), ids_of(loaded, PROMPTS[1])]
    running_rows = [placed.get(n) for n in running_names]
    first = runner.begin_prefill([tuple(p) for p in running], adapters=running_rows)
    runner.prefill_chunk(first, first.width)
    result = runner.finish_prefill(first)
    batch, chosen = result.batch, result.last_logits.argmax(-1)
    batch.last_tokens = chosen
    job = runner.begin_prefill([tuple(p) for p in arriving], adapters=[placed.get(n) for n in arriving_names])
    decoded = runner.fused_step(batch, job, job.width, running_rows)
    for row, (name, prompt) in enumerate(zip(running_names, running, strict=True)):
        assert_close(decoded[row], peft_logits(name, prompt + [int(chosen[row])])[-1])
    arrived = runner.finish_prefill(job)
    for row, (name, prompt) in enumerate(zip(arriving_names, arriving, strict=True)):
        assert_close(arrived.last_logits[row], peft_logits(name, prompt)[-1])


def test_each_row_of_a_mixed_batch_generates_what_it_generates_alone(loaded, shapes, tiny_adapters):
    engine, refs = adapter_engine(loaded, shapes, tiny_adapters)
    cases = [(PROMPTS[0], None), (PROMPTS[0], refs["a"]), (PROMPTS[2], refs["b"]), (PROMPTS[1], refs["a"])]
    valids = [with_adapter(request(loaded, prompt, max_new_tokens=12), ref) for prompt, ref in cases]
    engine.start()
    try:
        alone = [drain(engine.submit(valid))[0] for valid in valids]
        together = [engine.submit(valid) for valid in valids]
        assert [drain(sequence)[0] for sequence in together] == alone
    finally:
        engine.close(10)
    assert len({tuple(tokens) for tokens in alone[:2]}) == 2  # the adapter changed the answer


def test_the_prefix_cache_never_hands_one_adapters_kv_to_another(loaded, shapes, tiny_adapters):
    engine, refs = adapter_engine(loaded, shapes, tiny_adapters)
    prompt = "A shared system prompt that is long enough to fill two blocks of sixteen tokens. " * 2
    engine.start()
    try:
        cold = {name: drain(engine.submit(with_adapter(request(loaded, prompt), ref)))[0]
                for name, ref in (("base", None), ("a", refs["a"]), ("b", refs["b"]))}
        assert engine.stats.prefix_cache_hits == 0  # same tokens, three namespaces
        again = drain(engine.submit(with_adapter(request(loaded, prompt), refs["a"])))[0]
    finally:
        engine.close(10)
    assert engine.stats.prefix_cache_hits == 1 and again == cold["a"]
    assert len({tuple(tokens) for tokens in cold.values()}) == 3


def test_with_one_slot_adapters_take_turns_and_an_evicted_one_is_read_again(loaded, shapes, tiny_adapters):
    engine, refs = adapter_engine(loaded, shapes, tiny_adapters, capacity=1)  # registering b evicted a
    valids = {name: with_adapter(request(loaded, PROMPTS[1], max_new_tokens=8), ref) for name, ref in refs.items()}
    engine.start()
    try:
        alone = {name: drain(engine.submit(valid))[0] for name, valid in valids.items()}
        sequences = [engine.submit(valids[name]) for name in ("a", "b", "a", "b")]
        results = [drain(sequence) for sequence in sequences]
    finally:
        engine.close(10)
    assert [tokens for tokens, _ in results] == [alone["a"], alone["b"], alone["a"], alone["b"]]
    assert all(error is None for _, error in results)
