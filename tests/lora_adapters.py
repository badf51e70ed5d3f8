"""A PEFT LoRA adapter directory for a demo model, made offline for the inference-component tests.

What ``peft`` writes for a Llama model (``adapter_config.json`` + ``adapter_model.safetensors``
with ``base_model.model.<module>.lora_A/lora_B.weight``), with a non-zero B so that the adapter
changes the model's answers. Import ``build_lora_adapter`` by name (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import json
from pathlib import Path

TARGET_MODULES = ("q_proj", "v_proj")


def build_lora_adapter(model_dir: str | Path, out_dir: str | Path, rank: int = 4, seed: int = 0,
                       scale: float = 1.0) -> Path:
    import torch
    from safetensors.torch import save_file

    config = json.loads(Path(model_dir, "config.json").read_text())
    hidden, heads = config["hidden_size"], config["num_attention_heads"]
    head_dim = config.get("head_dim") or hidden // heads
    outputs = {"q_proj": heads * head_dim, "v_proj": config.get("num_key_value_heads", heads) * head_dim}
    generator = torch.Generator().manual_seed(seed)
    tensors = {}
    for layer in range(config["num_hidden_layers"]):
        for module in TARGET_MODULES:
            prefix = f"base_model.model.model.layers.{layer}.self_attn.{module}"
            tensors[f"{prefix}.lora_A.weight"] = torch.randn(rank, hidden, generator=generator) * scale
            tensors[f"{prefix}.lora_B.weight"] = torch.randn(outputs[module], rank, generator=generator) * scale
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_file({name: tensor.contiguous() for name, tensor in tensors.items()}, str(out / "adapter_model.safetensors"))
    (out / "adapter_config.json").write_text(json.dumps({
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": rank, "lora_alpha": 2 * rank, "lora_dropout": 0.0,
        "target_modules": list(TARGET_MODULES), "bias": "none", "fan_in_fan_out": False, "inference_mode": True,
        "base_model_name_or_path": str(model_dir)}, indent=1))
    return out
