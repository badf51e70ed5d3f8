"""Inference components, LoRA adapters and stateful sessions through a local endpoint, with the
real boto3 clients: ``sagemaker`` for the control plane, ``sagemaker-runtime`` for invocations.

One local endpoint (the real container process, sessions enabled) serves the module: the control
plane registers an adapter component with the container's ``POST /adapters`` and sessions are the
container's own (``NEW_SESSION``), as on SageMaker.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from botocore.exceptions import ClientError

from demo.build_adapter import build_adapter
from deploy import LocalEndpoint, close_session, open_session, stream_tokens

PROMPT = {"inputs": "How do I make cheese?", "parameters": {"max_new_tokens": 12, "return_full_text": False}}
BASE = "tiny-base"


@pytest.fixture(scope="module")
def endpoint(tiny_model_dir):
    env = {"SAGEMAKER_ENABLE_STATEFUL_SESSIONS": "true", "RESPONSE_CACHE_SIZE": "0"}
    with LocalEndpoint(tiny_model_dir, endpoint_name="ic-endpoint", env=env) as local:
        yield local


@pytest.fixture(scope="module")
def control(endpoint):
    return endpoint.client("sagemaker")


@pytest.fixture(scope="module")
def runtime(endpoint):
    return endpoint.client()


@pytest.fixture(scope="module")
def base(control, endpoint):
    control.create_inference_component(
        InferenceComponentName=BASE, EndpointName=endpoint.endpoint_name, VariantName="AllTraffic",
        Specification={"ModelName": "tiny", "ComputeResourceRequirements": {"MinMemoryRequiredInMb": 512}},
        RuntimeConfig={"CopyCount": 1})
    yield BASE


def generated(runtime, endpoint_name: str, **fields) -> str:
    response = runtime.invoke_endpoint(EndpointName=endpoint_name, Body=json.dumps(PROMPT),
                                       ContentType="application/json", **fields)
    return json.loads(response["Body"].read())[0]["generated_text"]


def error_of(call) -> dict:
    with pytest.raises(ClientError) as caught:
        call()
    return caught.value.response["Error"]


def test_a_base_component_answers_as_its_endpoint_and_is_listed_and_described(control, runtime, endpoint, base):
    described = control.describe_inference_component(InferenceComponentName=base)
    assert described["InferenceComponentStatus"] == "InService"
    assert described["EndpointName"] == endpoint.endpoint_name and described["Specification"]["ModelName"] == "tiny"
    listed = control.list_inference_components(EndpointNameEquals=endpoint.endpoint_name)["InferenceComponents"]
    assert base in [item["InferenceComponentName"] for item in listed]
    assert generated(runtime, endpoint.endpoint_name, InferenceComponentName=base) == \
        generated(runtime, endpoint.endpoint_name)


def test_a_component_that_does_not_exist_is_a_validation_error(control, runtime, endpoint, base):
    error = error_of(lambda: generated(runtime, endpoint.endpoint_name, InferenceComponentName="nope"))
    assert error["Code"] == "ValidationError" and "nope" in error["Message"]
    error = error_of(lambda: control.create_inference_component(
        InferenceComponentName="orphan", EndpointName=endpoint.endpoint_name, VariantName="AllTraffic",
        Specification={"BaseInferenceComponentName": "no-such-base", "Container": {"ArtifactUrl": "/tmp"}}))
    assert error["Code"] == "ValidationException" and "no-such-base" in error["Message"]
    assert error_of(lambda: control.describe_inference_component(InferenceComponentName="nope"))["Code"] == \
        "ValidationException"


def test_an_adapter_the_container_refuses_fails_with_its_answer_and_keeps_its_base(control, runtime, endpoint, base,
                                                                                     tmp_path):
    control.create_inference_component(
        InferenceComponentName="empty-adapter", EndpointName=endpoint.endpoint_name, VariantName="AllTraffic",
        Specification={"BaseInferenceComponentName": base, "Container": {"ArtifactUrl": str(tmp_path)}})
    described = control.describe_inference_component(InferenceComponentName="empty-adapter")
    assert described["InferenceComponentStatus"] == "Failed"
    assert "registering the adapter" in described["FailureReason"]
    error = error_of(lambda: generated(runtime, endpoint.endpoint_name, InferenceComponentName="empty-adapter"))
    assert error["Code"] == "ValidationError" and "Failed" in error["Message"]
    # A base with adapters is not deleted from under them.
    error = error_of(lambda: control.delete_inference_component(InferenceComponentName=base))
    assert error["Code"] == "ValidationException" and "empty-adapter" in error["Message"]
    control.delete_inference_component(InferenceComponentName="empty-adapter")
    names = [c["InferenceComponentName"] for c in control.list_inference_components()["InferenceComponents"]]
    assert "empty-adapter" not in names and base in names


def test_an_adapter_component_answers_differently_from_its_base_until_deleted(
        control, runtime, endpoint, base, tiny_model_dir, tmp_path):
    adapter_dir = build_adapter(tiny_model_dir, tmp_path / "adapter", seed=1)
    control.create_inference_component(
        InferenceComponentName="tiny-lora", EndpointName=endpoint.endpoint_name, VariantName="AllTraffic",
        Specification={"BaseInferenceComponentName": base, "Container": {"ArtifactUrl": str(adapter_dir)}})
    described = control.describe_inference_component(InferenceComponentName="tiny-lora")
    assert described["InferenceComponentStatus"] == "InService", described.get("FailureReason")
    from_base = generated(runtime, endpoint.endpoint_name, InferenceComponentName=base)
    from_adapter = generated(runtime, endpoint.endpoint_name, InferenceComponentName="tiny-lora")
    assert from_adapter != from_base
    streamed = "".join(stream_tokens(endpoint.endpoint_name, PROMPT, inference_component_name="tiny-lora",
                                     runtime_client=runtime))
    assert streamed == from_adapter

    control.delete_inference_component(InferenceComponentName="tiny-lora")
    request = urllib.request.Request(f"{endpoint.container_url}/adapters/tiny-lora", method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as unknown:  # unregistered from the container
        urllib.request.urlopen(request, timeout=10)
    assert unknown.value.code == 404
    assert generated(runtime, endpoint.endpoint_name, InferenceComponentName=base) == from_base


def test_a_session_is_created_used_and_closed(runtime, endpoint, base):
    session = open_session(endpoint.endpoint_name, base, runtime_client=runtime)
    assert session and ";" not in session
    assert generated(runtime, endpoint.endpoint_name, InferenceComponentName=base, SessionId=session)
    assert "".join(stream_tokens(endpoint.endpoint_name, PROMPT, inference_component_name=base, session_id=session,
                                 runtime_client=runtime))
    closed = close_session(endpoint.endpoint_name, session, base, runtime_client=runtime)
    assert closed.split(";")[0].strip() == session
    error = error_of(lambda: generated(runtime, endpoint.endpoint_name, InferenceComponentName=base,
                                       SessionId=session))
    assert error["Code"] == "ModelError" and "400" in error["Message"]  # the container's: unknown session


def test_a_local_endpoint_without_a_backend_says_what_it_serves(control, endpoint):
    described = control.describe_endpoint(EndpointName=endpoint.endpoint_name)
    assert described["EndpointStatus"] == "InService"
    error = error_of(lambda: control.create_model(ModelName="m", ExecutionRoleArn="arn:aws:iam::1:role/r",
                                                  PrimaryContainer={"Image": "sluice"}))
    assert error["Code"] == "UnknownOperationException" and "inference components" in error["Message"]
