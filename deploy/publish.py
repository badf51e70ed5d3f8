"""Publish the catalog as JumpStart metadata, so the real SageMaker SDK deploys our image.

The SDK (v2) reads ``models_manifest.json``, ``proprietary-sdk-manifest.json`` and one spec file per
``(model_id, version)`` from a content bucket (``AWS_JUMPSTART_CONTENT_BUCKET_OVERRIDE``) or from
local folders (``AWS_JUMPSTART_MANIFEST_LOCAL_ROOT_DIR_OVERRIDE`` and
``AWS_JUMPSTART_SPECS_LOCAL_ROOT_DIR_OVERRIDE``). Writing those files in JumpStart's schema, pointed
at our image, lets unchanged user code (``JumpStartModel(model_id=...).deploy()``,
``list_jumpstart_models(filter=And("task == llm", ...))``) work against Sluice. Only fields the SDK
needs (found by ablation, see the reference notes) plus the documented deploy values are written.
"""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Iterable

from deploy.artifacts import normalize_prefix
from deploy.catalog import Catalog, ModelSpec, load_catalog

MODELS_MANIFEST_KEY = "models_manifest.json"
PROPRIETARY_MANIFEST_KEY = "proprietary-sdk-manifest.json"
MIN_SDK_VERSION = "2.0.0"
IMAGE_ALIAS = "sluice_image_uri"
HUB_MODEL_MARKER = "sluice-model.json"
# The SDK indexes [0] of the proprietary manifest, so it must not be empty; this entry needs an
# SDK newer than any release, so list_jumpstart_models never shows it.
PROPRIETARY_PLACEHOLDER = {
    "model_id": "sluice-no-proprietary-models", "version": "1.0.0", "min_version": "999.0.0",
    "spec_key": "proprietary-models/sluice-no-proprietary-models/proprietary_specs_1.0.0.json"}
JSON_PREDICTOR = {"supported_content_types": ["application/json"],
                  "supported_accept_types": ["application/json"],
                  "default_content_type": "application/json",
                  "default_accept_type": "application/json"}


def spec_key(spec: ModelSpec) -> str:
    return f"community_models/{spec.model_id}/specs_v{spec.version}.json"


def artifact_key(spec: ModelSpec) -> str:
    """Where the weights live in the content bucket; hub models get a marker-only prefix."""
    return normalize_prefix(spec.artifact_key or f"sluice-models/{spec.model_id}/v{spec.version}")


def _instance_family(instance_type: str) -> str:
    return instance_type.split(".")[1]


def instance_type_variants(spec: ModelSpec, image_uri: str, regions: Iterable[str]) -> dict:
    """``hosting_instance_type_variants``: image per region, env per instance type.

    Family entries (``g5``) carry the image too, so an instance type outside the catalog list
    still resolves an image in the SDK instead of failing.
    """
    variants: dict[str, dict] = {}
    for variant in spec.instance_variants:
        variants.setdefault(_instance_family(variant.instance_type),
                            {"regional_properties": {"image_uri": f"${IMAGE_ALIAS}"}})
        entry = {"regional_properties": {"image_uri": f"${IMAGE_ALIAS}"}}
        if variant.env:
            entry["properties"] = {"environment_variables": dict(variant.env)}
        variants[variant.instance_type] = entry
    return {"regional_aliases": {region: {IMAGE_ALIAS: image_uri.format(region=region)}
                                 for region in regions},
            "variants": variants}


def build_spec(spec: ModelSpec, image_uri: str, regions: Iterable[str]) -> dict:
    """One ``specs_v<version>.json`` document in JumpStart's schema."""
    env = [{"name": name, "type": "text", "default": value, "scope": "container",
            "required_for_model_class": True} for name, value in spec.env.items()]
    deploy_kwargs = {}
    if spec.container_startup_health_check_timeout:
        deploy_kwargs["container_startup_health_check_timeout"] = \
            spec.container_startup_health_check_timeout
    if spec.model_data_download_timeout:
        deploy_kwargs["model_data_download_timeout"] = spec.model_data_download_timeout
    payloads = {name: {"content_type": p.content_type, "prompt_key": p.prompt_key,
                       "output_keys": dict(p.output_keys), "body": dict(p.body)}
                for name, p in spec.default_payloads.items()}
    return {
        "model_id": spec.model_id, "version": spec.version, "min_sdk_version": MIN_SDK_VERSION,
        "url": f"https://huggingface.co/{spec.hf_model_id}" if spec.hf_model_id else "",
        "hosting_ecr_specs": {"framework": "huggingface-llm", "framework_version": "sluice",
                              "py_version": "py311"},
        "hosting_instance_type_variants": instance_type_variants(spec, image_uri, regions),
        "hosting_prepacked_artifact_key": artifact_key(spec),
        "hosting_artifact_key": artifact_key(spec), "hosting_script_key": "",
        "hosting_use_script_uri": False,
        "inference_environment_variables": env,
        "default_inference_instance_type": spec.default_instance_type,
        "supported_inference_instance_types": list(spec.supported_instance_types),
        "deploy_kwargs": deploy_kwargs, "predictor_specs": JSON_PREDICTOR,
        "default_payloads": payloads, "inference_enable_network_isolation": False,
        "gated_bucket": False, "training_supported": False,
        "incremental_training_supported": False, "deprecated": False,
        "inference_vulnerable": False, "inference_dependencies": [],
        "inference_vulnerabilities": [], "training_vulnerable": False,
        "training_dependencies": [], "training_vulnerabilities": [],
    }


def build_documents(image_uri: str, catalog: Catalog | None = None,
                    regions: Iterable[str] | None = None,
                    model_ids: Iterable[str] | None = None) -> dict[str, bytes]:
    """Every file to publish, keyed by its S3 key / relative path."""
    catalog = catalog or load_catalog()
    regions = list(regions or catalog.regions)
    wanted = set(model_ids) if model_ids else None
    specs = [s for s in catalog.specs if wanted is None or s.model_id in wanted]
    if wanted and not specs:
        raise ValueError(f"none of {sorted(wanted)} is in the catalog")
    documents = {
        MODELS_MANIFEST_KEY: _json([{"model_id": s.model_id, "version": s.version,
                                     "min_version": MIN_SDK_VERSION, "spec_key": spec_key(s)}
                                    for s in specs]),
        PROPRIETARY_MANIFEST_KEY: _json([PROPRIETARY_PLACEHOLDER]),
    }
    for spec in specs:
        documents[spec_key(spec)] = _json(build_spec(spec, image_uri, regions))
        if not spec.has_s3_artifacts:  # SageMaker needs the mounted prefix to exist
            documents[artifact_key(spec) + HUB_MODEL_MARKER] = _json({
                "model_id": spec.model_id, "hf_model_id": spec.hf_model_id,
                "note": "weights are downloaded from the Hugging Face Hub (HF_MODEL_ID)"})
    return documents


def publish(image_uri: str, out_dir: str | Path | None = None, bucket: str | None = None,
            s3_client=None, catalog: Catalog | None = None, regions: Iterable[str] | None = None,
            model_ids: Iterable[str] | None = None) -> list[str]:
    """Write the JumpStart metadata to ``out_dir`` or ``bucket``; returns the keys written.

    ``image_uri`` may contain ``{region}`` (ECR images are regional); otherwise every region
    points at the same URI.
    """
    if (out_dir is None) == (bucket is None):
        raise ValueError("publish needs exactly one of out_dir= or bucket=")
    check_image_uri_template(image_uri)
    documents = build_documents(image_uri, catalog, regions, model_ids)
    if out_dir is not None:
        for key, body in documents.items():
            path = Path(out_dir, key)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(body)
    else:
        if s3_client is None:
            import boto3
            s3_client = boto3.client("s3")
        for key, body in documents.items():
            s3_client.put_object(Bucket=bucket, Key=key, Body=body,
                                 ContentType="application/json")
    return sorted(documents)


def check_image_uri_template(image_uri: str) -> None:
    """``{region}`` is the one placeholder: the metadata is read by any account, so ``{account}``
    (which a deploy's ``SLUICE_IMAGE_URI`` may hold, filled from STS) has no value here."""
    fields = {name for _, name, _, _ in string.Formatter().parse(image_uri) if name is not None}
    if fields - {"region"}:
        others = ", ".join("{" + name + "}" for name in sorted(fields - {"region"}))
        raise ValueError(f"--image-uri may contain {{region}} only, not {others} "
                         f"(image_uri={image_uri!r}): write the account id and the rest out")


def _json(obj) -> bytes:
    return (json.dumps(obj, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
