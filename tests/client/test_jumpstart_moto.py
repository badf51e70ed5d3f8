"""JumpStartModel.deploy() and the Predictor against moto's in-process SageMaker (boto3 only)."""

from __future__ import annotations

import json
import warnings

import boto3
import pytest
from botocore.exceptions import ClientError

from aws_fixtures import ACCOUNT, REGION, ROLE, moto_endpoint
from deploy.artifacts import upload_model_dir
from deploy.catalog import WildcardVersionWarning
from deploy.errors import EndpointFailedError, EndpointTimeoutError, MissingConfigurationError
from deploy.jumpstart import JumpStartModel, UnsupportedInstanceTypeWarning
from deploy.predictor import Predictor
from deploy.waiter import wait_for_endpoint

IMAGE = "111122223333.dkr.ecr.us-east-1.amazonaws.com/sluice:0.1.0"
FALCON_180B = "huggingface-llm-falcon-180b-bf16"
DEMO = "huggingface-llm-sluice-demo-tiny"


def described(endpoint_name: str) -> tuple[dict, dict, dict]:
    """(endpoint, endpoint config, model) as SageMaker describes them."""
    sm = boto3.client("sagemaker", region_name=REGION)
    endpoint = sm.describe_endpoint(EndpointName=endpoint_name)
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return endpoint, config, model


def test_deploy_creates_model_config_and_endpoint_from_the_catalog(aws, current_instance_types):
    model = JumpStartModel(FALCON_180B, "1.0.0", role=ROLE, image_uri=IMAGE,
                           env={"HF_TOKEN": "hf_x", "MAX_TOTAL_TOKENS": "4096"})
    predictor = model.deploy(instance_type="ml.p5.48xlarge", endpoint_name="falcon-test",
                             initial_instance_count=2, poll_interval=0.01)

    endpoint, config, sm_model = described("falcon-test")
    assert endpoint["EndpointStatus"] == "InService"
    variant = config["ProductionVariants"][0]
    assert variant["InstanceType"] == "ml.p5.48xlarge"
    assert variant["InitialInstanceCount"] == 2
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == 3600
    assert variant["ModelDataDownloadTimeoutInSeconds"] == 3600
    container = sm_model["PrimaryContainer"]
    assert container["Image"] == IMAGE
    assert container["Environment"] == {
        "HF_MODEL_ID": "tiiuae/falcon-180B", "SM_NUM_GPUS": "8", "MAX_INPUT_LENGTH": "1024",
        "MAX_TOTAL_TOKENS": "4096", "HF_TOKEN": "hf_x"}
    assert "ModelDataSource" not in container  # hub model: the container downloads it
    assert sm_model["ExecutionRoleArn"] == ROLE
    assert predictor.endpoint_name == "falcon-test"
    assert predictor.model_name == sm_model["ModelName"]


def test_s3_model_is_mounted_as_uncompressed_prefix_with_default_ecr_image(aws):
    aws.setenv("SLUICE_ARTIFACT_BUCKET", "my-artifacts")
    predictor = JumpStartModel(DEMO, "1.0.0", role=ROLE).deploy(wait=False)

    _, config, sm_model = described(predictor.endpoint_name)
    container = sm_model["PrimaryContainer"]
    assert container["Image"] == f"{ACCOUNT}.dkr.ecr.{REGION}.amazonaws.com/sluice:latest"
    assert container["Environment"]["HF_MODEL_ID"] == "/opt/ml/model"
    assert container["ModelDataSource"] == {"S3DataSource": {
        "S3Uri": f"s3://my-artifacts/sluice-models/{DEMO}/v1.0.0/",
        "S3DataType": "S3Prefix", "CompressionType": "None"}}
    assert config["ProductionVariants"][0]["InstanceType"] == "ml.m5.xlarge"
    assert config["ProductionVariants"][0]["ModelDataDownloadTimeoutInSeconds"] == 600


def test_image_uri_template_from_environment_is_filled_per_region(aws):
    aws.setenv("SLUICE_IMAGE_URI", "999988887777.dkr.ecr.{region}.amazonaws.com/sluice:1.2.3")
    predictor = JumpStartModel(DEMO, "1.0.0", role=ROLE, model_data="s3://b/p").deploy(wait=False)
    _, _, sm_model = described(predictor.endpoint_name)
    assert sm_model["PrimaryContainer"]["Image"] == \
        f"999988887777.dkr.ecr.{REGION}.amazonaws.com/sluice:1.2.3"
    assert sm_model["PrimaryContainer"]["ModelDataSource"]["S3DataSource"]["S3Uri"] == "s3://b/p/"


def test_missing_role_and_missing_model_data_are_clear_errors(aws):
    with pytest.raises(MissingConfigurationError, match="SLUICE_EXECUTION_ROLE_ARN"):
        JumpStartModel(DEMO, "1.0.0", model_data="s3://b/p/", image_uri=IMAGE).deploy(wait=False)
    with pytest.raises(MissingConfigurationError, match="SLUICE_ARTIFACT_BUCKET"):
        JumpStartModel(DEMO, "1.0.0", role=ROLE, image_uri=IMAGE).deploy(wait=False)
    assert boto3.client("sagemaker").list_models()["Models"] == []


def test_wildcard_version_and_unlisted_instance_type_warn(aws):
    with pytest.warns(WildcardVersionWarning):
        model = JumpStartModel(DEMO, role=ROLE, image_uri=IMAGE, model_data="s3://b/p/")
    with pytest.warns(UnsupportedInstanceTypeWarning, match="ml.c5.large"):
        model.deploy(instance_type="ml.c5.large", wait=False)


def test_gated_model_without_token_warns(aws, current_instance_types):
    model = JumpStartModel(FALCON_180B, "1.0.0", role=ROLE, image_uri=IMAGE)
    with pytest.warns(UserWarning, match="gated"):
        model.deploy(wait=False)


def test_delete_model_and_endpoint_remove_everything(aws):
    predictor = JumpStartModel(DEMO, "1.0.0", role=ROLE, image_uri=IMAGE,
                               model_data="s3://b/p/").deploy(wait=False)
    predictor.delete_model()
    predictor.delete_endpoint()
    sm = boto3.client("sagemaker")
    assert sm.list_models()["Models"] == []
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.list_endpoints()["Endpoints"] == []


def test_predictor_from_endpoint_name_alone_finds_model_and_config(aws):
    deployed = JumpStartModel(DEMO, "1.0.0", role=ROLE, image_uri=IMAGE,
                              model_data="s3://b/p/").deploy(wait=False)
    predictor = Predictor(deployed.endpoint_name)
    predictor.delete_model()
    predictor.delete_endpoint()
    sm = boto3.client("sagemaker")
    assert sm.list_models()["Models"] == [] and sm.list_endpoints()["Endpoints"] == []


def test_enable_autoscaling_registers_target_and_invocations_policy(aws):
    predictor = JumpStartModel(DEMO, "1.0.0", role=ROLE, image_uri=IMAGE,
                               model_data="s3://b/p/").deploy(endpoint_name="scaled", wait=False)
    predictor.enable_autoscaling(min_capacity=1, max_capacity=4, target_invocations_per_instance=70)

    autoscaling = boto3.client("application-autoscaling")
    target, = autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"]
    assert target["ResourceId"] == "endpoint/scaled/variant/AllTraffic"
    assert target["ScalableDimension"] == "sagemaker:variant:DesiredInstanceCount"
    assert (target["MinCapacity"], target["MaxCapacity"]) == (1, 4)
    policy, = autoscaling.describe_scaling_policies(ServiceNamespace="sagemaker")["ScalingPolicies"]
    tracking = policy["TargetTrackingScalingPolicyConfiguration"]
    assert policy["PolicyType"] == "TargetTrackingScaling"
    assert tracking["TargetValue"] == 70.0
    assert tracking["PredefinedMetricSpecification"]["PredefinedMetricType"] == \
        "SageMakerVariantInvocationsPerInstance"

    predictor.delete_endpoint()
    assert autoscaling.describe_scalable_targets(ServiceNamespace="sagemaker")["ScalableTargets"] == []


def test_autoscaling_rejects_inverted_capacity(aws):
    with pytest.raises(ValueError, match="min_capacity"):
        Predictor("any").enable_autoscaling(min_capacity=3, max_capacity=2)


def test_waiter_reports_failure_reason(aws):
    predictor = JumpStartModel(DEMO, "1.0.0", role=ROLE, image_uri=IMAGE,
                               model_data="s3://b/p/").deploy(endpoint_name="doomed", wait=False)
    record = moto_endpoint("doomed")
    record.endpoint_status = "Failed"
    record.failure_reason = ("The primary container for production variant AllTraffic did not pass the ping "
                             "health check.")
    with pytest.raises(EndpointFailedError, match="did not pass the ping health check") as info:
        wait_for_endpoint(predictor.sagemaker_client, "doomed", poll_interval=0.01, timeout=5)
    assert info.value.endpoint_name == "doomed"


def test_waiter_polls_until_in_service(aws):
    JumpStartModel(DEMO, "1.0.0", role=ROLE, image_uri=IMAGE,
                   model_data="s3://b/p/").deploy(endpoint_name="slow", wait=False)
    record = moto_endpoint("slow")
    record.endpoint_status = "Creating"
    sleeps = []

    def sleep(seconds):  # the endpoint comes up after the second poll
        sleeps.append(seconds)
        if len(sleeps) == 2:
            record.endpoint_status = "InService"

    description = wait_for_endpoint(boto3.client("sagemaker"), "slow", poll_interval=7,
                                    timeout=60, sleep=sleep)
    assert description["EndpointStatus"] == "InService"
    assert sleeps == [7, 7]


def test_waiter_times_out_with_last_status(aws):
    JumpStartModel(DEMO, "1.0.0", role=ROLE, image_uri=IMAGE,
                   model_data="s3://b/p/").deploy(endpoint_name="stuck", wait=False)
    moto_endpoint("stuck").endpoint_status = "Creating"
    with pytest.raises(EndpointTimeoutError, match="still 'Creating'"):
        wait_for_endpoint(boto3.client("sagemaker"), "stuck", poll_interval=0.01, timeout=0.05)


def test_upload_model_dir_keeps_relative_paths(aws, tmp_path):
    (tmp_path / "model" / "tokenizer").mkdir(parents=True)
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "model" / "tokenizer" / "vocab.json").write_text("{}")
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="weights")

    uri = upload_model_dir(tmp_path / "model", "weights", "/models/tiny", s3_client=s3)

    assert uri == "s3://weights/models/tiny/"
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="weights")["Contents"])
    assert keys == ["models/tiny/config.json", "models/tiny/tokenizer/vocab.json"]


def test_local_deploy_serves_the_same_predictor_api(aws_env, tiny_model_dir):
    model = JumpStartModel(DEMO, "1.0.0", model_dir=tiny_model_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a pinned local deploy needs no AWS configuration
        predictor = model.deploy(instance_type="local", endpoint_name="local-demo")
    try:
        parameters = {"max_new_tokens": 5, "do_sample": False, "return_full_text": False,
                      "details": True}
        result = predictor.predict({"inputs": "Hello", "parameters": parameters})
        tokens = predictor.predict_stream({"inputs": "Hello", "parameters": parameters})
        texts = list(tokens)
        assert texts and "".join(texts) == tokens.generated_text == result[0]["generated_text"]
        assert tokens.details["generated_tokens"] == result[0]["details"]["generated_tokens"]
        # predict takes a JSON string or bytes too, and so does predict_stream, still streaming
        as_json = json.dumps({"inputs": "Hello", "parameters": parameters})
        assert "".join(predictor.predict_stream(as_json)) == "".join(texts)
        assert "".join(predictor.predict_stream(as_json.encode())) == "".join(texts)
        with pytest.raises(ValueError, match="JSON object"):
            predictor.predict_stream('["Hello"]')
    finally:
        predictor.delete_endpoint()


def test_a_deploy_refused_by_create_endpoint_config_leaves_no_model(aws):
    """SageMaker refuses the instance type only at CreateEndpointConfig, after CreateModel: the
    model the deploy made for it goes too, rather than pile up one per failed try."""
    model = JumpStartModel(DEMO, "1.0.0", role=ROLE, image_uri=IMAGE, model_data="s3://b/p/")
    with warnings.catch_warnings(), pytest.raises(ClientError, match="CreateEndpointConfig"):
        warnings.simplefilter("ignore", UnsupportedInstanceTypeWarning)
        model.deploy(instance_type="ml.bogus.xlarge", endpoint_name="refused", wait=False)
    sm = boto3.client("sagemaker")
    assert sm.list_models()["Models"] == [] and sm.list_endpoint_configs()["EndpointConfigs"] == []


@pytest.fixture
def endpoint_names_taken_once(monkeypatch):
    """SageMaker refuses CreateEndpoint for a name in use ("Cannot create already existing
    endpoint"); moto 5.2.5 silently replaces the endpoint instead."""
    from moto.sagemaker.exceptions import ValidationError
    from moto.sagemaker.models import SageMakerModelBackend

    create = SageMakerModelBackend.create_endpoint

    def create_endpoint(self, endpoint_name, *args, **kwargs):
        if endpoint_name in self.endpoints:
            raise ValidationError(message=f'Cannot create already existing endpoint "{endpoint_name}".')
        return create(self, endpoint_name, *args, **kwargs)

    monkeypatch.setattr(SageMakerModelBackend, "create_endpoint", create_endpoint)


def test_a_deploy_refused_by_create_endpoint_leaves_nothing_and_can_be_retried(aws, endpoint_names_taken_once):
    """An endpoint name already taken (or a quota) fails CreateEndpoint after its config and model
    exist: both go, so the same deploy under a free name, or after the cause is fixed, succeeds;
    the endpoint that held the name is untouched."""
    model = JumpStartModel(DEMO, "1.0.0", role=ROLE, image_uri=IMAGE, model_data="s3://b/p/")
    model.deploy(endpoint_name="taken", wait=False)
    sm = boto3.client("sagemaker")
    sm.delete_endpoint_config(EndpointConfigName="taken")  # the endpoint keeps running without it
    before = {m["ModelName"] for m in sm.list_models()["Models"]}

    with pytest.raises(ClientError, match="CreateEndpoint operation"):
        model.deploy(endpoint_name="taken", wait=False)

    assert {m["ModelName"] for m in sm.list_models()["Models"]} == before
    assert sm.list_endpoint_configs()["EndpointConfigs"] == []
    assert sm.describe_endpoint(EndpointName="taken")["EndpointStatus"] == "InService"
    assert model.deploy(endpoint_name="free", wait=False).endpoint_name == "free"


def test_a_deploy_in_another_region_than_the_session_invokes_and_scales_there(aws):
    """region= wins over the session's region for the endpoint, and so for everything the
    Predictor does with it: invoking, autoscaling (a session with no region at all included)."""
    aws.delenv("AWS_DEFAULT_REGION")
    model = JumpStartModel(DEMO, "1.0.0", role=ROLE, image_uri=IMAGE, model_data="s3://b/p/",
                           region="eu-west-1", boto_session=boto3.Session())
    predictor = model.deploy(endpoint_name="elsewhere", wait=False)
    assert predictor.predict({"inputs": "Hello"}) is not None  # moto's canned answer, from eu-west-1
    predictor.enable_autoscaling(min_capacity=1, max_capacity=2)
    targets = boto3.client("application-autoscaling", region_name="eu-west-1").describe_scalable_targets(
        ServiceNamespace="sagemaker")["ScalableTargets"]
    assert [t["ResourceId"] for t in targets] == ["endpoint/elsewhere/variant/AllTraffic"]
