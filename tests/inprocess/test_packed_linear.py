"""CPU linear layers pre-packed for oneDNN (model/packed_linear): faster, same answers.

Loads the tiny model twice through the real loader, packed (the default) and plain
(``SLUICE_PACK_WEIGHTS=0``), and compares what a user would see: bf16 logits bit for bit,
float32 logits to rounding, greedy continuations token for token. Fast tier.
"""

from __future__ import annotations

import pytest
import torch

from sluice.config import Config
from sluice.engines.native.build import logits_width
from sluice.model.loading import load_model
from sluice.model.packed_linear import PackedLinear, pack_linear_layers

PROMPTS = ["The cheese is", "Warm the milk, then add"]


def load(model_dir, dtype: str, pack: bool):
    config = Config.from_environ({"HF_MODEL_ID": str(model_dir), "DTYPE": dtype, "SLUICE_DEVICE": "cpu",
                                  "SLUICE_PACK_WEIGHTS": "1" if pack else "0"})
    return load_model(config)


@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_packed_layers_give_the_plain_layers_logits_and_greedy_tokens(tiny_model_dir, dtype):
    packed, plain = load(tiny_model_dir, dtype, True), load(tiny_model_dir, dtype, False)
    assert packed.linear_kernels.startswith("oneDNN-packed (")
    assert plain.linear_kernels == "nn.Linear (SLUICE_PACK_WEIGHTS=0)"
    assert any(isinstance(m, PackedLinear) for m in packed.model.modules())
    assert not any(type(m) is torch.nn.Linear for m in packed.model.modules())
    inputs = packed.tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        logits = [m.model(**inputs).logits for m in (packed, plain)]
        tokens = [m.model.generate(**inputs, max_new_tokens=24, do_sample=False) for m in (packed, plain)]
    if dtype == "bfloat16":
        assert torch.equal(logits[0], logits[1])
    else:
        torch.testing.assert_close(logits[0], logits[1], rtol=1e-4, atol=1e-4)
    assert torch.equal(tokens[0], tokens[1])


def test_a_tied_output_layer_is_packed_and_the_embedding_keeps_its_weight(tiny_model_dir):
    plain, packed = load(tiny_model_dir, "float32", False), load(tiny_model_dir, "float32", True)
    embedding = packed.model.get_input_embeddings().weight
    assert torch.equal(embedding, plain.model.get_input_embeddings().weight)
    assert isinstance(packed.model.get_output_embeddings(), PackedLinear)
    assert logits_width(packed.model) == logits_width(plain.model) == embedding.shape[0]


def test_models_that_cannot_be_packed_are_left_as_they_are():
    model = torch.nn.Sequential(torch.nn.Linear(8, 8)).to(torch.float16)
    assert pack_linear_layers(model, torch.device("cpu")) == "nn.Linear (float16 is not packed)"
    assert pack_linear_layers(model, torch.device("cuda")) == "nn.Linear (cuda: its own kernels)"
    assert type(model[0]) is torch.nn.Linear
