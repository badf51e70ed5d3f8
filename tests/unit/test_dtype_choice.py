"""DTYPE=auto: bf16 where the CPU multiplies bf16 natively, float32 elsewhere (what /info then
says: server/test_serving_contract)."""

from __future__ import annotations

import torch

from sluice.config import Config
from sluice.model.loading import cpu_flags, select_dtype

CPU = torch.device("cpu")


def auto(**env: str) -> Config:
    return Config.from_environ({"HF_MODEL_ID": "org/model", **env})


def test_auto_picks_bf16_on_a_cpu_with_avx512_bf16_or_amx():
    for flags in ({"avx512f", "avx512_bf16"}, {"amx_bf16", "amx_tile"}):
        dtype, reason = select_dtype(auto(), CPU, frozenset(flags))
        assert dtype == torch.bfloat16 and "native bf16" in reason


def test_auto_keeps_float32_on_a_cpu_that_would_emulate_bf16():
    dtype, reason = select_dtype(auto(), CPU, frozenset({"avx2", "avx512f", "avx512bw"}))
    assert dtype == torch.float32 and "without native bf16" in reason


def test_an_explicit_dtype_wins_and_is_named_as_the_reason():
    assert select_dtype(auto(DTYPE="float32"), CPU, frozenset({"avx512_bf16"})) == (torch.float32, "DTYPE=float32")


def test_cpu_flags_are_read_from_the_first_flags_line(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nflags\t\t: fpu sse2 avx512_bf16\n\nflags\t\t: amx_bf16\n")
    assert cpu_flags(str(cpuinfo)) == frozenset({"fpu", "sse2", "avx512_bf16"})
    assert cpu_flags(str(tmp_path / "missing")) == frozenset()
