"""Sluice deploy package: deploy the Sluice container to SageMaker and read its token streams.

Installed as the distribution ``sluice-deploy`` (boto3 its only dependency; CLI ``sluice-deploy``).
Streaming: `TokenIterator` / `EventIterator` parse ``invoke_endpoint_with_response_stream`` bodies
(``deploy.stream``); `LocalEndpoint` runs the container (from a Sluice checkout, or an image) plus a
local sagemaker-runtime API for the real boto3 client (``deploy.local``); typed exceptions live in
``deploy.errors``.
Deploying: `JumpStartModel(model_id).deploy()` (boto3 only, the SDK v2 shape) returns a `Predictor`;
`ModelBuilder.from_jumpstart_config(JumpStartConfig(model_id), compute=Compute(...))` (the SDK v3
shape, ``deploy.builder``) builds and deploys an `Endpoint`; the catalog is queried with
`list_jumpstart_models(filter=And("task == llm", ...))` (``deploy.filters``).
SDK v3 users stream with `stream_tokens(endpoint, body)` and open sessions with `open_session`
(``deploy.endpoint_stream``): sagemaker-core's own ``invoke_with_response_stream`` cannot stream.
"""

from deploy.artifacts import upload_model_dir
from deploy.builder import Compute, Endpoint, JumpStartConfig, ModelBuilder
from deploy.endpoint_stream import close_session, open_session, stream_tokens
from deploy.errors import (
    ContainerError,
    GenerationError,
    IncompleteGenerationError,
    InternalStreamFailure,
    ModelStreamError,
    OverloadedError,
    SluiceError,
    StreamError,
    StreamFormatError,
    ValidationError,
)
from deploy.filters import And, Not, Or, list_jumpstart_models
from deploy.jumpstart import JumpStartModel
from deploy.local import LocalEndpoint, run_local_endpoint
from deploy.predictor import Predictor
from deploy.stream import EventIterator, NotStreamedWarning, TokenIterator

__all__ = [
    "ContainerError", "EventIterator", "GenerationError", "IncompleteGenerationError",
    "InternalStreamFailure", "LocalEndpoint", "ModelStreamError", "NotStreamedWarning", "OverloadedError",
    "SluiceError", "StreamError", "StreamFormatError", "TokenIterator", "ValidationError",
    "run_local_endpoint", "And", "Not", "Or", "list_jumpstart_models", "JumpStartModel", "Predictor",
    "upload_model_dir", "close_session", "open_session", "stream_tokens", "Compute", "Endpoint", "JumpStartConfig",
    "ModelBuilder",
]
