"""The SageMaker SDK v3 shape, with boto3 only: ``ModelBuilder.from_jumpstart_config(...)``.

SDK v3 replaced ``JumpStartModel(...).deploy()`` with ``ModelBuilder.from_jumpstart_config(
JumpStartConfig(model_id=...), compute=Compute(instance_type=...))``, ``.build()`` and
``.deploy()`` returning an ``Endpoint`` with ``invoke`` and ``invoke_with_response_stream``. These
classes keep that shape over Sluice's catalog (the same resolution as `JumpStartModel`), so code
written for v3 runs without the SDK's gigabyte of dependencies, and their
``invoke_with_response_stream`` streams (the SDK's own fails on every stream: see
``deploy.endpoint_stream``). ``Compute(instance_type="local")`` deploys a `LocalEndpoint`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from deploy.catalog import LATEST, LOCAL_INSTANCE_TYPE
from deploy.endpoint_stream import close_session, open_session, stream_tokens
from deploy.jumpstart import JumpStartModel
from deploy.predictor import Predictor
from deploy.stream import TokenIterator

JSON = "application/json"


@dataclass(frozen=True)
class JumpStartConfig:
    """Which catalog model (``sagemaker.core.jumpstart.configs.JumpStartConfig``'s fields)."""

    model_id: str
    model_version: str = LATEST


@dataclass(frozen=True)
class Compute:
    """Where it runs (``sagemaker.core.training.configs.Compute``'s fields); ``"local"`` runs here."""

    instance_type: str | None = None
    instance_count: int = 1


@dataclass(frozen=True)
class InvokeResult:
    """InvokeEndpoint's answer, with the fields of the SDK's ``InvokeEndpointOutput`` (``body``
    is boto3's stream: ``.read()`` it once)."""

    body: object
    content_type: str | None = None
    invoked_production_variant: str | None = None
    custom_attributes: str | None = None
    new_session_id: str | None = None
    closed_session_id: str | None = None


class Endpoint:
    """A deployed endpoint in the v3 shape; ``predictor`` is the same endpoint as a `Predictor`."""

    def __init__(self, predictor: Predictor):
        self.predictor = predictor
        self.endpoint_name = predictor.endpoint_name

    def invoke(self, body, content_type: str = JSON, accept: str | None = None,
               inference_component_name: str | None = None, session_id: str | None = None,
               custom_attributes: str | None = None) -> InvokeResult:
        fields = {"Accept": accept, "InferenceComponentName": inference_component_name, "SessionId": session_id,
                  "CustomAttributes": custom_attributes}
        response = self.predictor.runtime_client.invoke_endpoint(
            EndpointName=self.endpoint_name, Body=body if isinstance(body, (bytes, str)) else json.dumps(body),
            ContentType=content_type, **{key: value for key, value in fields.items() if value is not None})
        return InvokeResult(response["Body"], response.get("ContentType"),
                            response.get("InvokedProductionVariant"), response.get("CustomAttributes"),
                            response.get("NewSessionId"), response.get("ClosedSessionId"))

    def invoke_with_response_stream(self, body, content_type: str = JSON, accept: str | None = None,
                                    inference_component_name: str | None = None, session_id: str | None = None,
                                    custom_attributes: str | None = None) -> TokenIterator:
        """Token texts as they arrive (`stream_tokens`; a dict body gets ``"stream": true``)."""
        return stream_tokens(self.endpoint_name, body, content_type, inference_component_name, session_id,
                             accept, custom_attributes, runtime_client=self.predictor.runtime_client)

    def open_session(self, inference_component_name: str | None = None) -> str:
        return open_session(self.endpoint_name, inference_component_name, self.predictor.runtime_client)

    def close_session(self, session_id: str, inference_component_name: str | None = None) -> str | None:
        return close_session(self.endpoint_name, session_id, inference_component_name, self.predictor.runtime_client)

    def delete(self) -> None:
        """Delete the endpoint, its config and its model (a local endpoint: stop it)."""
        self.predictor.delete_model()
        self.predictor.delete_endpoint()

    def __repr__(self) -> str:
        return f"Endpoint(endpoint_name={self.endpoint_name!r})"


class ModelBuilder:
    """``from_jumpstart_config`` -> ``build()`` (CreateModel) -> ``deploy()`` (an `Endpoint`)."""

    def __init__(self, model: JumpStartModel, compute: Compute):
        self.model, self.compute = model, compute
        self.model_name: str | None = None

    @classmethod
    def from_jumpstart_config(cls, jumpstart_config: JumpStartConfig, role_arn: str | None = None,
                              compute: Compute | None = None, image_uri: str | None = None,
                              env_vars: dict[str, str] | None = None, model_dir: str | os.PathLike | None = None,
                              region: str | None = None, boto_session=None) -> "ModelBuilder":
        """``model_dir``: the weights of a local deploy (else ``$SLUICE_MODEL_DIR``)."""
        compute = compute or Compute()
        model = JumpStartModel(jumpstart_config.model_id, jumpstart_config.model_version, role=role_arn,
                               image_uri=image_uri, env=env_vars, instance_type=compute.instance_type,
                               model_dir=model_dir, region=region, boto_session=boto_session)
        return cls(model, compute)

    @property
    def instance_type(self) -> str:
        return self.compute.instance_type or self.model.spec.default_instance_type

    def build(self) -> str:
        """Create the SageMaker model (nothing to create for a local deploy); returns its name."""
        if self.instance_type != LOCAL_INSTANCE_TYPE and self.model_name is None:
            self.model_name = self.model.create_model(self.instance_type)
        return self.model_name or self.model.model_id

    def deploy(self, endpoint_name: str | None = None, wait: bool = True, use_docker: bool = False) -> Endpoint:
        if self.instance_type == LOCAL_INSTANCE_TYPE:
            return Endpoint(self.model.deploy(instance_type=LOCAL_INSTANCE_TYPE, endpoint_name=endpoint_name,
                                              use_docker=use_docker))
        if self.model_name is None:
            raise ValueError("Must call build() before deploy()")
        return Endpoint(self.model.create_endpoint(self.model_name, self.instance_type, self.compute.instance_count,
                                                   endpoint_name, wait))
