"""The offline demo model builder: loadable through the production path, deterministic, cached."""

from __future__ import annotations

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from demo.build_model import STAMP_NAME, build, read_stamp

JAPANESE = "味噌汁は出汁を取ってから味噌を溶かします。"
CHINESE = "今天天气很好，我们去公园散步吧。"


@pytest.fixture(scope="module")
def built_dir(tmp_path_factory):
    return build("tiny", tmp_path_factory.mktemp("demo") / "tiny")


@pytest.fixture(scope="module")
def tokenizer(built_dir):
    return AutoTokenizer.from_pretrained(built_dir)


@pytest.fixture(scope="module")
def model(built_dir):
    return AutoModelForCausalLM.from_pretrained(built_dir, dtype=torch.float32).eval()


def test_model_loads_through_auto_classes_as_float32_llama(model, tokenizer, built_dir):
    assert model.config.model_type == "llama"
    assert next(model.parameters()).dtype == torch.float32
    assert model.config.vocab_size == len(tokenizer)
    assert sum(p.numel() for p in model.parameters()) == read_stamp(built_dir)["param_count"]
    assert tokenizer.padding_side == "left"
    assert tokenizer.pad_token_id is not None


def test_chat_template_renders_chatml_with_generation_prompt(tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How do I cook rice?"}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text.startswith(tokenizer.bos_token)
    assert "<|im_start|>user\nHow do I cook rice?<|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n")
    ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True)["input_ids"]
    assert ids.count(tokenizer.bos_token_id) == 1
    assert tokenizer.convert_tokens_to_ids("<|im_end|>") in ids


def test_generation_stops_at_end_of_turn_as_well_as_eos(model, tokenizer):
    eos = model.generation_config.eos_token_id
    assert set(eos) == {tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|im_end|>")}


@pytest.mark.parametrize("phrase", [JAPANESE, CHINESE])
def test_cjk_phrases_become_multi_character_tokens(tokenizer, phrase):
    ids = tokenizer(phrase, add_special_tokens=False)["input_ids"]
    # Fewer tokens than characters (let alone UTF-8 bytes) means CJK merges were learned.
    assert len(ids) < len(phrase) < len(phrase.encode("utf-8"))


@pytest.mark.parametrize("text", [JAPANESE, CHINESE, "Cheese, travel & 龘 🍣 mixed text\n"])
def test_decode_round_trips_exactly(tokenizer, text):
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert tokenizer.decode(ids, skip_special_tokens=True) == text


def test_greedy_generation_from_english_prompt_gives_text(model, tokenizer):
    inputs = tokenizer("A good soup starts with", return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    text = tokenizer.decode(out[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    assert any(ch.isalpha() for ch in text), text


def test_batched_left_padded_greedy_matches_one_at_a_time(model, tokenizer):
    prompts = ["The endpoint", "Rice is easy once you measure", "京都には"]
    batch = tokenizer(prompts, return_tensors="pt", padding=True)
    batched = model.generate(**batch, max_new_tokens=6, do_sample=False, min_new_tokens=6)
    for row, prompt in enumerate(prompts):
        single = tokenizer(prompt, return_tensors="pt")
        alone = model.generate(**single, max_new_tokens=6, do_sample=False, min_new_tokens=6)
        assert batched[row, -6:].tolist() == alone[0, -6:].tolist()


def test_two_builds_write_identical_files(built_dir, tmp_path):
    again = build("tiny", tmp_path / "tiny")
    for name in ("model.safetensors", "tokenizer.json", "config.json", "generation_config.json"):
        assert (again / name).read_bytes() == (built_dir / name).read_bytes(), name


def test_second_build_with_matching_stamp_reuses_the_model(built_dir):
    before = (built_dir / "model.safetensors").stat().st_mtime_ns
    assert build("tiny", built_dir) == built_dir
    # nothing was rebuilt or rewritten (timing is not asserted: machines are noisy)
    assert (built_dir / "model.safetensors").stat().st_mtime_ns == before
    assert not list(built_dir.parent.glob(f".{built_dir.name}.building-*"))


def test_refuses_to_replace_a_directory_that_is_not_a_demo_build(tmp_path):
    target = tmp_path / "precious"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build("tiny", target, force=True)
    assert (target / "notes.txt").read_text() == "keep me"
    assert not (target / STAMP_NAME).exists()


def test_supervised_examples_take_loss_only_on_answers_through_their_end_token(tokenizer):
    from demo.supervised import IGNORE, chat_example, raw_prompt_example

    end_of_turn = tokenizer.convert_tokens_to_ids("<|im_end|>")
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "How do I cook rice?"},
                {"role": "assistant", "content": "Boil it."}, {"role": "user", "content": "And then?"},
                {"role": "assistant", "content": "Eat it."}]
    chat = chat_example(tokenizer, messages, end_of_turn)
    taught = tokenizer.decode([t for t in chat.labels if t != IGNORE])
    assert taught == "Boil it.<|im_end|>Eat it.<|im_end|>"

    raw = raw_prompt_example(tokenizer, "How do I cook rice?", "Boil it.")
    prompt = tokenizer("How do I cook rice?")["input_ids"]  # as the server tokenizes `inputs`
    assert list(raw.input_ids[: len(prompt)]) == prompt
    assert tokenizer.decode([t for t in raw.labels if t != IGNORE]) == " Boil it.<|endoftext|>"


@pytest.mark.parametrize("prompt", ["How do I make cheese?", "チーズの作り方は?", "How do I build a website?"])
def test_trained_model_answers_a_demo_prompt_with_a_sentence_then_eos(model, tokenizer, prompt):
    inputs = tokenizer(prompt, return_tensors="pt")
    out = model.generate(**inputs, max_new_tokens=64, do_sample=False)
    new = out[0, inputs["input_ids"].shape[1]:].tolist()
    assert new[-1] in model.generation_config.eos_token_id, "ran to max_new_tokens"
    text = tokenizer.decode(new, skip_special_tokens=True)
    assert len(text.strip()) > 10 and any(ch.isalpha() for ch in text), text
