"""The model catalog: JumpStart-style ``(model_id, version)`` entries as frozen values.

The data lives in ``catalog.json`` next to this module so it can be reviewed (and diffed) as data;
this module only turns it into immutable objects and answers lookups. A model is identified the way
the SageMaker SDK identifies it, by id and version, where version ``"*"`` means "latest" and warns,
because a deployment that silently changes when the catalog changes is hard to reproduce.
Fields that could not be verified are listed per entry in ``unverified`` instead of being guessed
silently.
"""

from __future__ import annotations

import difflib
import json
import warnings
from dataclasses import dataclass, field
from enum import Enum
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from deploy.errors import UnknownModelError, UnknownVersionError

CATALOG_PATH = Path(__file__).with_name("catalog.json")
LATEST = "*"
LOCAL_INSTANCE_TYPE = "local"


class Task(str, Enum):
    """What a model does; JumpStart encodes it as the second dash-separated part of the id."""

    LLM = "llm"


class Framework(str, Enum):
    """Where the model comes from; the first dash-separated part of a JumpStart id."""

    HUGGINGFACE = "huggingface"


class WildcardVersionWarning(UserWarning):
    """Version ``"*"`` was resolved to the latest catalog version; pin it for reproducible deploys."""


@dataclass(frozen=True)
class Payload:
    """An example request body, in JumpStart's ``default_payloads`` shape."""

    name: str
    content_type: str
    body: Mapping[str, Any]
    prompt_key: str = "inputs"
    output_keys: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    source: str = ""


@dataclass(frozen=True)
class InstanceVariant:
    """A supported instance type and the container env it needs there (e.g. ``SM_NUM_GPUS``)."""

    instance_type: str
    env: Mapping[str, str]


@dataclass(frozen=True)
class ModelSpec:
    """One catalog entry: everything needed to create a SageMaker model and endpoint for it."""

    model_id: str
    version: str
    task: Task
    framework: Framework
    hf_model_id: str | None
    default_instance_type: str
    instance_variants: tuple[InstanceVariant, ...]
    env: Mapping[str, str]
    container_startup_health_check_timeout: int | None
    model_data_download_timeout: int | None
    default_payloads: Mapping[str, Payload]
    gated: bool
    artifact_key: str | None
    demo_size: str | None = None
    upstream_versions: str | None = None
    notes: str = ""
    unverified: tuple[str, ...] = ()

    @property
    def supported_instance_types(self) -> tuple[str, ...]:
        return tuple(variant.instance_type for variant in self.instance_variants)

    @property
    def has_s3_artifacts(self) -> bool:
        """True when the weights are an S3 prefix (mounted at /opt/ml/model), not a hub download."""
        return self.artifact_key is not None

    def environment(self, instance_type: str | None = None) -> dict[str, str]:
        """Container env for ``instance_type``: the model's env overlaid with the instance's."""
        env = dict(self.env)
        for variant in self.instance_variants:
            if variant.instance_type == instance_type:
                env.update(variant.env)
        return env


def version_key(version: str) -> tuple[int, ...]:
    """Numeric sort key for ``"1.10.0"``-style versions (string order would put 1.10 before 1.9)."""
    return tuple(int(part) for part in version.split("."))


def _payloads(raw: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Payload]:
    return MappingProxyType({
        name: Payload(name=name, content_type=item["content_type"], body=item["body"],
                      prompt_key=item.get("prompt_key", "inputs"),
                      output_keys=MappingProxyType(dict(item.get("output_keys") or {})),
                      source=item.get("source", ""))
        for name, item in raw.items()})


def spec_from_dict(raw: Mapping[str, Any]) -> ModelSpec:
    """Build a ModelSpec from one ``catalog.json`` entry; unknown task/framework raise ValueError."""
    variants = tuple(InstanceVariant(instance_type, MappingProxyType(dict(env)))
                     for instance_type, env in raw["instance_types"].items())
    return ModelSpec(
        model_id=raw["model_id"], version=raw["version"], task=Task(raw["task"]),
        framework=Framework(raw["framework"]), hf_model_id=raw.get("hf_model_id"),
        default_instance_type=raw["default_instance_type"], instance_variants=variants,
        env=MappingProxyType(dict(raw["env"])),
        container_startup_health_check_timeout=raw.get("container_startup_health_check_timeout"),
        model_data_download_timeout=raw.get("model_data_download_timeout"),
        default_payloads=_payloads(raw.get("default_payloads", {})),
        gated=bool(raw.get("gated", False)), artifact_key=raw.get("artifact_key"),
        demo_size=raw.get("demo_size"), upstream_versions=raw.get("upstream_versions"),
        notes=raw.get("notes", ""), unverified=tuple(raw.get("unverified", ())))


@dataclass(frozen=True)
class Catalog:
    """All catalog entries plus the regions the published specs cover."""

    specs: tuple[ModelSpec, ...]
    regions: tuple[str, ...]

    def model_ids(self) -> list[str]:
        return sorted({spec.model_id for spec in self.specs})

    def versions(self, model_id: str) -> list[str]:
        return sorted((s.version for s in self.specs if s.model_id == model_id), key=version_key)

    def get(self, model_id: str, version: str = LATEST) -> ModelSpec:
        """The entry for ``(model_id, version)``; ``"*"`` picks the latest and warns.

        Raises UnknownModelError (with close matches) or UnknownVersionError.
        """
        versions = self.versions(model_id)
        if not versions:
            close = difflib.get_close_matches(model_id, self.model_ids(), n=3, cutoff=0.6)
            raise UnknownModelError(model_id, close)
        if version in (None, "", LATEST):
            version = versions[-1]
            warnings.warn(f"Using model {model_id!r} with wildcard version '*', resolved to "
                          f"{version!r}; pin model_version={version!r} for reproducible deploys.",
                          WildcardVersionWarning, stacklevel=2)
        for spec in self.specs:
            if spec.model_id == model_id and spec.version == version:
                return spec
        raise UnknownVersionError(model_id, version, versions)


def catalog_from_dict(raw: Mapping[str, Any]) -> Catalog:
    return Catalog(specs=tuple(spec_from_dict(item) for item in raw["models"]),
                   regions=tuple(raw["regions"]))


@lru_cache(maxsize=None)
def load_catalog(path: str | Path = CATALOG_PATH) -> Catalog:
    """The catalog shipped with the package (parsed once per process; it is immutable)."""
    with open(path, encoding="utf-8") as handle:
        return catalog_from_dict(json.load(handle))


def get_model_spec(model_id: str, version: str = LATEST) -> ModelSpec:
    """Shortcut for ``load_catalog().get(model_id, version)``."""
    return load_catalog().get(model_id, version)
