"""The ``sagemaker`` control plane of a local endpoint: inference components, and endpoints whose
containers run on this machine.

moto has no inference components, and no AWS service starts a container on this machine, so the
local runtime serves these operations itself, on its own port: point boto3 (or the SDK v3) at it
with ``AWS_ENDPOINT_URL_SAGEMAKER`` beside ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``. What it does:

- ``Create/Describe/List/DeleteInferenceComponent``. A base component serves its endpoint's
  container, or starts its model's container (``Specification.ModelName``, described by the
  backend) on an endpoint that hosts components only. An adapter component
  (``BaseInferenceComponentName`` + ``Container.ArtifactUrl``, an ``s3://`` URL or a local path)
  is fetched and registered in the base's container with ``POST /adapters``; deleting it sends
  ``DELETE /adapters/{name}``.
- ``CreateEndpoint`` is passed to the backend, then the endpoint's model (if its config names one)
  starts in a container here; ``DescribeEndpoint`` reports ``Creating`` until it answers ``/ping``.
  ``DeleteEndpoint`` stops what the endpoint started.
- Every other operation goes to the backend: a boto3 session (moto's in-process AWS in the tests,
  or a real account). Without one, the local endpoint serves only its own endpoints and components.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading

from deploy.artifacts import fetch_artifact
from deploy.local.adapters import (
    ADAPTER_IDENTIFIER_HEADER,
    INFERENCE_COMPONENT_HEADER,
    AdapterRequestFailed,
    register_adapter,
    unregister_adapter,
)
from deploy.local.aws_json import ApiError
from deploy.local.backend import Backend
from deploy.local.provisioning import ModelContainer, ProvisioningError
from deploy.local.records import (
    CREATING,
    DEFAULT_VARIANT,
    FAILED,
    IN_SERVICE,
    LOCAL_ACCOUNT,
    ComponentRecord,
    EndpointRecord,
    arn,
)

log = logging.getLogger(__name__)


class Route:
    """Where one runtime request goes: a container URL, the headers SageMaker adds, and the
    production variant that answers (``InvokedProductionVariant``, what ``TargetVariant`` must name)."""

    def __init__(self, container_url: str, headers: dict[str, str] | None = None, variant: str = DEFAULT_VARIANT):
        self.container_url, self.headers, self.variant = container_url, dict(headers or {}), variant


def not_found(kind: str, resource_arn: str) -> ApiError:
    return ApiError("ValidationException", f'Could not find {kind} "{resource_arn}".')


class ControlPlane:
    """Endpoints and inference components of one local runtime; thread-safe."""

    def __init__(self, region: str = "us-east-1", backend: Backend | None = None, checkout=None):
        self.region, self.backend, self.checkout = region, backend, checkout
        self.endpoints: dict[str, EndpointRecord] = {}
        self.components: dict[str, ComponentRecord] = {}
        self._lock = threading.RLock()

    # -- what the runtime asks ------------------------------------------------------------------
    def add_local_endpoint(self, name: str, container_url: str) -> None:
        with self._lock:
            self.endpoints[name] = EndpointRecord(name, arn(self.region, LOCAL_ACCOUNT, "endpoint", name),
                                                  container_url.rstrip("/"))

    def route(self, endpoint_name: str, component_name: str | None) -> Route:
        """The container of an invocation, or the runtime's ``ValidationError``."""
        with self._lock:
            endpoint = self.endpoints.get(endpoint_name)
            if endpoint is None:
                raise ApiError("ValidationError", f"Endpoint {endpoint_name} of account {LOCAL_ACCOUNT} not found.")
            if endpoint.status != IN_SERVICE:
                raise ApiError("ValidationError", f"Endpoint {endpoint_name} is {endpoint.status}, not InService.")
            if not component_name:
                if endpoint.container_url is None:
                    raise ApiError("ValidationError", "Inference Component Name header is required for endpoints to "
                                   "which you plan to deploy inference components. Please include Inference Component "
                                   "Name header or consider using SageMaker models.")
                return Route(endpoint.container_url, variant=endpoint.variant_name)
            component = self.components.get(component_name)
            if component is None or component.endpoint_name != endpoint_name:
                raise ApiError("ValidationError", f"Inference Component {component_name} not found on endpoint "
                               f"{endpoint_name}.")
            if component.status != IN_SERVICE:
                raise ApiError("ValidationError", f"Inference Component {component_name} is {component.status}"
                               + (f": {component.failure_reason}" if component.failure_reason else "."))
            headers = {INFERENCE_COMPONENT_HEADER: component.name}
            if component.is_adapter:
                headers[ADAPTER_IDENTIFIER_HEADER] = component.name
                return Route(self.components[component.base_name].container_url, headers, component.variant_name)
            return Route(component.container_url, headers, component.variant_name)

    def shutdown(self) -> None:
        """Stop every container this control plane started."""
        with self._lock:
            records = list(self.components.values()) + list(self.endpoints.values())
            self.components.clear()
            self.endpoints.clear()
        for record in records:
            if record.container is not None:
                record.container.stop()

    # -- operations -----------------------------------------------------------------------------
    def handle(self, operation: str, params: dict) -> dict:
        handler = getattr(self, f"_op_{operation}", None)
        if handler is not None:
            return handler(params)
        if self.backend is None:
            raise self._no_backend(operation)
        return self.backend.call(operation, params)

    @staticmethod
    def _no_backend(operation: str) -> ApiError:
        return ApiError("UnknownOperationException", f"{operation} is not served by a local endpoint without an "
                        "AWS backend: it serves its own endpoints (Describe/ListEndpoints) and inference "
                        "components (Create/Describe/List/DeleteInferenceComponent).")

    def _account(self, endpoint: EndpointRecord) -> str:
        return endpoint.arn.split(":")[4]

    def _endpoint(self, name: str) -> EndpointRecord:
        endpoint = self.endpoints.get(name)
        if endpoint is None:
            raise not_found("endpoint", arn(self.region, LOCAL_ACCOUNT, "endpoint", name))
        return endpoint

    # endpoints
    def _op_CreateEndpoint(self, params: dict) -> dict:
        if self.backend is None:
            raise self._no_backend("CreateEndpoint")
        result = self.backend.call("CreateEndpoint", params)
        config = self.backend.call("DescribeEndpointConfig", {"EndpointConfigName": params["EndpointConfigName"]})
        variant = (config.get("ProductionVariants") or [{}])[0]
        model_name = variant.get("ModelName")
        record = EndpointRecord(params["EndpointName"], result["EndpointArn"], local_only=False,
                                config_name=params["EndpointConfigName"], status=CREATING if model_name else IN_SERVICE,
                                variant_name=variant.get("VariantName", DEFAULT_VARIANT))
        with self._lock:
            self.endpoints[record.name] = record
        if model_name:
            self._start_model(model_name, record)
        return result

    def _op_DescribeEndpoint(self, params: dict) -> dict:
        name = params.get("EndpointName", "")
        with self._lock:
            endpoint = self.endpoints.get(name)
        if endpoint is not None and endpoint.local_only:
            return endpoint.describe()
        if self.backend is None:
            raise not_found("endpoint", arn(self.region, LOCAL_ACCOUNT, "endpoint", name))
        answer = self.backend.call("DescribeEndpoint", params)
        if endpoint is not None:  # the backend knows nothing of the container's state
            answer["EndpointStatus"] = endpoint.status
            if endpoint.failure_reason:
                answer["FailureReason"] = endpoint.failure_reason
        return answer

    def _op_ListEndpoints(self, params: dict) -> dict:
        with self._lock:
            local = [e.summary() for e in self.endpoints.values() if e.local_only]
        if self.backend is None:
            return {"Endpoints": local}
        answer = self.backend.call("ListEndpoints", params)
        answer["Endpoints"] = local + answer.get("Endpoints", [])
        return answer

    def _op_DeleteEndpoint(self, params: dict) -> dict:
        name = params.get("EndpointName", "")
        with self._lock:
            endpoint = self.endpoints.get(name)
            if endpoint is not None and endpoint.local_only:
                raise ApiError("ValidationException", f"{name} is a local endpoint: it stops with the process that "
                               "serves it (Ctrl-C, or delete_endpoint() of its Predictor).")
            components = [c for c in self.components.values() if c.endpoint_name == name]
            for component in components:
                del self.components[component.name]
            self.endpoints.pop(name, None)
        for record in [*components, *([endpoint] if endpoint else [])]:
            if record.container is not None:
                record.container.stop()
        if self.backend is None:
            raise not_found("endpoint", arn(self.region, LOCAL_ACCOUNT, "endpoint", name))
        return self.backend.call("DeleteEndpoint", params)

    def _start_model(self, model_name: str, record) -> None:
        """Start ``model_name``'s container for ``record`` (an endpoint or a base component) in the
        background: SageMaker answers at once and reports ``Creating`` until the model is up."""
        def provision() -> None:
            try:
                model = self.backend.call("DescribeModel", {"ModelName": model_name})
                container = ModelContainer(model, self.backend.s3_client(), self.checkout).start()
            except (ProvisioningError, ApiError) as error:
                log.warning("local endpoint: %s failed: %s", record.name, error)
                record.set_status(FAILED, str(error))
                return
            with self._lock:
                alive = self.endpoints.get(record.name) is record or self.components.get(record.name) is record
                if alive:
                    record.container, record.container_url = container, container.url
                    record.set_status(IN_SERVICE)
            if not alive:  # deleted while it was starting
                container.stop()

        threading.Thread(target=provision, name=f"provision-{record.name}", daemon=True).start()

    # inference components
    def _op_CreateInferenceComponent(self, params: dict) -> dict:
        name, endpoint_name = params["InferenceComponentName"], params["EndpointName"]
        spec = params.get("Specification") or {}
        with self._lock:
            endpoint = self._endpoint(endpoint_name)
            account = self._account(endpoint)
            if name in self.components:
                raise ApiError("ValidationException", "Cannot create already existing inference component "
                               f'"{arn(self.region, account, "inference-component", name)}".')
            record = ComponentRecord(name, arn(self.region, account, "inference-component", name), endpoint_name,
                                     endpoint.arn, params.get("VariantName", DEFAULT_VARIANT), spec,
                                     params.get("RuntimeConfig") or {})
            base = self._base_of(record) if record.is_adapter else None
            self.components[name] = record
        if base is not None:
            self._register_adapter(record, base)
        elif endpoint.container_url is not None:  # the endpoint's own model serves the component
            record.container_url = endpoint.container_url
            record.set_status(IN_SERVICE)
        elif spec.get("ModelName") and self.backend is not None:
            self._start_model(spec["ModelName"], record)
        else:
            record.set_status(FAILED, "a base inference component on a local endpoint needs Specification.ModelName "
                              "of a model whose data the local endpoint can fetch")
        return {"InferenceComponentArn": record.arn}

    def _base_of(self, record: ComponentRecord) -> ComponentRecord:
        base = self.components.get(record.base_name)
        if base is None or base.endpoint_name != record.endpoint_name:
            raise not_found("inference component", arn(self.region, LOCAL_ACCOUNT, "inference-component",
                                                        record.base_name))
        if base.is_adapter:
            raise ApiError("ValidationException", f"{base.name} is an adapter component: an adapter's base must be a "
                           "base inference component.")
        if base.status != IN_SERVICE:
            raise ApiError("ValidationException", f"The base inference component {base.name} is {base.status}.")
        if not (record.specification.get("Container") or {}).get("ArtifactUrl"):
            raise ApiError("ValidationException", "An adapter inference component needs Specification.Container."
                           "ArtifactUrl (the adapter's s3:// URL or, locally, a path).")
        return base

    def _register_adapter(self, record: ComponentRecord, base: ComponentRecord) -> None:
        """Fetch the adapter and register it in the base's container under the component's name."""
        url = record.specification["Container"]["ArtifactUrl"]
        staging = tempfile.mkdtemp(prefix="sluice-adapter-")
        try:
            src = fetch_artifact(url, staging, self.backend.s3_client() if self.backend else None)
            register_adapter(base.container_url, record.name, str(src))
        except (OSError, ValueError, AdapterRequestFailed) as error:
            shutil.rmtree(staging, ignore_errors=True)
            record.set_status(FAILED, f"registering the adapter from {url} failed: {error}")
            return
        record.adapter_dir, record.container_url = staging, base.container_url
        record.set_status(IN_SERVICE)

    def _component(self, params: dict) -> ComponentRecord:
        name = params.get("InferenceComponentName", "")
        component = self.components.get(name)
        if component is None:
            raise not_found("inference component", arn(self.region, LOCAL_ACCOUNT, "inference-component", name))
        return component

    def _op_DescribeInferenceComponent(self, params: dict) -> dict:
        with self._lock:
            return self._component(params).describe()

    def _op_ListInferenceComponents(self, params: dict) -> dict:
        filters = {"EndpointNameEquals": "endpoint_name", "VariantNameEquals": "variant_name",
                   "StatusEquals": "status"}
        with self._lock:
            found = [c for c in self.components.values()
                     if all(getattr(c, attribute) == params[key] for key, attribute in filters.items() if key in params)
                     and params.get("NameContains", "") in c.name]
        sort_key = {"Name": lambda c: c.name, "Status": lambda c: c.status}.get(params.get("SortBy"),
                                                                                 lambda c: c.created)
        found.sort(key=sort_key, reverse=params.get("SortOrder", "Descending") == "Descending")
        start = int(params.get("NextToken") or 0)
        end = start + int(params.get("MaxResults") or 100)
        answer = {"InferenceComponents": [c.summary() for c in found[start:end]]}
        if end < len(found):
            answer["NextToken"] = str(end)
        return answer

    def _op_DeleteInferenceComponent(self, params: dict) -> dict:
        with self._lock:
            component = self._component(params)
            adapters = [c.name for c in self.components.values() if c.base_name == component.name]
            if adapters:
                raise ApiError("ValidationException", f"{component.name} is the base of {', '.join(sorted(adapters))}: "
                               "delete those adapter components first.")
            del self.components[component.name]
            base = self.components.get(component.base_name) if component.is_adapter else None
        if base is not None and component.status == IN_SERVICE:
            try:
                unregister_adapter(base.container_url, component.name)
            except AdapterRequestFailed as error:  # gone already (404) or the container is down
                log.warning("local endpoint: unregistering adapter %s: %s", component.name, error)
        if component.adapter_dir:
            shutil.rmtree(component.adapter_dir, ignore_errors=True)
        if component.container is not None:
            component.container.stop()
        return {}
