"""The real SageMaker SDK v2 deploys Sluice from our published JumpStart metadata (under moto).

This is the drop-in claim of the seed blog post: unchanged ``JumpStartModel(model_id=...)`` and
``list_jumpstart_models(filter=And(...))`` code, pointed at our content bucket, creates endpoints
that run our image with the catalog's env. Everything runs in-process; a socket guard fails the
test if anything tries to reach the network (the SDK's telemetry would).
"""

from __future__ import annotations

import importlib.metadata

import boto3
import pytest

from aws_fixtures import REGION, ROLE
from deploy.catalog import get_model_spec
from deploy.filters import And as OurAnd
from deploy.filters import list_jumpstart_models as our_list_jumpstart_models
from deploy.publish import publish


def sdk_major() -> int | None:
    try:
        return int(importlib.metadata.version("sagemaker").split(".")[0])
    except importlib.metadata.PackageNotFoundError:
        return None


# .venv has the SDK v3; tests/test_real_sdk_v2_env.py runs this file in .venv-sdk2 (make install-sdk2).
pytestmark = pytest.mark.skipif(sdk_major() != 2, reason="the SDK v2 runs in .venv-sdk2 (make install-sdk2)")

CONTENT_BUCKET = "sluice-jumpstart-content"
IMAGE = "111122223333.dkr.ecr.{region}.amazonaws.com/sluice:0.1.0"
TELEMETRY_OPT_OUT = ("SchemaVersion: '1.0'\nSageMaker:\n  PythonSDK:\n    Modules:\n"
                     "      TelemetryOptOut: true\n")


@pytest.fixture
def sdk(aws, tmp_path, loopback_only):
    """A SageMaker SDK session configured for offline use, with our metadata published.

    The session is passed explicitly: the SDK's module-level default session resolves
    credentials once, when ``sagemaker`` is first imported, which may be before this fixture.
    """
    config = tmp_path / "sagemaker-config.yaml"
    config.write_text(TELEMETRY_OPT_OUT)
    aws.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
    aws.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    aws.setenv("AWS_JUMPSTART_CONTENT_BUCKET_OVERRIDE", CONTENT_BUCKET)
    s3 = boto3.client("s3", region_name=REGION)
    s3.create_bucket(Bucket=CONTENT_BUCKET)
    publish(IMAGE, bucket=CONTENT_BUCKET, s3_client=s3)
    from sagemaker.jumpstart.accessors import JumpStartModelsAccessor

    JumpStartModelsAccessor.reset_cache()  # the SDK caches manifests per process
    yield session(REGION)
    JumpStartModelsAccessor.reset_cache()


def session(region: str):
    import sagemaker

    return sagemaker.Session(boto_session=boto3.Session(region_name=region))


def described(endpoint_name: str) -> tuple[dict, dict]:
    sm = boto3.client("sagemaker", region_name=REGION)
    endpoint = sm.describe_endpoint(EndpointName=endpoint_name)
    config = sm.describe_endpoint_config(EndpointConfigName=endpoint["EndpointConfigName"])
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    return config["ProductionVariants"][0], model["PrimaryContainer"]


def test_sdk_lists_our_models_with_the_blog_filter(sdk):
    from sagemaker.jumpstart.filters import And
    from sagemaker.jumpstart.notebook_utils import list_jumpstart_models

    listed = list_jumpstart_models(filter=And("task == llm", "framework == huggingface"),
                                   sagemaker_session=sdk)
    assert listed == our_list_jumpstart_models(filter=OurAnd("task == llm", "framework == huggingface"))
    assert "huggingface-llm-falcon-7b-instruct-bf16" in listed
    assert "sluice-no-proprietary-models" not in list_jumpstart_models(sagemaker_session=sdk)


def test_sdk_deploy_runs_our_image_with_catalog_env(sdk, current_instance_types):
    from sagemaker.jumpstart.model import JumpStartModel

    model = JumpStartModel(model_id="huggingface-llm-falcon-7b-instruct-bf16", model_version="1.0.0",
                           role=ROLE, sagemaker_session=sdk)
    predictor = model.deploy(wait=False)

    variant, container = described(predictor.endpoint_name)
    assert variant["InstanceType"] == "ml.g5.2xlarge"
    assert container["Image"] == IMAGE.format(region=REGION)
    assert container["Environment"] == {"HF_MODEL_ID": "tiiuae/falcon-7b-instruct",
                                        "SM_NUM_GPUS": "1", "MAX_INPUT_LENGTH": "1024",
                                        "MAX_TOTAL_TOKENS": "2048"}

    predictor.delete_model()
    predictor.delete_endpoint()
    sm = boto3.client("sagemaker", region_name=REGION)
    assert sm.list_models()["Models"] == [] and sm.list_endpoints()["Endpoints"] == []


def test_sdk_applies_per_instance_env_timeouts_and_the_uploaded_prefix(sdk,
                                                                        current_instance_types):
    from sagemaker.jumpstart.model import JumpStartModel

    # The SDK resolves the env when the model is constructed, so the instance type goes there.
    model = JumpStartModel(model_id="huggingface-llm-falcon-40b-instruct-bf16",
                           model_version="1.0.0", role=ROLE, instance_type="ml.g5.48xlarge",
                           sagemaker_session=sdk)
    variant, container = described(model.deploy(wait=False).endpoint_name)
    assert variant["InstanceType"] == "ml.g5.48xlarge"
    assert container["Environment"]["SM_NUM_GPUS"] == "8"  # the model's default is 4

    spec = get_model_spec("huggingface-llm-sluice-demo-tiny", "1.0.0")
    predictor = JumpStartModel(model_id=spec.model_id, model_version="1.0.0", role=ROLE,
                               sagemaker_session=sdk).deploy(wait=False)
    variant, container = described(predictor.endpoint_name)
    # `python -m deploy upload --bucket <content bucket>` writes to exactly this prefix.
    assert container["ModelDataSource"]["S3DataSource"] == {
        "S3Uri": f"s3://{CONTENT_BUCKET}/{spec.artifact_key}", "S3DataType": "S3Prefix",
        "CompressionType": "None"}
    assert container["Environment"]["HF_MODEL_ID"] == "/opt/ml/model"
    assert variant["ModelDataDownloadTimeoutInSeconds"] == spec.model_data_download_timeout
    assert variant["ContainerStartupHealthCheckTimeoutInSeconds"] == \
        spec.container_startup_health_check_timeout


def test_sdk_reads_a_local_metadata_folder_and_picks_the_session_region_image(
        aws, tmp_path, loopback_only):
    from sagemaker.jumpstart.accessors import JumpStartModelsAccessor
    from sagemaker.jumpstart.model import JumpStartModel

    config = tmp_path / "sagemaker-config.yaml"
    config.write_text(TELEMETRY_OPT_OUT)
    publish(IMAGE, out_dir=tmp_path / "content")
    aws.setenv("SAGEMAKER_USER_CONFIG_OVERRIDE", str(config))
    aws.setenv("SAGEMAKER_SUPPRESS_V2_WARNING", "1")
    aws.setenv("AWS_JUMPSTART_MANIFEST_LOCAL_ROOT_DIR_OVERRIDE", str(tmp_path / "content"))
    aws.setenv("AWS_JUMPSTART_SPECS_LOCAL_ROOT_DIR_OVERRIDE", str(tmp_path / "content"))
    JumpStartModelsAccessor.reset_cache()
    try:
        predictor = JumpStartModel(model_id="huggingface-llm-sluice-demo-tiny",
                                   model_version="1.0.0", role=ROLE,
                                   sagemaker_session=session("eu-west-1")).deploy(wait=False)
    finally:
        JumpStartModelsAccessor.reset_cache()
    sm = boto3.client("sagemaker", region_name="eu-west-1")
    config = sm.describe_endpoint_config(EndpointConfigName=predictor.endpoint_name)
    model = sm.describe_model(ModelName=config["ProductionVariants"][0]["ModelName"])
    assert model["PrimaryContainer"]["Image"] == IMAGE.format(region="eu-west-1")
