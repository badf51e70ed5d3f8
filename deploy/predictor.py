"""A handle on a deployed endpoint: invoke it, stream from it, scale it, delete it.

The same class serves a SageMaker endpoint and a `LocalEndpoint`, because the local endpoint speaks
the sagemaker-runtime API to the real boto3 client; only deletion differs (stop the local
processes instead of calling DeleteEndpoint). Clients are created lazily, so a Predictor built
from an endpoint name alone (the CLI's ``invoke``/``delete``) needs no other configuration.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from botocore.exceptions import ClientError

from deploy.stream import TokenIterator

log = logging.getLogger(__name__)

JSON = "application/json"
DEFAULT_VARIANT = "AllTraffic"
SCALABLE_DIMENSION = "sagemaker:variant:DesiredInstanceCount"
INVOCATIONS_METRIC = "SageMakerVariantInvocationsPerInstance"


class Predictor:
    """Invoke, stream from, autoscale and delete one endpoint (mirrors the SDK's Predictor)."""

    def __init__(self, endpoint_name: str, model_name: str | None = None,
                 endpoint_config_name: str | None = None, variant_name: str = DEFAULT_VARIANT,
                 boto_session=None, runtime_client=None, sagemaker_client=None,
                 autoscaling_client=None, local_endpoint=None, region: str | None = None):
        """``region``: the endpoint's, when it is not ``boto_session``'s (a model deployed with
        ``region=``); every client made here uses it."""
        self.endpoint_name = endpoint_name
        self.region = region
        self.model_name = model_name
        self.endpoint_config_name = endpoint_config_name
        self.variant_name = variant_name
        self.local_endpoint = local_endpoint
        self._session = boto_session
        self._runtime = runtime_client or (local_endpoint.client() if local_endpoint else None)
        self._sagemaker = sagemaker_client
        self._autoscaling = autoscaling_client

    # -- clients -------------------------------------------------------------------------------
    def _boto_session(self):
        if self._session is None:
            import boto3
            self._session = boto3.Session()
        return self._session

    @property
    def runtime_client(self):
        if self._runtime is None:
            self._runtime = self._boto_session().client("sagemaker-runtime", region_name=self.region)
        return self._runtime

    @property
    def sagemaker_client(self):
        if self._sagemaker is None:
            self._sagemaker = self._boto_session().client("sagemaker", region_name=self.region)
        return self._sagemaker

    @property
    def autoscaling_client(self):
        if self._autoscaling is None:
            self._autoscaling = self._boto_session().client("application-autoscaling", region_name=self.region)
        return self._autoscaling

    # -- inference -----------------------------------------------------------------------------
    def predict(self, payload: dict | str | bytes, accept: str = JSON,
                custom_attributes: str | None = None) -> Any:
        """InvokeEndpoint; a JSON response is decoded (TGI: ``[{"generated_text": ...}]``)."""
        kwargs = {"CustomAttributes": custom_attributes} if custom_attributes else {}
        response = self.runtime_client.invoke_endpoint(
            EndpointName=self.endpoint_name, Body=_encode(payload), ContentType=JSON,
            Accept=accept, **kwargs)
        body = response["Body"].read()
        if response.get("ContentType", JSON).split(";")[0].strip() == JSON:
            return json.loads(body)
        return body

    def predict_stream(self, payload: dict | str | bytes, accept: str | None = None) -> TokenIterator:
        """InvokeEndpointWithResponseStream; iterate the result for token texts as they arrive.

        ``payload`` is a dict or, as for `predict`, its JSON text; ``"stream": true`` is added (TGI
        streams only when asked). After the loop the iterator's ``generated_text`` and ``details``
        hold the final event's values.
        """
        body = {**_json_object(payload), "stream": True}
        kwargs = {"Accept": accept} if accept else {}
        response = self.runtime_client.invoke_endpoint_with_response_stream(
            EndpointName=self.endpoint_name, Body=_encode(body), ContentType=JSON, **kwargs)
        return TokenIterator(response["Body"])

    # -- autoscaling ---------------------------------------------------------------------------
    @property
    def scaling_resource_id(self) -> str:
        return f"endpoint/{self.endpoint_name}/variant/{self.variant_name}"

    def enable_autoscaling(self, min_capacity: int = 1, max_capacity: int = 2,
                           target_invocations_per_instance: float = 10.0,
                           scale_in_cooldown: int = 300, scale_out_cooldown: int = 60) -> str:
        """Register the variant with Application Auto Scaling and track invocations per instance.

        Returns the policy ARN. ``target_invocations_per_instance`` is per minute, the unit of
        SageMaker's ``InvocationsPerInstance`` metric.
        """
        if not 1 <= min_capacity <= max_capacity:
            raise ValueError(f"need 1 <= min_capacity ({min_capacity}) <= max_capacity ({max_capacity})")
        if self.local_endpoint is not None:
            raise ValueError("autoscaling needs a SageMaker endpoint, not a local one")
        self.autoscaling_client.register_scalable_target(
            ServiceNamespace="sagemaker", ResourceId=self.scaling_resource_id,
            ScalableDimension=SCALABLE_DIMENSION, MinCapacity=min_capacity, MaxCapacity=max_capacity)
        response = self.autoscaling_client.put_scaling_policy(
            PolicyName=f"{self.endpoint_name}-invocations", ServiceNamespace="sagemaker",
            ResourceId=self.scaling_resource_id, ScalableDimension=SCALABLE_DIMENSION,
            PolicyType="TargetTrackingScaling",
            TargetTrackingScalingPolicyConfiguration={
                "TargetValue": float(target_invocations_per_instance),
                "PredefinedMetricSpecification": {"PredefinedMetricType": INVOCATIONS_METRIC},
                "ScaleInCooldown": scale_in_cooldown, "ScaleOutCooldown": scale_out_cooldown})
        return response["PolicyARN"]

    def disable_autoscaling(self) -> None:
        """Deregister the variant (removes its policies too); a no-op when it is not registered."""
        registered = self.autoscaling_client.describe_scalable_targets(
            ServiceNamespace="sagemaker", ResourceIds=[self.scaling_resource_id],
            ScalableDimension=SCALABLE_DIMENSION)["ScalableTargets"]
        if registered:
            self.autoscaling_client.deregister_scalable_target(
                ServiceNamespace="sagemaker", ResourceId=self.scaling_resource_id,
                ScalableDimension=SCALABLE_DIMENSION)

    # -- clean-up ------------------------------------------------------------------------------
    def _config_name(self) -> str:
        if self.endpoint_config_name is None:
            self.endpoint_config_name = self.sagemaker_client.describe_endpoint(
                EndpointName=self.endpoint_name)["EndpointConfigName"]
        return self.endpoint_config_name

    def _model_names(self) -> list[str]:
        if self.model_name:
            return [self.model_name]
        config = self.sagemaker_client.describe_endpoint_config(
            EndpointConfigName=self._config_name())
        return [variant["ModelName"] for variant in config["ProductionVariants"]]

    def delete_model(self) -> None:
        """Delete the SageMaker model(s) behind the endpoint (call before delete_endpoint, as
        the SDK's notebooks do, or pass the names explicitly via ``model_name``)."""
        if self.local_endpoint is not None:
            return
        for name in self._model_names():
            self.sagemaker_client.delete_model(ModelName=name)

    def delete_endpoint(self, delete_endpoint_config: bool = True) -> None:
        """Delete the endpoint (and its config); for a local endpoint, stop its processes."""
        if self.local_endpoint is not None:
            self.local_endpoint.stop()
            return
        config_name = self._config_name() if delete_endpoint_config else None
        try:
            self.disable_autoscaling()
        except ClientError as error:  # e.g. no autoscaling permissions: still delete the endpoint
            log.warning("could not deregister autoscaling for %s: %s", self.endpoint_name, error)
        self.sagemaker_client.delete_endpoint(EndpointName=self.endpoint_name)
        if config_name:
            self.sagemaker_client.delete_endpoint_config(EndpointConfigName=config_name)

    def __repr__(self) -> str:
        where = "local" if self.local_endpoint is not None else "sagemaker"
        return f"Predictor(endpoint_name={self.endpoint_name!r}, {where})"


def _json_object(payload: dict | str | bytes) -> dict:
    """A payload as a dict, so ``"stream": true`` can be added to it whichever form it came in."""
    if isinstance(payload, (str, bytes)):
        payload = json.loads(payload)
    if not isinstance(payload, dict):
        raise ValueError(f"predict_stream needs a JSON object payload (TGI's {{\"inputs\": ...}}), "
                         f"got {type(payload).__name__}")
    return payload


def _encode(payload: dict | str | bytes) -> bytes:
    if isinstance(payload, bytes):
        return payload
    if isinstance(payload, str):
        return payload.encode("utf-8")
    return json.dumps(payload, ensure_ascii=False).encode("utf-8")
