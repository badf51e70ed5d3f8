"""The real SageMaker SDK v3 deploys Sluice's catalog and streams from it, all on this machine.

moto is the AWS account (S3 holds the published catalog and the demo model's files; models and
endpoint configs live in its SageMaker), and a local runtime serves the ``sagemaker-runtime`` API
and the control-plane operations moto lacks: endpoints whose models start as real container
processes, inference components, adapters. The SDK reaches both through
``AWS_ENDPOINT_URL_SAGEMAKER`` and ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``, exactly as user code
would; nothing leaves 127.0.0.1 (a socket guard fails the test otherwise).
"""

from __future__ import annotations

import importlib.util
import json

import boto3
import pytest

from aws_fixtures import REGION, ROLE
from demo.build_adapter import build_adapter
from deploy import TokenIterator, stream_tokens
from deploy.artifacts import upload_model_dir
from deploy.catalog import get_model_spec
from deploy.filters import And as OurAnd
from deploy.filters import list_jumpstart_models as our_list_jumpstart_models
from deploy.local import LocalRuntime, ping_status
from deploy.publish import publish

# Not imported here: sagemaker v3 needs a region at import, which the fixtures set.
pytestmark = pytest.mark.skipif(importlib.util.find_spec("sagemaker.serve") is None,
                                reason="the real SDK v3 is a test dependency (requirements/dev.txt)")

CONTENT_BUCKET = "sluice-jumpstart-content"
IMAGE = "111122223333.dkr.ecr.{region}.amazonaws.com/sluice:0.1.0"
DEMO = "huggingface-llm-sluice-demo-tiny"
INSTANCE_TYPE = "ml.m5.xlarge"  # the demo model's default: a CPU instance
PROMPT = {"inputs": "How do I make cheese?", "parameters": {"max_new_tokens": 12, "return_full_text": False}}
TELEMETRY_OPT_OUT = ("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
                     "      TelemetryOptOut: true\n")
# sagemaker-core 2.27 raises this for every stream, AWS's included (see deploy/endpoint_stream.py).
SDK_STREAM_FAILURE = "'EventStream' object has no attribute 'get'"


@pytest.fixture
def moto_as_sdk_v3_reads_it(monkeypatch):
    """moto 5.2.5 describes a model without a VPC and an endpoint without data capture as ``{}``,
    which sagemaker-core's models reject (their fields are required): leave empty ones out, as
    SageMaker does. It also requires a model in every production variant, which an endpoint
    config for inference components has not: check only the variants that name one."""
    from moto.sagemaker.models import FakeEndpoint, Model, SageMakerModelBackend

    for cls in (Model, FakeEndpoint):
        described = cls.response_object.fget
        monkeypatch.setattr(cls, "response_object", property(
            lambda self, described=described: {k: v for k, v in described(self).items() if v != {}}))
    validate = SageMakerModelBackend.validate_production_variants
    monkeypatch.setattr(SageMakerModelBackend, "validate_production_variants",
                        lambda self, variants: validate(self, [v for v in variants if "ModelName" in v]))


@pytest.fixture
def sdk(aws, tmp_path, loopback_only, current_instance_types, moto_as_sdk_v3_reads_it, tiny_model_dir):
    """The catalog and the demo model in moto's S3, a local runtime with moto behind it, and the
    SDK configured as a user would: environment variables only."""
    config = tmp_path / "sagemaker-config.yaml"
    config.write_text(TELEMETRY_OPT_OUT)
    aws.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
    aws.setenv("SAGEMAKER_VALIDATE_ROLE", "false")  # moto has no iam:SimulatePrincipalPolicy
    aws.setenv("AWS_JUMPSTART_CONTENT_BUCKET_OVERRIDE", CONTENT_BUCKET)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=CONTENT_BUCKET)
    publish(IMAGE, bucket=CONTENT_BUCKET, s3_client=s3)
    upload_model_dir(tiny_model_dir, CONTENT_BUCKET, get_model_spec(DEMO, "1.0.0").artifact_key, s3_client=s3)
    runtime = LocalRuntime(backend=boto3.Session(region_name=REGION)).start()
    aws.setenv("AWS_ENDPOINT_URL_SAGEMAKER", runtime.url)
    aws.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
    from sagemaker.core.jumpstart.accessors import JumpStartModelsAccessor
    from sagemaker.core.utils.utils import SageMakerClient

    JumpStartModelsAccessor.reset_cache()  # per-process caches: manifests, and clients bound to old URLs
    SageMakerClient.reset()
    try:
        yield runtime
    finally:
        runtime.stop()
        JumpStartModelsAccessor.reset_cache()
        SageMakerClient.reset()


def builder_for(model_id: str, instance_type: str, **options):
    from sagemaker.core.jumpstart.configs import JumpStartConfig
    from sagemaker.core.training.configs import Compute
    from sagemaker.serve import ModelBuilder

    return ModelBuilder.from_jumpstart_config(JumpStartConfig(model_id=model_id, model_version="1.0.0"),
                                              compute=Compute(instance_type=instance_type), role_arn=ROLE, **options)


def builder(**options):
    return builder_for(DEMO, INSTANCE_TYPE, **options)


def text_of(answer) -> str:
    return json.loads(answer.body.read())[0]["generated_text"]


def test_sdk_v3_lists_our_models_with_the_blog_filter(sdk):
    from sagemaker.core.jumpstart.filters import And
    from sagemaker.core.jumpstart.notebook_utils import list_jumpstart_models

    listed = list_jumpstart_models(filter=And("task == llm", "framework == huggingface"))
    assert listed == our_list_jumpstart_models(filter=OurAnd("task == llm", "framework == huggingface"))
    assert DEMO in listed and "sluice-no-proprietary-models" not in list_jumpstart_models()


def test_model_builder_deploys_a_catalog_model_that_invokes_and_streams_here(sdk):
    model_builder = builder()
    model = model_builder.build()
    assert model.primary_container.image == IMAGE.format(region=REGION)
    assert model.primary_container.model_data_source.s3_data_source.s3_uri == \
        f"s3://{CONTENT_BUCKET}/{get_model_spec(DEMO, '1.0.0').artifact_key}"
    endpoint = model_builder.deploy(wait=False)
    endpoint.wait_for_status("InService", poll=1, timeout=180)

    text = text_of(endpoint.invoke(body=json.dumps(PROMPT), content_type="application/json"))
    assert text
    assert "".join(stream_tokens(endpoint, PROMPT)) == text
    runtime = boto3.client("sagemaker-runtime", region_name=REGION)
    response = runtime.invoke_endpoint_with_response_stream(
        EndpointName=endpoint.endpoint_name, Body=json.dumps({**PROMPT, "stream": True}),
        ContentType="application/json")
    assert "".join(TokenIterator(response["Body"])) == text

    container_url = sdk.control_plane.endpoints[endpoint.endpoint_name].container_url
    endpoint.delete()
    assert ping_status(container_url) is None  # deleting the endpoint stopped its container


def test_the_sdks_own_stream_fails_on_botocores_event_stream(server, aws_env):
    """Pinned: the day sagemaker-core parses streams, this fails and the docs' workaround can go.
    Any stream fails (the transform runs before a byte is read), so the shared server will do."""
    with LocalRuntime(endpoints={"sluice-test": server.url}) as runtime:
        aws_env.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", runtime.url)
        from sagemaker.core.resources import Endpoint
        from sagemaker.core.utils.utils import SageMakerClient

        SageMakerClient.reset()
        try:
            endpoint = Endpoint(endpoint_name="sluice-test")
            assert text_of(endpoint.invoke(body=json.dumps(PROMPT), content_type="application/json"))
            with pytest.raises(AttributeError, match=SDK_STREAM_FAILURE):
                endpoint.invoke_with_response_stream(body=json.dumps({**PROMPT, "stream": True}),
                                                     content_type="application/json")
            assert "".join(stream_tokens(endpoint, PROMPT))  # what the docs use instead
        finally:
            SageMakerClient.reset()


def test_the_sdks_line_iterator_reads_the_stream_as_sse_lines(server, aws_env):
    """sagemaker-core's own iterator works on boto3's stream: it splits lines (joining parts), and
    leaves the SSE framing to the caller; `TokenIterator` yields the same text as tokens."""
    from sagemaker.core.iterators import LineIterator

    with LocalRuntime(endpoints={"sluice-test": server.url}) as runtime:
        client = boto3.client("sagemaker-runtime", endpoint_url=runtime.url, region_name=REGION)

        def stream():
            return client.invoke_endpoint_with_response_stream(
                EndpointName="sluice-test", Body=json.dumps({**PROMPT, "stream": True}),
                ContentType="application/json")["Body"]

        lines = [line for line in LineIterator(stream()) if line.startswith(b"data:")]
        events = [json.loads(line[len(b"data:"):]) for line in lines]
        from_lines = "".join(event["token"]["text"] for event in events if not event["token"]["special"])
        assert from_lines and from_lines == "".join(TokenIterator(stream()))


def deploy_with_a_base_component(sdk, **env):
    """ModelBuilder's inference-component deploy: an endpoint without a model, and the model as
    the component ``tiny-base``, whose container the local control plane starts."""
    from sagemaker.core.inference_config import ResourceRequirements
    from sagemaker.core.resources import InferenceComponent

    model_builder = builder(env_vars=env)
    model_builder.build()
    endpoint = model_builder.deploy(wait=False, inference_config=ResourceRequirements(requests={"memory": 1024}),
                                    inference_component_name="tiny-base")
    base = InferenceComponent.get("tiny-base")
    base.wait_for_status("InService", poll=1, timeout=180)
    endpoint.wait_for_status("InService", poll=1, timeout=60)
    return endpoint, base


def invoke_text(endpoint, body=PROMPT, **fields) -> str:
    return text_of(endpoint.invoke(body=json.dumps(body), content_type="application/json", **fields))


def test_an_inference_component_deploy_invokes_streams_and_deletes(sdk):
    from sagemaker.core.resources import InferenceComponent

    endpoint, base = deploy_with_a_base_component(sdk)
    with pytest.raises(Exception, match="Inference Component Name header is required"):
        invoke_text(endpoint)  # an endpoint of components needs one named
    from_base = invoke_text(endpoint, inference_component_name="tiny-base")
    assert from_base
    assert "".join(stream_tokens(endpoint, PROMPT, inference_component_name="tiny-base")) == from_base

    container_url = sdk.control_plane.components["tiny-base"].container_url
    base.delete()
    assert list(InferenceComponent.get_all(endpoint_name_equals=endpoint.endpoint_name)) == []
    assert ping_status(container_url) is None  # the component's container stopped with it
    endpoint.delete()


def test_an_adapter_component_and_a_session_through_the_sdk(sdk, tmp_path, tiny_model_dir):
    from sagemaker.core.resources import InferenceComponent
    from sagemaker.core.shapes import InferenceComponentContainerSpecification, InferenceComponentSpecification

    endpoint, base = deploy_with_a_base_component(sdk, SAGEMAKER_ENABLE_STATEFUL_SESSIONS="true")
    try:
        from_base = invoke_text(endpoint, inference_component_name="tiny-base")
        adapter_dir = build_adapter(tiny_model_dir, tmp_path / "adapter", seed=1)
        url = upload_model_dir(adapter_dir, CONTENT_BUCKET, "adapters/tiny-lora",
                               s3_client=boto3.client("s3", region_name=REGION))
        adapter = InferenceComponent.create(
            inference_component_name="tiny-lora", endpoint_name=endpoint.endpoint_name, variant_name="AllTraffic",
            specification=InferenceComponentSpecification(
                base_inference_component_name="tiny-base",
                container=InferenceComponentContainerSpecification(artifact_url=url)))
        adapter.wait_for_status("InService", poll=1, timeout=60)
        from_adapter = invoke_text(endpoint, inference_component_name="tiny-lora")
        assert from_adapter != from_base
        assert "".join(stream_tokens(endpoint, PROMPT, inference_component_name="tiny-lora")) == from_adapter

        opened = endpoint.invoke(body=json.dumps({"requestType": "NEW_SESSION"}), content_type="application/json",
                                 inference_component_name="tiny-base", session_id="NEW_SESSION")
        session = opened.new_session_id.split(";")[0]
        assert invoke_text(endpoint, inference_component_name="tiny-base", session_id=session)
        closed = endpoint.invoke(body=json.dumps({"requestType": "CLOSE"}), content_type="application/json",
                                 inference_component_name="tiny-base", session_id=session)
        assert closed.closed_session_id.split(";")[0] == session
        adapter.delete()
        assert [c.inference_component_name for c in InferenceComponent.get_all()] == ["tiny-base"]
    finally:
        endpoint.delete()  # and with it every component and container it started


def test_a_model_that_needs_the_hub_fails_its_endpoint_with_the_reason(sdk):
    """No hub at run time: a catalog model downloaded from the Hugging Face Hub cannot start here,
    and the endpoint says why instead of hanging in Creating."""
    from sagemaker.core.resources import Endpoint

    model_builder = builder_for("huggingface-llm-falcon-7b-instruct-bf16", "ml.g5.2xlarge")
    model_builder.build()
    endpoint = model_builder.deploy(wait=False)
    with pytest.raises(Exception, match="Hugging Face Hub"):
        endpoint.wait_for_status("InService", poll=1, timeout=60)
    assert Endpoint.get(endpoint.endpoint_name).endpoint_status == "Failed"
    endpoint.delete()
