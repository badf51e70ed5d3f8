"""The SageMaker control plane's wire format (AWS JSON 1.1), for the local endpoint's control API.

boto3 sends every ``sagemaker`` operation as ``POST /`` with ``X-Amz-Target: SageMaker.<Operation>``
and a JSON body; it reads a JSON answer whose timestamps are epoch seconds, and an error from the
``__type`` field (or ``x-amzn-ErrorType``) plus ``message``. Nothing here knows any operation.
"""

from __future__ import annotations

import json
from datetime import datetime

TARGET_HEADER = "X-Amz-Target"
TARGET_PREFIX = "SageMaker."
CONTENT_TYPE = "application/x-amz-json-1.1"


class ApiError(Exception):
    """An operation's error as boto3 raises it: ``ClientError`` with ``Error.Code`` = ``code``."""

    def __init__(self, code: str, message: str, status: int = 400):
        super().__init__(message)
        self.code, self.message, self.status = code, message, status

    def body(self) -> bytes:
        return json.dumps({"__type": self.code, "message": self.message}).encode("utf-8")


def operation_of(target: str | None) -> str | None:
    """``SageMaker.CreateInferenceComponent`` -> ``CreateInferenceComponent``; None for other services."""
    if target and target.startswith(TARGET_PREFIX):
        return target[len(TARGET_PREFIX):]
    return None


def decode_request(body: bytes) -> dict:
    try:
        params = json.loads(body or b"{}")
    except ValueError as error:
        raise ApiError("SerializationException", f"The request body is not JSON: {error}") from None
    if not isinstance(params, dict):
        raise ApiError("SerializationException", "The request body is not a JSON object")
    return params


def _plain(value):
    """A botocore result as JSON 1.1 values: datetimes become epoch seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if key != "ResponseMetadata"}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


def encode_response(result: dict) -> bytes:
    return json.dumps(_plain(result)).encode("utf-8")
