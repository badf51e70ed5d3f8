"""Fixtures for tests that talk to AWS: moto in-process, fake credentials, nothing leaves the host.

tests/client/conftest.py offers the fixtures to the client tier; a test module imports only the constants.
"""

from __future__ import annotations

import pytest

from deploy.catalog import load_catalog

REGION = "us-east-1"
ROLE = "arn:aws:iam::123456789012:role/SluiceExecution"
ACCOUNT = "123456789012"  # moto's default account

_CLEARED = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_SAGEMAKER", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL_STS",
            "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING",
            "AWS_JUMPSTART_CONTENT_BUCKET_OVERRIDE", "AWS_JUMPSTART_MODEL_BUCKET_OVERRIDE",
            "SLUICE_IMAGE_URI", "SLUICE_EXECUTION_ROLE_ARN", "SLUICE_ARTIFACT_BUCKET",
            "SLUICE_MODEL_DIR")


@pytest.fixture
def aws_env(monkeypatch, tmp_path):
    """Fake credentials and a fixed region; no profile or config file of the host is read."""
    for name in _CLEARED:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    return monkeypatch


@pytest.fixture
def aws(aws_env):
    """moto's in-process AWS for the duration of one test."""
    from moto import mock_aws

    with mock_aws():
        yield aws_env


@pytest.fixture
def current_instance_types(monkeypatch):
    """Let moto accept the catalog's instance types.

    moto 5.2.5's CreateEndpointConfig enum predates g5/p4d/p5; types outside the catalog are
    still checked by moto's original validator.
    """
    from moto.sagemaker.models import FakeEndpointConfig

    catalog_types = {t for spec in load_catalog().specs for t in spec.supported_instance_types}
    original = FakeEndpointConfig.validate_instance_type

    def validate(self, instance_type):
        if instance_type not in catalog_types:
            original(self, instance_type)

    monkeypatch.setattr(FakeEndpointConfig, "validate_instance_type", validate)


def moto_endpoint(endpoint_name: str, region: str = REGION):
    """moto's backend record of an endpoint, to put it into Creating/Failed states."""
    from moto.sagemaker.models import sagemaker_backends

    return sagemaker_backends[ACCOUNT][region].endpoints[endpoint_name]
