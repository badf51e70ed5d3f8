"""What the local control plane knows: endpoints it routes and inference components it created.

Each record says where its requests go (``container_url``), its status as SageMaker reports it
(``Creating`` -> ``InService`` or ``Failed`` with a reason) and which container it started, if any,
so deleting it stops that container. ``describe()`` answers in the service's shapes, which the
real SDK v3 parses into its resource classes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

LOCAL_ACCOUNT = "000000000000"
DEFAULT_VARIANT = "AllTraffic"
CREATING, IN_SERVICE, FAILED = "Creating", "InService", "Failed"


def now() -> datetime:
    return datetime.now(timezone.utc)


def arn(region: str, account: str, kind: str, name: str) -> str:
    return f"arn:aws:sagemaker:{region}:{account}:{kind}/{name.lower()}"


@dataclass
class EndpointRecord:
    """An endpoint the runtime routes: a local one (``sluice-deploy local``, `LocalEndpoint`), or
    one created through the control plane whose model runs in a container started here.

    ``container_url`` is None for an endpoint that hosts inference components only: its requests
    name a component."""

    name: str
    arn: str
    container_url: str | None = None
    local_only: bool = True  # False: the AWS backend (moto, in the tests) holds its description
    config_name: str | None = None
    status: str = IN_SERVICE
    failure_reason: str | None = None
    container: object | None = None  # a container this record started (stopped with it)
    variant_name: str = DEFAULT_VARIANT  # its (only) production variant
    created: datetime = field(default_factory=now)
    modified: datetime = field(default_factory=now)

    def set_status(self, status: str, reason: str | None = None) -> None:
        self.status, self.failure_reason, self.modified = status, reason, now()

    def describe(self) -> dict:
        answer = {"EndpointName": self.name, "EndpointArn": self.arn,
                  "EndpointConfigName": self.config_name or self.name, "EndpointStatus": self.status,
                  "CreationTime": self.created, "LastModifiedTime": self.modified,
                  "ProductionVariants": [{"VariantName": self.variant_name, "CurrentInstanceCount": 1,
                                          "DesiredInstanceCount": 1, "CurrentWeight": 1.0, "DesiredWeight": 1.0}]}
        if self.failure_reason:
            answer["FailureReason"] = self.failure_reason
        return answer

    def summary(self) -> dict:
        return {key: value for key, value in self.describe().items()
                if key in ("EndpointName", "EndpointArn", "CreationTime", "LastModifiedTime", "EndpointStatus")}


@dataclass
class ComponentRecord:
    """One inference component: a base (its model's container) or an adapter (a LoRA adapter
    registered in its base's container under this component's name)."""

    name: str
    arn: str
    endpoint_name: str
    endpoint_arn: str
    variant_name: str
    specification: dict
    runtime_config: dict
    status: str = CREATING
    failure_reason: str | None = None
    container_url: str | None = None
    container: object | None = None  # a container this component started (stopped on delete)
    adapter_dir: str | None = None  # where its artifact was staged
    created: datetime = field(default_factory=now)
    modified: datetime = field(default_factory=now)

    @property
    def base_name(self) -> str | None:
        return self.specification.get("BaseInferenceComponentName")

    @property
    def is_adapter(self) -> bool:
        return self.base_name is not None

    def set_status(self, status: str, reason: str | None = None) -> None:
        self.status, self.failure_reason, self.modified = status, reason, now()

    def describe(self) -> dict:
        spec = {key: value for key, value in self.specification.items() if key != "Container"}
        container = self.specification.get("Container")
        if container:
            summary = {key: container[key] for key in ("ArtifactUrl", "Environment") if key in container}
            if container.get("Image"):
                summary["DeployedImage"] = {"SpecifiedImage": container["Image"], "ResolvedImage": container["Image"]}
            spec["Container"] = summary
        copies = int(self.runtime_config.get("CopyCount", 1))
        answer = {"InferenceComponentName": self.name, "InferenceComponentArn": self.arn,
                  "EndpointName": self.endpoint_name, "EndpointArn": self.endpoint_arn,
                  "VariantName": self.variant_name, "Specification": spec,
                  "RuntimeConfig": {"DesiredCopyCount": copies,
                                    "CurrentCopyCount": copies if self.status == IN_SERVICE else 0},
                  "CreationTime": self.created, "LastModifiedTime": self.modified,
                  "InferenceComponentStatus": self.status}
        if self.failure_reason:
            answer["FailureReason"] = self.failure_reason
        return answer

    def summary(self) -> dict:
        return {"InferenceComponentName": self.name, "InferenceComponentArn": self.arn,
                "EndpointName": self.endpoint_name, "EndpointArn": self.endpoint_arn,
                "VariantName": self.variant_name, "InferenceComponentStatus": self.status,
                "CreationTime": self.created, "LastModifiedTime": self.modified}
