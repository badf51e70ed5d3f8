"""The model catalog and the SDK filter language over it (no AWS involved)."""

from __future__ import annotations

import importlib
import json
import warnings

import pytest

from deploy.catalog import (
    CATALOG_PATH,
    Framework,
    Task,
    WildcardVersionWarning,
    catalog_from_dict,
    get_model_spec,
    load_catalog,
)
from deploy.errors import FilterSyntaxError, UnknownModelError, UnknownVersionError
from deploy.filters import And, Not, Or, list_jumpstart_models, parse_filter_string

# The model list printed by the seed blog post for And("task == llm", "framework == huggingface").
BLOG_MODELS = [
    "huggingface-llm-bilingual-rinna-4b-instruction-ppo-bf16", "huggingface-llm-falcon-180b-bf16",
    "huggingface-llm-falcon-180b-chat-bf16", "huggingface-llm-falcon-40b-bf16",
    "huggingface-llm-falcon-40b-instruct-bf16", "huggingface-llm-falcon-7b-bf16",
    "huggingface-llm-falcon-7b-instruct-bf16", "huggingface-llm-mistral-7b",
    "huggingface-llm-mistral-7b-instruct", "huggingface-llm-rinna-3-6b-instruction-ppo-bf16",
]
DEMO_MODELS = ["huggingface-llm-sluice-demo-small", "huggingface-llm-sluice-demo-tiny"]


def test_blog_filter_lists_every_blog_model_and_the_demo_models_sorted():
    assert list_jumpstart_models(filter=And("task == llm", "framework == huggingface")) == \
        sorted(BLOG_MODELS + DEMO_MODELS)


def test_every_entry_is_consistent():
    catalog = load_catalog()
    for spec in catalog.specs:
        assert spec.task is Task.LLM and spec.framework is Framework.HUGGINGFACE
        assert spec.model_id.startswith(f"{spec.framework.value}-{spec.task.value}-")
        assert spec.default_instance_type in spec.supported_instance_types, spec.model_id
        assert "HF_MODEL_ID" in spec.env
        assert (spec.env["HF_MODEL_ID"] == "/opt/ml/model") == spec.has_s3_artifacts
        assert spec.default_payloads, spec.model_id
        if spec.has_s3_artifacts:
            assert spec.artifact_key.endswith("/")



def test_unverified_markers_name_real_fields_of_their_entry():
    raw = json.loads(CATALOG_PATH.read_text(encoding="utf-8"))
    for entry in raw["models"]:
        assert set(entry["unverified"]) <= set(entry), entry["model_id"]
        assert entry["notes"], entry["model_id"]


def test_per_instance_env_overrides_model_env():
    spec = get_model_spec("huggingface-llm-falcon-40b-instruct-bf16", "1.0.0")
    assert spec.environment("ml.g5.12xlarge")["SM_NUM_GPUS"] == "4"
    assert spec.environment("ml.g5.48xlarge")["SM_NUM_GPUS"] == "8"
    assert spec.environment("ml.g5.48xlarge")["HF_MODEL_ID"] == "tiiuae/falcon-40b-instruct"


def test_wildcard_version_resolves_latest_and_warns():
    with pytest.warns(WildcardVersionWarning, match="2.0.0"):
        spec = get_model_spec("huggingface-llm-mistral-7b-instruct", "*")
    assert spec.version == "2.0.0"
    assert spec.hf_model_id == "mistralai/Mistral-7B-Instruct-v0.2"


def test_pinned_version_does_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        spec = get_model_spec("huggingface-llm-mistral-7b-instruct", "1.0.0")
    assert spec.hf_model_id == "mistralai/Mistral-7B-Instruct-v0.1"


def test_unknown_model_error_lists_close_matches():
    with pytest.raises(UnknownModelError) as info:
        get_model_spec("huggingface-llm-falcon-7b-instruct", "1.0.0")
    assert "huggingface-llm-falcon-7b-instruct-bf16" in info.value.close_matches
    assert "Did you mean" in str(info.value)


def test_unknown_version_error_lists_available_versions():
    with pytest.raises(UnknownVersionError, match="1.0.0, 2.0.0"):
        get_model_spec("huggingface-llm-mistral-7b-instruct", "9.9.9")


def test_versions_sort_numerically():
    entry = {"model_id": "huggingface-llm-x", "task": "llm", "framework": "huggingface",
             "hf_model_id": "x/x", "default_instance_type": "ml.m5.xlarge",
             "instance_types": {"ml.m5.xlarge": {}}, "env": {"HF_MODEL_ID": "x/x"}}
    catalog = catalog_from_dict({"regions": ["us-east-1"], "models": [
        dict(entry, version="1.9.0"), dict(entry, version="1.10.0")]})
    with pytest.warns(WildcardVersionWarning):
        assert catalog.get("huggingface-llm-x").version == "1.10.0"


# -- filter language ---------------------------------------------------------------------------

def test_filter_string_parses_sdk_operators():
    assert parse_filter_string("task == llm").operator.value == "equals"
    assert parse_filter_string("task != llm").operator.value == "not_equals"
    assert parse_filter_string("instance_type in [a, b]").operator.value == "in"
    assert parse_filter_string("instance_type not in [a, b]").operator.value == "not_in"
    assert parse_filter_string("model_id contains falcon").operator.value == "includes"


def test_unparseable_filter_raises_a_clear_error():
    with pytest.raises(FilterSyntaxError, match="task llm"):
        list_jumpstart_models(filter="task llm")


def test_not_equals_excludes_matching_models():
    assert list_jumpstart_models(filter="task != llm") == []
    assert list_jumpstart_models(filter=Not("task == llm")) == []


def test_in_with_unquoted_instance_type_list_matches_any_supported_type():
    result = list_jumpstart_models(filter="instance_type in [ml.p4de.24xlarge, ml.g4dn.xlarge]")
    assert result == sorted(["huggingface-llm-falcon-180b-bf16",
                             "huggingface-llm-falcon-180b-chat-bf16",
                             "huggingface-llm-rinna-3-6b-instruction-ppo-bf16", *DEMO_MODELS])


def test_not_in_is_the_complement_of_in():
    everything = set(list_jumpstart_models())
    inside = set(list_jumpstart_models(filter="instance_type in ['ml.g5.12xlarge']"))
    outside = set(list_jumpstart_models(filter="instance_type not in ['ml.g5.12xlarge']"))
    assert inside and outside
    assert inside | outside == everything and not inside & outside


def test_or_and_model_id_filters():
    result = list_jumpstart_models(filter=Or("model_id == huggingface-llm-mistral-7b",
                                             And("model_id begins with huggingface-llm-falcon-180b",
                                                 "model_id ends with chat-bf16")))
    assert result == ["huggingface-llm-falcon-180b-chat-bf16", "huggingface-llm-mistral-7b"]


def test_boolean_field_and_default_instance_filter():
    assert list_jumpstart_models(filter="default_inference_instance_type == ml.p4de.24xlarge") == \
        ["huggingface-llm-falcon-180b-bf16", "huggingface-llm-falcon-180b-chat-bf16"]
    assert "huggingface-llm-falcon-180b-bf16" in list_jumpstart_models(filter="gated == True")


def test_unknown_key_is_excluded_unless_incomplete_models_are_listed():
    assert list_jumpstart_models(filter="license == apache-2.0") == []
    assert len(list_jumpstart_models(filter="license == apache-2.0",
                                     list_incomplete_models=True)) == 12


def test_list_versions_returns_latest_unless_old_models_requested():
    mistral = "model_id == huggingface-llm-mistral-7b-instruct"
    assert list_jumpstart_models(filter=mistral, list_versions=True) == \
        [("huggingface-llm-mistral-7b-instruct", "2.0.0")]
    assert list_jumpstart_models(filter=mistral, list_versions=True, list_old_models=True) == \
        [("huggingface-llm-mistral-7b-instruct", "1.0.0"),
         ("huggingface-llm-mistral-7b-instruct", "2.0.0")]


def test_filter_results_agree_with_the_real_sdk_filter_evaluation(monkeypatch):
    """Where both languages are defined (scalar keys), our verdicts equal sagemaker's."""
    monkeypatch.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")  # SDK v3 needs one at import
    try:  # SDK v3 moved the module; v2 (.venv-sdk2) has it where the blog imports it from
        sdk_filters = importlib.import_module("sagemaker.core.jumpstart.filters")
    except ImportError:
        sdk_filters = pytest.importorskip("sagemaker.jumpstart.filters")

    cases = [("task == llm", "llm"), ("task != llm", "llm"), ("task == ic", "llm"),
             ("framework in ['huggingface', 'pytorch']", "huggingface"),
             ("framework not in ['pytorch']", "huggingface"), ("model_id contains falcon", "x-falcon"),
             ("gated == true", True), ("gated == false", True)]
    for text, value in cases:
        ours = parse_filter_string(text)
        sdk = sdk_filters.evaluate_filter_expression(sdk_filters.parse_filter_string(text), value)
        assert ours.evaluate({ours.key: value}).value == sdk.value, text
