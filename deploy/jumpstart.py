"""``JumpStartModel(model_id).deploy()`` for the Sluice image, with boto3 only.

The SageMaker SDK's JumpStartModel resolves a catalog entry into three API calls (CreateModel,
CreateEndpointConfig, CreateEndpoint) and a waiter. This class does the same from our catalog, so
notebooks written for JumpStart keep their shape while the image is ours and the SDK (700 MB of
dependencies, deprecated v2) is not needed at run time. ``instance_type="local"`` runs the same
model as a `LocalEndpoint` and returns the same Predictor type.
"""

from __future__ import annotations

import logging
import os
import warnings
from datetime import datetime, timezone

from botocore.exceptions import BotoCoreError, ClientError

from deploy.catalog import LATEST, LOCAL_INSTANCE_TYPE, Catalog, ModelSpec, load_catalog
from deploy.errors import MissingConfigurationError
from deploy.predictor import DEFAULT_VARIANT, Predictor
from deploy.waiter import wait_for_endpoint

log = logging.getLogger(__name__)

ENV_IMAGE_URI = "SLUICE_IMAGE_URI"            # may contain {region} and {account}
ENV_EXECUTION_ROLE = "SLUICE_EXECUTION_ROLE_ARN"
ENV_ARTIFACT_BUCKET = "SLUICE_ARTIFACT_BUCKET"  # bucket holding catalog artifact keys
ENV_MODEL_DIR = "SLUICE_MODEL_DIR"              # local model dir for instance_type="local"
DEFAULT_IMAGE_TEMPLATE = "{account}.dkr.ecr.{region}.amazonaws.com/sluice:latest"
CONTAINER_MODEL_DIR = "/opt/ml/model"
HF_TOKEN_NAMES = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_API_TOKEN")
# The SDK's tag keys: SageMaker Studio shows endpoints carrying them as JumpStart models.
TAG_MODEL_ID = "sagemaker-sdk:jumpstart-model-id"
TAG_MODEL_VERSION = "sagemaker-sdk:jumpstart-model-version"


class UnsupportedInstanceTypeWarning(UserWarning):
    """The instance type is not in the model's catalog entry; no per-instance env is applied."""


def image_uri_for(region: str, account: str | None = None) -> str:
    """``$SLUICE_IMAGE_URI`` (with ``{region}``/``{account}`` filled in) or the ECR default."""
    template = os.environ.get(ENV_IMAGE_URI) or DEFAULT_IMAGE_TEMPLATE
    if "{account}" in template and account is None:
        raise MissingConfigurationError("image uri needs the AWS account id; pass image_uri=")
    return template.format(region=region, account=account)


def name_from_base(base: str, now: datetime | None = None) -> str:
    """``base`` plus a millisecond UTC timestamp, cut to SageMaker's 63-character name limit."""
    stamp = (now or datetime.now(timezone.utc)).strftime("%Y-%m-%d-%H-%M-%S-%f")[:-3]
    return f"{base[:63 - len(stamp) - 1].rstrip('-')}-{stamp}"


class JumpStartModel:
    """A catalog model bound to an image, role and region, ready to ``deploy()``."""

    def __init__(self, model_id: str, model_version: str = LATEST, role: str | None = None,
                 image_uri: str | None = None, env: dict[str, str] | None = None,
                 instance_type: str | None = None, model_data: str | None = None,
                 model_dir: str | os.PathLike | None = None, region: str | None = None,
                 boto_session=None, sagemaker_client=None, name: str | None = None,
                 catalog: Catalog | None = None):
        self.spec: ModelSpec = (catalog or load_catalog()).get(model_id, model_version)
        self.model_id = self.spec.model_id
        self.model_version = self.spec.version
        self.role = role
        self.image_uri = image_uri
        self.user_env = dict(env or {})
        self.instance_type = instance_type
        self.model_data = model_data
        self.model_dir = model_dir
        self.name = name
        self._region = region
        self._session = boto_session
        self._sagemaker = sagemaker_client

    # -- configuration ---------------------------------------------------------------------------
    @property
    def boto_session(self):
        if self._session is None:
            import boto3
            self._session = boto3.Session(region_name=self._region)
        return self._session

    @property
    def region(self) -> str:
        region = self._region or self.boto_session.region_name
        if not region:
            raise MissingConfigurationError(
                "No AWS region: pass region= or set AWS_DEFAULT_REGION.")
        return region

    @property
    def sagemaker_client(self):
        if self._sagemaker is None:
            self._sagemaker = self.boto_session.client("sagemaker", region_name=self.region)
        return self._sagemaker

    def resolved_image_uri(self) -> str:
        if self.image_uri:
            return self.image_uri
        account = None
        if "{account}" in (os.environ.get(ENV_IMAGE_URI) or DEFAULT_IMAGE_TEMPLATE):
            sts = self.boto_session.client("sts", region_name=self.region)
            account = sts.get_caller_identity()["Account"]
        return image_uri_for(self.region, account)

    def resolved_role(self) -> str:
        role = self.role or os.environ.get(ENV_EXECUTION_ROLE)
        if not role:
            raise MissingConfigurationError(
                f"No execution role: pass role='arn:aws:iam::<account>:role/<name>' or set "
                f"{ENV_EXECUTION_ROLE}. SageMaker assumes it to pull the image and model data.")
        return role

    def model_data_uri(self) -> str | None:
        """The S3 prefix mounted at /opt/ml/model, or None when the container downloads from the hub."""
        if self.model_data:
            return self.model_data
        if not self.spec.has_s3_artifacts:
            return None
        bucket = os.environ.get(ENV_ARTIFACT_BUCKET)
        if not bucket:
            raise MissingConfigurationError(
                f"{self.model_id} is served from S3 ({self.spec.artifact_key}): pass "
                f"model_data='s3://bucket/{self.spec.artifact_key}' or set {ENV_ARTIFACT_BUCKET} "
                "after `python -m deploy upload`.")
        return f"s3://{bucket}/{self.spec.artifact_key}"

    def container_env(self, instance_type: str | None) -> dict[str, str]:
        """Catalog env, then the instance type's env, then the caller's env (last one wins)."""
        env = self.spec.environment(instance_type)
        if self.model_data:  # the caller's own copy of the weights replaces the hub download
            env["HF_MODEL_ID"] = CONTAINER_MODEL_DIR
        env.update(self.user_env)
        return env

    def _check_instance_type(self, instance_type: str) -> None:
        if instance_type not in self.spec.supported_instance_types:
            warnings.warn(
                f"{instance_type} is not a supported instance type of {self.model_id} "
                f"(supported: {', '.join(self.spec.supported_instance_types)}); deploying with "
                "the model's default container env.", UnsupportedInstanceTypeWarning, stacklevel=3)

    def _check_gated(self, env: dict[str, str], model_data: str | None) -> None:
        if self.spec.gated and model_data is None and not any(k in env for k in HF_TOKEN_NAMES):
            warnings.warn(
                f"{self.spec.hf_model_id} is gated on the Hugging Face Hub: pass "
                "env={'HF_TOKEN': ...} of an account that accepted its licence, or the endpoint "
                "will fail while downloading the weights.", UserWarning, stacklevel=3)

    # -- request bodies (pure: unit-testable without AWS) ----------------------------------------
    def container_definition(self, instance_type: str, image_uri: str) -> dict:
        model_data = self.model_data_uri()
        env = self.container_env(instance_type)
        self._check_gated(env, model_data)
        container = {"Image": image_uri, "Environment": env}
        if model_data:
            container["ModelDataSource"] = {"S3DataSource": {
                "S3Uri": model_data if model_data.endswith("/") else model_data + "/",
                "S3DataType": "S3Prefix", "CompressionType": "None"}}
        return container

    def production_variant(self, model_name: str, instance_type: str,
                           initial_instance_count: int) -> dict:
        variant = {"VariantName": DEFAULT_VARIANT, "ModelName": model_name,
                   "InstanceType": instance_type, "InitialInstanceCount": initial_instance_count,
                   "InitialVariantWeight": 1.0}
        if self.spec.container_startup_health_check_timeout:
            variant["ContainerStartupHealthCheckTimeoutInSeconds"] = \
                self.spec.container_startup_health_check_timeout
        if self.spec.model_data_download_timeout:
            variant["ModelDataDownloadTimeoutInSeconds"] = self.spec.model_data_download_timeout
        return variant

    def tags(self) -> list[dict[str, str]]:
        return [{"Key": TAG_MODEL_ID, "Value": self.model_id},
                {"Key": TAG_MODEL_VERSION, "Value": self.model_version}]

    def default_wait_timeout(self) -> float:
        """SageMaker's own limits for download + start-up, plus provisioning slack."""
        return float((self.spec.model_data_download_timeout or 3600)
                     + (self.spec.container_startup_health_check_timeout or 3600) + 900)

    # -- deploy ----------------------------------------------------------------------------------
    def deploy(self, initial_instance_count: int = 1, instance_type: str | None = None,
               endpoint_name: str | None = None, wait: bool = True, poll_interval: float = 15.0,
               wait_timeout: float | None = None, use_docker: bool = False) -> Predictor:
        """Create model, endpoint config and endpoint; wait for InService unless ``wait=False``.

        ``instance_type="local"`` starts a LocalEndpoint on this machine instead (weights from
        ``model_dir=`` or ``$SLUICE_MODEL_DIR``); its Predictor's delete_endpoint() stops it.
        """
        instance_type = instance_type or self.instance_type or self.spec.default_instance_type
        if instance_type == LOCAL_INSTANCE_TYPE:
            return self._deploy_local(endpoint_name, use_docker)
        if initial_instance_count < 1:
            raise ValueError("initial_instance_count must be >= 1")
        self._check_instance_type(instance_type)
        model_name = self.create_model(instance_type)
        try:
            predictor = self.create_endpoint(model_name, instance_type, initial_instance_count, endpoint_name,
                                             wait=False)
        except BaseException:
            # SageMaker checks the instance type, the name and quotas only now: the model made
            # for this endpoint goes too, or every failed try leaves one behind.
            _delete_after_failure(self.sagemaker_client.delete_model, ModelName=model_name)
            raise
        if wait:
            self.wait(predictor.endpoint_name, poll_interval, wait_timeout)
        return predictor

    def base_name(self) -> str:
        return self.model_id.replace("huggingface-", "hf-", 1)

    def create_model(self, instance_type: str) -> str:
        """CreateModel for ``instance_type`` (its catalog env); returns the model's name."""
        model_name = self.name or name_from_base(self.base_name())
        self.sagemaker_client.create_model(
            ModelName=model_name, ExecutionRoleArn=self.resolved_role(), Tags=self.tags(),
            PrimaryContainer=self.container_definition(instance_type, self.resolved_image_uri()))
        return model_name

    def create_endpoint(self, model_name: str, instance_type: str, initial_instance_count: int = 1,
                        endpoint_name: str | None = None, wait: bool = True, poll_interval: float = 15.0,
                        wait_timeout: float | None = None) -> Predictor:
        """CreateEndpointConfig and CreateEndpoint serving ``model_name``; waits unless ``wait=False``."""
        endpoint_name = endpoint_name or name_from_base(self.base_name())
        client = self.sagemaker_client
        client.create_endpoint_config(
            EndpointConfigName=endpoint_name, Tags=self.tags(),
            ProductionVariants=[self.production_variant(model_name, instance_type,
                                                        initial_instance_count)])
        try:
            client.create_endpoint(EndpointName=endpoint_name, EndpointConfigName=endpoint_name,
                                   Tags=self.tags())
        except BaseException:
            # A config left behind under the endpoint's name would refuse the retry of the same deploy.
            _delete_after_failure(client.delete_endpoint_config, EndpointConfigName=endpoint_name)
            raise
        predictor = Predictor(endpoint_name, model_name=model_name,
                              endpoint_config_name=endpoint_name,
                              boto_session=self.boto_session, sagemaker_client=client, region=self.region)
        if wait:
            self.wait(endpoint_name, poll_interval, wait_timeout)
        return predictor

    def wait(self, endpoint_name: str, poll_interval: float = 15.0, wait_timeout: float | None = None) -> dict:
        """Poll until ``endpoint_name`` is InService (`wait_for_endpoint`, with this model's timeout)."""
        return wait_for_endpoint(self.sagemaker_client, endpoint_name, poll_interval=poll_interval,
                                 timeout=wait_timeout or self.default_wait_timeout())

    def _deploy_local(self, endpoint_name: str | None, use_docker: bool) -> Predictor:
        endpoint = self.local_endpoint(endpoint_name, use_docker).start()
        return Predictor(endpoint.endpoint_name, local_endpoint=endpoint)

    def local_endpoint(self, endpoint_name: str | None = None, use_docker: bool = False,
                       model_dir: str | os.PathLike | None = None, **endpoint_options):
        """This model as an unstarted `LocalEndpoint` with its catalog env (what
        ``deploy(instance_type="local")`` starts; the CLI serves it in the foreground).

        Weights from ``model_dir``, else the constructor's ``model_dir=``, else ``$SLUICE_MODEL_DIR``;
        ``endpoint_options`` go to `LocalEndpoint` (``runtime_port``, ``container_port``, ``checkout``).
        """
        from deploy.local import LocalEndpoint

        model_dir = model_dir or self.model_dir or os.environ.get(ENV_MODEL_DIR)
        if not model_dir:
            size = self.spec.demo_size or "tiny"
            raise MissingConfigurationError(
                f"instance_type='local' needs the model's files: pass model_dir= or set "
                f"{ENV_MODEL_DIR} (build the demo model with `make model SIZE={size} MODEL_DIR=DIR` "
                "in a Sluice checkout).")
        env = self.container_env(None)
        env.pop("HF_MODEL_ID", None)  # the launcher points HF_MODEL_ID at model_dir itself
        image = self.image_uri if use_docker else None
        return LocalEndpoint(model_dir, endpoint_name=endpoint_name or self.model_id,
                             use_docker=use_docker, image=image, env=env, **endpoint_options)


def _delete_after_failure(delete, **name) -> None:
    """Undo one step of a deploy that failed later; a failing undo must not hide why the deploy failed."""
    try:
        delete(**name)
    except (ClientError, BotoCoreError) as error:
        log.warning("could not delete %s after the failed deploy: %s", name, error)
