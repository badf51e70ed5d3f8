"""Read-only routes: ``/info`` (TGI's ``Info``), ``/v1/models``, ``/tokenize`` and ``/metrics``."""

from __future__ import annotations

from flask import Response

from .. import __version__
from ..config import Config
from ..protocols.tgi.body import body_inputs
from ..serving.service import GenerationService
from .json_io import json_response


def info(service: GenerationService, config: Config) -> Response:
    limits = service.validator.limits
    engine = service.describe()
    return json_response({
        "model_id": config.model_id, "model_sha": None, "model_pipeline_tag": None,
        "model_dtype": engine["model_dtype"], "model_device_type": engine["model_device_type"],
        "model_dtype_reason": engine.get("model_dtype_reason"),
        "model_linear_kernels": engine.get("model_linear_kernels"),
        "fused_prefill": engine.get("fused_prefill"),
        "engine_core": engine.get("engine_core"),  # vLLM: "own process" or "worker process"
        "max_concurrent_requests": config.max_concurrent_requests, "max_best_of": service.limits.max_best_of,
        "max_stop_sequences": service.limits.max_stop_sequences, "max_input_tokens": limits.max_input_tokens,
        "max_input_length": limits.max_input_tokens, "max_total_tokens": limits.max_total_tokens,
        "max_batch_total_tokens": engine["max_batch_total_tokens"],
        "max_batch_prefill_tokens": engine["max_batch_prefill_tokens"], "max_batch_size": engine["max_batch_size"],
        "max_lora_adapters": engine.get("max_lora_adapters", 0), "max_lora_rank": config.max_lora_rank,
        "validation_workers": 1, "max_client_batch_size": service.limits.max_client_batch_size,
        "router": "sluice", "engine": engine["engine"], "version": __version__, "sha": None,
        "docker_label": None,
        # Which `grammar` types (and OpenAI `response_format`/`tools`) this server enforces.
        "grammar_support": service.grammars is not None,
        "grammar_types": ["json", "json_object", "json_schema", "regex"] if service.grammars else [],
    })


def models(config: Config, service: GenerationService | None = None) -> Response:
    """TGI's shape, under the name OpenAI answers carry (``/info`` keeps the full ``model_id``),
    then each registered LoRA adapter with the base as its ``parent`` (as vLLM lists them)."""
    name = config.served_model_name
    data = [{"id": name, "object": "model", "created": 0, "owned_by": name}]
    for record in service.adapters.records() if service is not None else ():
        data.append({"id": record.ref.name, "object": "model", "created": 0, "owned_by": name, "parent": name})
    return json_response({"object": "list", "data": data})


def tokenize(service: GenerationService, body) -> Response:
    """TGI's ``/tokenize``: each prompt token with its text and character offsets."""
    text = body_inputs(body)
    encoded = service.tokenizer(text, return_offsets_mapping=True, add_special_tokens=True)
    return json_response([{"id": token_id, "text": text[start:stop], "start": start, "stop": stop}
                          for token_id, (start, stop)
                          in zip(encoded["input_ids"], encoded["offset_mapping"], strict=True)])


def metrics(service: GenerationService | None) -> Response:
    body = service.metrics.render() if service is not None else b""
    return Response(body, content_type="text/plain; version=0.0.4; charset=utf-8")
