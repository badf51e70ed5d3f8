"""The AWS account behind a local control plane: the operations it does not serve itself.

A boto3 session's ``sagemaker`` client, pointed at the service's regional URL on purpose: the
caller's ``AWS_ENDPOINT_URL_SAGEMAKER`` names the local control plane itself. In the tests the
session is moto's in-process AWS (``mock_aws`` intercepts these calls); it may be a real account.
Its answers and errors are handed back as the service sent them.
"""

from __future__ import annotations

import threading

from botocore.exceptions import ClientError, ParamValidationError

from deploy.local.aws_json import ApiError


class Backend:
    """Calls SageMaker operations by name on ``session``'s account; also its S3 client."""

    def __init__(self, session):
        self.session = session
        self.region = session.region_name or "us-east-1"
        self._clients: dict[str, object] = {}
        self._lock = threading.Lock()

    def client(self, service: str, endpoint_url: str | None = None):
        with self._lock:
            if service not in self._clients:
                self._clients[service] = self.session.client(service, region_name=self.region,
                                                              endpoint_url=endpoint_url)
            return self._clients[service]

    def sagemaker_client(self):
        return self.client("sagemaker", f"https://api.sagemaker.{self.region}.amazonaws.com")

    def s3_client(self):
        return self.client("s3")

    def call(self, operation: str, params: dict) -> dict:
        try:
            return self.sagemaker_client()._make_api_call(operation, params)
        except ClientError as error:
            details = error.response.get("Error", {})
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
            raise ApiError(details.get("Code", "ValidationException"), details.get("Message", str(error)),
                           status) from None
        except ParamValidationError as error:
            raise ApiError("ValidationException", str(error)) from None
