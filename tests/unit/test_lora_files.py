"""A PEFT LoRA directory is served only when Sluice computes exactly what PEFT would: every setting
and tensor it cannot honour is a 424 naming it, never ignored (both engines read adapters here)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from sluice.errors import AdapterMisfitError
from sluice.model.lora_files import check_fits, read_lora_dir

PATH = "model.layers.0.self_attn.q_proj"
SHAPES = {PATH: (16, 32), "model.layers.0.self_attn.v_proj": (16, 8)}


def write_adapter(directory, config: dict | None = None, tensors: dict | None = None, rank: int = 4):
    directory.mkdir(exist_ok=True)
    config = dict({"peft_type": "LORA", "r": rank, "lora_alpha": 8, "target_modules": ["q_proj"], "bias": "none",
                   "use_dora": False, "modules_to_save": None, "lora_dropout": 0.1}, **(config or {}))
    (directory / "adapter_config.json").write_text(json.dumps(config))
    if tensors is None:
        tensors = {f"base_model.model.{PATH}.lora_A.weight": torch.ones(rank, 16),
                   f"base_model.model.{PATH}.lora_B.weight": torch.ones(32, rank)}
    save_file(tensors, str(directory / "adapter_model.safetensors"))
    return str(directory)


def test_a_plain_adapter_reads_with_peft_scaling_and_fits(tmp_path):
    weights = read_lora_dir("a", write_adapter(tmp_path / "a"), max_rank=16)
    assert list(weights.modules) == [PATH] and weights.rank == 4
    assert weights.modules[PATH].scale == 8 / 4  # lora_alpha / r (lora_dropout: training only)
    check_fits("a", weights, SHAPES)
    rslora = read_lora_dir("a", write_adapter(tmp_path / "b", {"use_rslora": True}), max_rank=16)
    assert rslora.modules[PATH].scale == pytest.approx(8 / math.sqrt(4))


@pytest.mark.parametrize("setting, named", [
    ({"use_dora": True}, "DoRA"),
    ({"modules_to_save": ["lm_head"]}, "modules_to_save"),
    ({"bias": "lora_only"}, "bias 'lora_only'"),
    ({"alpha_pattern": {"q_proj": 32}}, "alpha_pattern"),
    ({"peft_type": "IA3"}, "peft_type 'IA3'"),
    ({"trainable_token_indices": [1, 2]}, "trainable_token_indices"),
])
def test_a_setting_whose_math_sluice_does_not_compute_is_refused_by_name(tmp_path, setting, named):
    with pytest.raises(AdapterMisfitError, match=named) as refused:
        read_lora_dir("a", write_adapter(tmp_path / "a", setting), max_rank=16)
    assert refused.value.status == 424


@pytest.mark.parametrize("key, shape, named", [
    ("base_model.model.model.embed_tokens.lora_embedding_A", (4, 100), "lora_embedding_A"),
    (f"base_model.model.{PATH}.lora_magnitude_vector", (32,), "lora_magnitude_vector"),
    ("base_model.model.lm_head.modules_to_save.default.weight", (10, 16), "modules_to_save"),
    (f"base_model.model.{PATH}.lora_B.bias", (32,), "lora_B.bias"),
])
def test_a_tensor_that_is_no_linear_layers_lora_matrix_is_refused_by_name(tmp_path, key, shape, named):
    tensors = {f"base_model.model.{PATH}.lora_A.weight": torch.ones(4, 16),
               f"base_model.model.{PATH}.lora_B.weight": torch.ones(32, 4), key: torch.ones(shape)}
    with pytest.raises(AdapterMisfitError, match=named):
        read_lora_dir("a", write_adapter(tmp_path / "a", tensors=tensors), max_rank=16)


def test_a_rank_above_max_lora_rank_is_refused(tmp_path):
    with pytest.raises(AdapterMisfitError, match="rank 32 is greater than max_lora_rank"):
        read_lora_dir("a", write_adapter(tmp_path / "a", rank=32), max_rank=16)


def test_matrices_that_do_not_fit_the_base_model_are_refused(tmp_path):
    weights = read_lora_dir("a", write_adapter(tmp_path / "a"), max_rank=16)
    with pytest.raises(AdapterMisfitError, match="the base layer is 16 -> 64"):
        check_fits("a", weights, {PATH: (16, 64)})
    with pytest.raises(AdapterMisfitError, match="is not a linear layer of the base model"):
        check_fits("a", weights, {"model.layers.0.mlp.up_proj": (16, 32)})


def test_files_that_are_not_an_adapter_are_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(AdapterMisfitError, match="holds no adapter_config.json"):
        read_lora_dir("a", str(empty), max_rank=16)
    (empty / "adapter_config.json").write_text("not json")
    with pytest.raises(AdapterMisfitError, match="not readable JSON"):
        read_lora_dir("a", str(empty), max_rank=16)
    (empty / "adapter_config.json").write_text("{}")
    (empty / "adapter_model.bin").write_bytes(b"pickle")
    with pytest.raises(AdapterMisfitError, match="adapter_model.bin is not loaded"):
        read_lora_dir("a", str(empty), max_rank=16)
    half = {f"base_model.model.{PATH}.lora_A.weight": torch.ones(4, 16)}
    with pytest.raises(AdapterMisfitError, match="has lora_A only"):
        read_lora_dir("a", write_adapter(tmp_path / "half", tensors=half), max_rank=16)
