"""Token streams and stateful sessions for an endpoint, SageMaker SDK v3 or not.

sagemaker-core 2.27's ``Endpoint.invoke_with_response_stream`` cannot stream: it runs its response
transform over botocore's ``EventStream`` and raises ``AttributeError: 'EventStream' object has no
attribute 'get'`` on every stream, AWS's endpoints included. `stream_tokens` takes the same
``Endpoint`` (or its name) and streams through the ``sagemaker-runtime`` client instead, inference
component and session included, yielding text through `TokenIterator`. `open_session` and
`close_session` wrap the two requests SageMaker's stateful sessions are made of.

boto3 only: a sagemaker-core ``Endpoint`` is read for its ``endpoint_name``, never imported.
"""

from __future__ import annotations

import json

from deploy.stream import TokenIterator

JSON = "application/json"
NEW_SESSION = "NEW_SESSION"


def endpoint_name_of(endpoint) -> str:
    """A sagemaker-core ``Endpoint``, a `Predictor` or anything with ``endpoint_name``; or a name."""
    name = endpoint if isinstance(endpoint, str) else getattr(endpoint, "endpoint_name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"expected an endpoint name or an object with endpoint_name, got {endpoint!r}")
    return name


def runtime_client_for(runtime_client=None):
    """The given client, else one for a loopback ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME`` (dummy
    credentials, as `LocalEndpoint` prints), else boto3's default ``sagemaker-runtime`` client."""
    if runtime_client is not None:
        return runtime_client
    import boto3

    from deploy.local.endpoint import local_runtime_session
    return (local_runtime_session() or boto3.Session()).client("sagemaker-runtime")


def _encode(body) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")


def _optional(**fields) -> dict:
    return {key: value for key, value in fields.items() if value is not None}


def stream_tokens(endpoint, body, content_type: str = JSON, inference_component_name: str | None = None,
                  session_id: str | None = None, accept: str | None = None, custom_attributes: str | None = None,
                  runtime_client=None, skip_special_tokens: bool = True) -> TokenIterator:
    """``InvokeEndpointWithResponseStream``; iterate the result for token texts as they arrive.

    ``body`` is a dict (``"stream": true`` is added, as TGI and OpenAI servers stream only when
    asked), a JSON string or bytes (sent as they are). After the loop the iterator's
    ``generated_text`` and ``details`` hold the final TGI event's values.
    """
    if isinstance(body, dict):
        body = {**body, "stream": True}
    response = runtime_client_for(runtime_client).invoke_endpoint_with_response_stream(
        EndpointName=endpoint_name_of(endpoint), Body=_encode(body), ContentType=content_type,
        **_optional(Accept=accept, CustomAttributes=custom_attributes,
                    InferenceComponentName=inference_component_name, SessionId=session_id))
    return TokenIterator(response["Body"], skip_special_tokens=skip_special_tokens)


def session_id_of(header_value: str) -> str:
    """``"<id>; Expires=2026-12-04T22:00:00Z"`` -> ``"<id>"`` (what a later ``SessionId`` sends)."""
    return header_value.split(";", 1)[0].strip()


def open_session(endpoint, inference_component_name: str | None = None, runtime_client=None) -> str:
    """Open a stateful session (``SessionId="NEW_SESSION"``, body ``{"requestType": "NEW_SESSION"}``)
    and return its id; requests that pass it as ``session_id`` run in that session."""
    response = runtime_client_for(runtime_client).invoke_endpoint(
        EndpointName=endpoint_name_of(endpoint), Body=_encode({"requestType": NEW_SESSION}), ContentType=JSON,
        SessionId=NEW_SESSION, **_optional(InferenceComponentName=inference_component_name))
    response["Body"].read()
    if not response.get("NewSessionId"):
        raise ValueError(f"{endpoint_name_of(endpoint)} opened no session (no NewSessionId in its answer): "
                         "the container needs SAGEMAKER_ENABLE_STATEFUL_SESSIONS=true")
    return session_id_of(response["NewSessionId"])


def close_session(endpoint, session_id: str, inference_component_name: str | None = None,
                  runtime_client=None) -> str | None:
    """Close a session (body ``{"requestType": "CLOSE"}``); returns the ``ClosedSessionId`` answered."""
    response = runtime_client_for(runtime_client).invoke_endpoint(
        EndpointName=endpoint_name_of(endpoint), Body=_encode({"requestType": "CLOSE"}), ContentType=JSON,
        SessionId=session_id, **_optional(InferenceComponentName=inference_component_name))
    response["Body"].read()
    return response.get("ClosedSessionId")
