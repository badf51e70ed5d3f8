"""The vLLM engine's choice and its mapping of TGI requests, checked without vLLM (which its
engine module imports only inside functions): what runs on vLLM is in vllm/test_vllm_engine."""

from __future__ import annotations

import pytest
import torch

from grammar_cases import REGEX, SCHEMA
from sluice.config import Config, ConfigError
from sluice.engines import registry
from sluice.engines.vllm.params import check_request, structured_output
from sluice.errors import ValidationError
from sluice.protocols.tgi.body import parse_generate_body
from sluice.request import COMPACT_JSON, GrammarSpec, RequestLimits


def test_engine_choice_auto_is_sluice_without_cuda_and_vllm_needs_vllm_installed(tmp_path, monkeypatch):
    def config(engine: str) -> Config:
        return Config.from_environ({"HF_MODEL_ID": str(tmp_path), "SLUICE_ENGINE": engine})

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert registry.choose_engine(config("auto")) == "sluice"
    assert registry.choose_engine(config("sluice")) == "sluice"
    monkeypatch.setattr(registry.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match="SLUICE_ENGINE=vllm but vllm is not installed"):
        registry.choose_engine(config("vllm"))
    with pytest.raises(ConfigError, match="SLUICE_ENGINE must be one of auto, sluice, vllm"):
        config("tgi")


def test_the_capability_check_refuses_only_what_vllm_cannot_do():
    def parse(**parameters):
        return parse_generate_body({"inputs": "x", "parameters": parameters}, RequestLimits())

    for accepted in ({}, {"temperature": 0.7, "top_k": 5, "top_p": 0.9, "seed": 1}, {"repetition_penalty": 1.2},
                     {"frequency_penalty": 0.5}, {"typical_p": 1.0}, {"watermark": False}, {"top_n_tokens": 3}):
        check_request(parse(**accepted))
    with pytest.raises(ValidationError, match="`typical_p` is not supported by the vllm engine"):
        check_request(parse(typical_p=0.9))
    with pytest.raises(ValidationError, match="`watermark` is not supported by the vllm engine"):
        check_request(parse(watermark=True))
    check_request(parse(grammar={"type": "regex", "value": "[0-9]+"}))  # vLLM's structured outputs


def test_grammars_map_to_vllms_structured_outputs_with_sluices_compact_json():
    assert structured_output(GrammarSpec.json_schema(SCHEMA)) == {"json": dict(SCHEMA, **{"x-guidance": COMPACT_JSON})}
    assert structured_output(GrammarSpec("regex", REGEX)) == {"regex": REGEX}
    assert structured_output(GrammarSpec("lark", 'start: "a"')) == {"grammar": 'start: "a"'}
