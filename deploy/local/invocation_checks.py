"""The checks SageMaker's runtime makes on an invocation's headers before any container sees it.

A local endpoint that forwarded these unchecked would answer requests the service refuses: a
``TargetVariant`` naming no variant served by the only one, a ``TargetModel`` or
``TargetContainerHostname`` (multi-model / multi-container features a local endpoint does not
have) silently ignored, or a ``SessionId`` of ``NEW_SESSION`` on the streaming API, which cannot
open sessions (its service model's pattern leaves ``NEW_SESSION`` out), opening one whose id the
client never gets. Each is a ``ValidationError`` (400), in the service's wording where it is known.
"""

from __future__ import annotations

import re

from deploy.local.aws_json import ApiError

# botocore's sagemaker-runtime model: SessionId's pattern on each operation.
_SESSION_ID = re.compile(r"[a-zA-Z0-9](-*[a-zA-Z0-9])*")
NEW_SESSION = "NEW_SESSION"
MAX_SESSION_ID = 256
MAX_CUSTOM_ATTRIBUTES = 1024


def _constraint(value: str, field: str, constraint: str) -> ApiError:
    return ApiError("ValidationError", f"1 validation error detected: Value '{value}' at '{field}' failed "
                    f"to satisfy constraint: {constraint}")


def check_session_id(session_id: str | None, streaming: bool) -> None:
    if session_id is None:
        return
    if session_id == NEW_SESSION and not streaming:
        return
    if len(session_id) > MAX_SESSION_ID:
        raise _constraint(session_id, "sessionId", f"Member must have length less than or equal to {MAX_SESSION_ID}")
    if not _SESSION_ID.fullmatch(session_id):
        pattern = "^[a-zA-Z0-9](-*[a-zA-Z0-9])*$" if streaming else "^(NEW_SESSION)$|^[a-zA-Z0-9](-*[a-zA-Z0-9])*$"
        error = _constraint(session_id, "sessionId", f"Member must satisfy regular expression pattern: {pattern}")
        if session_id == NEW_SESSION:
            error.message += " (InvokeEndpointWithResponseStream cannot open a session: open it with InvokeEndpoint)"
        raise error


def check_invocation_headers(headers, endpoint_name: str, variant_name: str, streaming: bool) -> None:
    """Raise the runtime's ``ValidationError`` for a header this single-model, single-container,
    single-variant endpoint cannot honour; ``headers`` is the request's (case-insensitive)."""
    attributes = headers.get("X-Amzn-SageMaker-Custom-Attributes")
    if attributes is not None and len(attributes) > MAX_CUSTOM_ATTRIBUTES:
        raise _constraint("***", "customAttributes",
                          f"Member must have length less than or equal to {MAX_CUSTOM_ATTRIBUTES}")
    check_session_id(headers.get("X-Amzn-SageMaker-Session-Id"), streaming)
    target_variant = headers.get("X-Amzn-SageMaker-Target-Variant")
    if target_variant is not None and target_variant != variant_name:
        raise ApiError("ValidationError", f"Variant {target_variant} not found on endpoint {endpoint_name}: "
                       f"its only production variant is {variant_name}.")
    if headers.get("X-Amzn-SageMaker-Target-Model") is not None:
        raise ApiError("ValidationError", f"Endpoint {endpoint_name} is not a multi-model endpoint and does not "
                       "support target model header.")
    if headers.get("X-Amzn-SageMaker-Target-Container-Hostname") is not None:
        raise ApiError("ValidationError", f"Endpoint {endpoint_name} is not a multi-container endpoint with direct "
                       "invocation and does not support target container hostname header.")
    if headers.get("X-Amzn-SageMaker-Enable-Explanations") is not None:
        raise ApiError("ValidationError", f"Endpoint {endpoint_name} has no explainer (ExplainerConfig) and does "
                       "not support EnableExplanations.")
